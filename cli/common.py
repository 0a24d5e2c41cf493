"""Shared command-line pieces: settings, model and search arguments, and loading models from them."""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from reasoning.limits import MAX_STEP_TOKENS
from reasoning.search import SearchConfig
from reasoning.search.config import BY_NAME, DEFAULT_MAX_BUDGET, SETTINGS, Setting

from .parser import bounded_int

# plain numbers (not imported from reasoning.backends, which loads torch): a test checks they match the backends'
DEFAULT_KV_CACHE_MB = 256
DEFAULT_BATCH_TOKENS = 16384
DEFAULT_PRM_KV_CACHE_MB = 128


@dataclass(frozen=True)
class Settings:
    """Process-wide settings read from the environment once."""

    max_budget: int = DEFAULT_MAX_BUDGET
    database_url: str | None = None

    @classmethod
    def from_env(cls) -> Settings:
        raw = os.environ.get("REASONING_MAX_BUDGET", str(DEFAULT_MAX_BUDGET))
        try:
            cap = int(raw)
        except ValueError:
            raise ValueError(f"REASONING_MAX_BUDGET must be an integer, got {raw!r}") from None
        if cap < 1:
            raise ValueError(f"REASONING_MAX_BUDGET must be at least 1, got {cap}")
        return cls(max_budget=cap, database_url=os.environ.get("DATABASE_URL") or None)


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("models")
    g.add_argument("--generator", metavar="DIR|URL",
                   help="local causal-LM directory, or the URL(s) of OpenAI-compatible servers (comma separated, "
                        "e.g. http://127.0.0.1:8000/v1 from `engine serve`) (default: the demo generator)")
    g.add_argument("--prm", metavar="DIR|URL",
                   help="local PRM directory, or the URL of a vLLM pooling server (default: the demo PRM)")
    g.add_argument("--vllm", action="store_true",
                   help="run the --generator and --prm directories (default: the demo models) on vLLM engines this "
                        "command starts and stops itself (prefix caching on; the engine environment is made on "
                        "first use; set REASONING_ENGINE_PYTHON to a Python with vLLM's GPU build on a GPU machine)")
    g.add_argument("--prm-adapter", help="PRM adapter (default: read prm_config.json or the model config)")
    g.add_argument("--orm", metavar="DIR", help="outcome reward model (sequence classification) for "
                   "--answer-selection orm")
    g.add_argument("--device", help="cpu, cuda or cuda:N (default: CUDA when available)")
    g.add_argument("--max-step-tokens", type=bounded_int(1, MAX_STEP_TOKENS), default=64,
                   help=f"tokens per generated step at most (1-{MAX_STEP_TOKENS})")
    g.add_argument("--no-kv-reuse", action="store_true", help="recompute the prefix for every token (no shared cache)")
    g.add_argument("--kv-cache-mb", type=float, default=None,
                   help="memory for the LRU cache of tree nodes' prefix KV, so a node expanded again skips its "
                        f"prefill (0: none; default {DEFAULT_KV_CACHE_MB} on a CPU, a tenth of the GPU's memory)")
    g.add_argument("--prm-batch-tokens", type=int, default=None,
                   help=f"padded tokens per PRM forward pass at most (default 1024 on a CPU, {DEFAULT_BATCH_TOKENS} "
                        "on a GPU)")
    g.add_argument("--prm-kv-cache-mb", type=float, default=None,
                   help="memory for the LRU cache of scored paths' KV, so a new node's path is scored by feeding only "
                        f"its own step on top of its parent's (0: whole paths; default {DEFAULT_PRM_KV_CACHE_MB} on a "
                        "CPU, a twentieth of the GPU's memory)")
    g.add_argument("--trust-remote-code", action="store_true", help="allow model code shipped with the model")
    g.add_argument("--threads", type=bounded_int(1, 1024), default=None,
                   help="torch CPU threads (default: 1 for models under 50M parameters on the CPU, where more threads "
                        "only wait on each other, else torch's default; OMP_NUM_THREADS is kept when set)")


