"""The model registry: the models the app started with, and others a web user may pick from offered folders.

Loading is injected (`loader`), so the composition root decides how a directory becomes a model and tests can
hand in tiny real models; nothing here imports torch.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasoning.factors import Catalog
from reasoning.manifest import DEMO_GENERATOR_DIR, recommended_search
from reasoning.protocols import Generator, Scorer
from reasoning.search.config import SearchConfig

from .. import validate as v

# loader(kind, path, catalog) -> model, kind "generator" or "prm"; raises ValueError with a one-line message
ModelLoader = Callable[[str, str, Catalog], Any]
MAX_EXTRA_MODELS = 2


def load_with_backends(kind: str, path: str, catalog: Catalog) -> Any:
    """The default loader: the project's backends (imported here, on first use, since they need torch)."""
    from reasoning import backends

    try:
        if kind == "generator":
            return backends.load_generator(path, catalog=catalog)
        return backends.load_scorer(path)
    except (backends.ModelLoadError, backends.ServerError) as exc:
        raise ValueError(str(exc)) from None


def is_server_url(path: str) -> bool:
    """A model server (`http://host:port/v1`, several comma separated) rather than a directory."""
    return path.strip().lower().startswith(("http://", "https://"))


@dataclass
class ModelRegistry:
    generator: Generator
    scorer: Scorer
    catalog: Catalog
    generator_dir: str = ""
    prm_dir: str = ""
    loader: ModelLoader = load_with_backends
    model_roots: tuple[str, ...] = ()  # folders whose model directories a web user may pick (besides the defaults)
    _extra: dict[tuple[str, str], Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _active_prm: str = ""  # a PRM picked in the UI (`use_prm`); blank: the one the app started with

    def pair(self, generator_dir: str | None, prm_dir: str | None) -> tuple[Generator, Scorer]:
        """The generator and scorer for these directories; a blank generator gives the loaded one, a blank PRM the
        active one (the app's own until `use_prm` picks another)."""
        prm = (prm_dir or "").strip() or self._active_prm
        return (self._model("generator", generator_dir, self.generator_dir, self.generator),
                self._model("prm", prm, self.prm_dir, self.scorer))

    @property
    def active_prm_dir(self) -> str:
        """The directory (or server) of the PRM that new searches and the review queue use."""
        return self._active_prm or self.prm_dir

    def active_scorer(self) -> Scorer:
        return self.pair(None, None)[1]

    def loaded(self, generator_dir: str | None, prm_dir: str | None) -> bool:
        """True when a search with these directories runs on the app's own generator and its own or active PRM
        (blank means those); another folder or server would be loaded for it, which only an admin may ask for
        where the app has roles (ui/roles.py)."""
        gen, prm = (generator_dir or "").strip(), (prm_dir or "").strip()
        return gen in ("", self.generator_dir) and prm in ("", self.prm_dir, self.active_prm_dir)

    def use_prm(self, prm_dir: str | None) -> str:
        """Make another offered PRM the active one without a restart (loaded and checked first, so a bad folder
        leaves the active PRM as it was); blank goes back to the app's own. Returns the active directory."""
        path = (prm_dir or "").strip()
        if path and path != self.prm_dir:
            self._model("prm", path, self.prm_dir, self.scorer)  # raises UserError for a folder not offered
            path = str(Path(path).expanduser().resolve()) if not is_server_url(path) else path
        self._active_prm = "" if path == self.prm_dir else path
        return self.active_prm_dir

    def recommended(self, algorithm: str, generator_dir: str | None = None) -> dict[str, Any]:
        """The search settings the generator's manifest recommends for `algorithm` ({} when it has none)."""
        try:
            return recommended_search((generator_dir or "").strip() or self.generator_dir or None, algorithm)
        except ValueError as exc:
            raise v.UserError(str(exc)) from None

    def control_defaults(self, algorithm: str, generator_dir: str | None = None) -> dict[str, Any]:
        """What the search controls start from: the declaration's defaults, then the model's recommendations."""
        return {**SearchConfig().to_dict(), **self.recommended(algorithm, generator_dir)}

    def _model(self, kind: str, path: str | None, default_path: str, default: Any) -> Any:
        path = (path or "").strip()
        if not path or path == default_path:
            return default
        v.need(len(path) <= 1000, f"{kind} directory path is too long")
        if is_server_url(path):
            # only servers the operator offers: the app would otherwise send requests wherever a web user says
            offered = self.allowed_urls()
            v.need(path in offered, f"{kind} server {path} is not one this app offers (offered: "
                                    f"{', '.join(offered) or 'none'}; start the app with REASONING_MODEL_URLS to "
                                    "add some)")
            key = (kind, path)
        else:
            resolved = Path(path).expanduser().resolve()
            roots = self.allowed_roots()
            # one answer for every path outside the roots, so the web cannot probe the server's file system
            v.need(any(resolved.is_relative_to(r) for r in roots) and resolved.is_dir(),
                   f"{kind} directory {path} is not a model folder this server offers (allowed under: "
                   f"{', '.join(str(r) for r in roots)}; start the app with REASONING_MODEL_ROOTS to add folders)")
            key = (kind, str(resolved))
        with self._lock:
            if key not in self._extra and len(self._extra) >= MAX_EXTRA_MODELS:
                self._extra.pop(next(iter(self._extra)))  # keep memory bounded: forget the oldest extra model
            if key not in self._extra:
                try:
                    self._extra[key] = self.loader(kind, key[1], self.catalog)
                except ValueError as exc:
                    raise v.UserError(str(exc)) from None
            return self._extra[key]

    def allowed_urls(self) -> list[str]:
        """The model servers the web may pick: those the app started with and REASONING_MODEL_URLS (whitespace
        separated; one entry may list several servers of one model, comma separated)."""
        urls = [u for u in (self.generator_dir, self.prm_dir) if u and is_server_url(u)]
        urls += os.environ.get("REASONING_MODEL_URLS", "").split()
        return list(dict.fromkeys(u.strip() for u in urls if u.strip()))

    def allowed_roots(self) -> list[Path]:
        """The folders under which the web may load model directories: the demo models' folder, the folders
        of the models the app started with, and REASONING_MODEL_ROOTS (os.pathsep separated)."""
        roots = [DEMO_GENERATOR_DIR.parent,
                 *(Path(p).parent for p in (self.generator_dir, self.prm_dir) if p and not is_server_url(p))]
        roots += [Path(p) for p in self.model_roots]
        roots += [Path(p) for p in os.environ.get("REASONING_MODEL_ROOTS", "").split(os.pathsep) if p.strip()]
        return list(dict.fromkeys(r.expanduser().resolve() for r in roots))


def provenance(model: Any) -> dict:
    """A model's provenance for storage; never fails a search over it."""
    getter = getattr(model, "provenance", None)
    try:
        return dict(getter()) if callable(getter) else {"name": getattr(model, "name", type(model).__name__)}
    except Exception:  # noqa: BLE001 - provenance is informative
        return {"name": getattr(model, "name", type(model).__name__)}