def add_search_arguments(p: argparse.ArgumentParser, *, budget_required: bool = False) -> None:
    """One flag per declared search setting (`reasoning.search.config.SETTINGS`). Every flag defaults to None:
    unset, a setting takes the model's recommended value (its manifest's `recommended_search`), else the
    declaration's default."""
    g = p.add_argument_group("search")
    for s in SETTINGS:
        if not s.flag:
            continue
        if s.negated_flag:
            g.add_argument(s.flag, dest=s.name, action="store_const", const=False, default=None,
                           help=f"turn off: {s.help}")
            continue
        kwargs: dict = {"dest": s.name, "default": None, "help": s.help + _default(s)}
        if s.kind == "choice":
            kwargs["choices"] = s.choices
        elif s.kind == "int":
            kwargs["type"] = int
        elif s.kind == "float":
            kwargs["type"] = float
        if s.name == "budget" and budget_required:
            kwargs["required"] = True
        g.add_argument(s.flag, **kwargs)
    g.add_argument("--catalog", metavar="FILE", help="thought-factor catalog, JSON or YAML (default: built in)")


def _default(s: Setting) -> str:
    shown = ",".join(str(x) for x in s.default) if isinstance(s.default, tuple) else s.default
    return f" (default: {shown}, or the model's recommended setting)"


def recommended_settings(args: argparse.Namespace, algorithm: str) -> dict:
    """The search settings the generator's manifest recommends for `algorithm` (the demo generator's are the
    scaling report's); {} for a model without a manifest block."""
    from reasoning.manifest import DEMO_GENERATOR_DIR, recommended_search

    return recommended_search(_manifest_dir(getattr(args, "generator", None)) or DEMO_GENERATOR_DIR, algorithm)


def _manifest_dir(generator: str | None) -> str | None:
    """Where the generator's manifest lies: its directory, or for a server URL the directory the server loaded
    the model from when that is on this machine (vLLM reports it), so a served demo generator keeps its settings."""
    from reasoning.http_client import is_url, served_model_root

    if generator and is_url(generator):
        return served_model_root(generator) or generator
    return generator


def search_config(args: argparse.Namespace, settings: Settings) -> SearchConfig:
    """The validated SearchConfig the arguments ask for (a ValueError names the bad one, in the flag's words).
    A setting not given takes the model's recommended value, else the declaration's default."""
    given = {s.name: getattr(args, s.name) for s in SETTINGS if s.flag and getattr(args, s.name, None) is not None}
    algorithm = given.get("algorithm", BY_NAME["algorithm"].default)
    config = SearchConfig.from_values(given, defaults=recommended_settings(args, algorithm),
                                      max_budget=settings.max_budget)
    if config.answer_selection == "orm" and not getattr(args, "orm", None):  # before any model loads
        raise ValueError("--answer-selection orm needs --orm DIR (a sequence-classification reward model)")
    return config


def load_catalog_arg(args: argparse.Namespace):
    """The catalog the arguments name, with `--factors` enabled; else the factors the generator's manifest
    recommends (the demo generator was trained on four: an untrained factor gives no sensible steps)."""
    from reasoning.factors import load_catalog

    catalog = load_catalog(getattr(args, "catalog", None))
    chosen = getattr(args, "factors", None)
    if chosen:
        names = [f.strip() for f in chosen.split(",") if f.strip()] if isinstance(chosen, str) else list(chosen)
        return catalog.with_enabled(names)
    factors = recommended_settings(args, getattr(args, "algorithm", None) or "mcts").get("factors")
    if factors:
        return catalog.with_enabled(set(factors) & set(catalog.names))
    return catalog


def load_models(args: argparse.Namespace, catalog=None):
    """The generator and PRM the arguments name, the demo models by default."""
    from reasoning.backends import DEMO_GENERATOR_DIR, DEMO_PRM_DIR, load_generator, load_scorer

    if getattr(args, "vllm", False):
        start_engines(args, DEMO_GENERATOR_DIR, DEMO_PRM_DIR)
    generator = load_generator(
        _model_arg(args.generator) if args.generator else DEMO_GENERATOR_DIR, catalog=catalog, device=args.device,
        trust_remote_code=args.trust_remote_code, kv_reuse=not args.no_kv_reuse,
        max_step_tokens=args.max_step_tokens, top_p=getattr(args, "top_p", None) or 1.0,
        kv_cache_mb=getattr(args, "kv_cache_mb", None),
    )
    scorer = load_scorer(
        _model_arg(args.prm) if args.prm else DEMO_PRM_DIR, adapter=args.prm_adapter, device=args.device,
        trust_remote_code=args.trust_remote_code, batch_tokens=getattr(args, "prm_batch_tokens", None),
        kv_cache_mb=getattr(args, "prm_kv_cache_mb", None),
    )
    choose_threads(args, generator, scorer)
    return generator, scorer


def start_engines(args: argparse.Namespace, default_generator: Path, default_prm: Path) -> None:
    """`--vllm`: start vLLM for the local generator and PRM directories and point `args` at the servers (they stop
    when the command ends). URLs with --vllm are refused: those servers are already running."""
    from engine.local import start_local_engines
    from reasoning.http_client import is_url

    for flag, value in (("--generator", args.generator), ("--prm", args.prm)):
        if value and is_url(value):
            raise ValueError(f"--vllm starts engines for local directories; {flag} {value} is already a server URL "
                             "(drop --vllm)")
    engines = start_local_engines(Path(args.generator or default_generator).expanduser(),
                                  Path(args.prm or default_prm).expanduser(),
                                  progress=lambda line: print(line, file=sys.stderr, flush=True))
    args.generator, args.prm, args.vllm = engines.generator_url, engines.prm_url, False
    args.engines = engines


def choose_threads(args: argparse.Namespace, *models) -> int:
    """Set torch's CPU threads for the loaded models (`--threads`, else the measured rule of
    reasoning.backends.loading.choose_threads) and say so in one line on stderr (not with `--quiet`)."""
    from reasoning.backends.loading import choose_threads as choose
    from reasoning.backends.loading import set_threads

    n, why = choose(models, getattr(args, "threads", None))
    set_threads(n)
    if not getattr(args, "quiet", False):
        print(f"torch: {n} CPU thread{'' if n == 1 else 's'} ({why}; --threads N to change)", file=sys.stderr)
    return n


def _model_arg(value: str) -> str | Path:
    """A server URL stays a string; anything else is a local directory."""
    from reasoning.http_client import is_url

    return value if is_url(value) else Path(value)
def load_orm_arg(args: argparse.Namespace, config: SearchConfig):
    """The ORM `--orm` names (None without one); `--answer-selection orm` without `--orm` is refused before loading."""
    path = getattr(args, "orm", None)
    if config.answer_selection == "orm" and not path:
        raise ValueError("--answer-selection orm needs --orm DIR (a sequence-classification reward model)")
    if not path:
        return None
    from reasoning.backends.orm import load_orm

    return load_orm(Path(path), device=args.device, trust_remote_code=args.trust_remote_code)


def check_output_path(path: str) -> Path:
    """Fail before any work when the output file's folder is missing, is not writable, or the path is a folder:
    a run must not spend hours and then fail on its last write."""
    out = Path(path)
    if out.is_dir():
        raise ValueError(f"--out {out} is a directory, not a file")
    if not out.parent.is_dir():
        raise ValueError(f"--out folder {out.parent} does not exist")
    try:  # the same kind of write the result will need: a temporary file beside it
        with tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.", suffix=".probe"):
            pass
    except OSError as exc:
        raise ValueError(f"--out folder {out.parent} is not writable ({exc.strerror})") from None
    if out.exists() and not os.access(out, os.W_OK):
        raise ValueError(f"--out {out} exists and is not writable")
    return out
