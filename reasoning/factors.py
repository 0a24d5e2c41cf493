"""Thought factors (the discrete action space of reasoning moves) and catalogs of them."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

DEFAULT_CATALOG_PATH = Path(__file__).parent / "catalogs" / "default.json"


@dataclass(frozen=True)
class ThoughtFactor:
    """A kind of reasoning move: its cue starts a step of this kind; `tags` wrap it for tag-trained models."""

    name: str
    description: str = ""
    cue: str = ""
    tags: tuple[str, str] | None = None
    terminal: bool = False
    enabled: bool = True
    # how every view draws this factor (a plotly marker symbol and a colour): one factor looks the same in every
    # tree, so trees can be compared side by side
    symbol: str = ""
    color: str = ""

    @property
    def open_tag(self) -> str | None:
        return self.tags[0] if self.tags else None

    @property
    def close_tag(self) -> str | None:
        return self.tags[1] if self.tags else None


@dataclass(frozen=True)
class Catalog:
    """An ordered, named set of thought factors."""

    factors: tuple[ThoughtFactor, ...]
    name: str = "custom"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.factors:
            raise ValueError("a catalog needs at least one thought factor")
        names = [f.name for f in self.factors]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate thought factor names in catalog: {dupes}")

    def __iter__(self):
        return iter(self.factors)

    def __len__(self) -> int:
        return len(self.factors)

    @property
    def enabled(self) -> tuple[ThoughtFactor, ...]:
        return tuple(f for f in self.factors if f.enabled)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.factors]

    def get(self, name: str) -> ThoughtFactor:
        for f in self.factors:
            if f.name == name:
                return f
        raise KeyError(f"unknown thought factor {name!r}; the catalog has {self.names}")

    def with_enabled(self, names: list[str] | set[str]) -> Catalog:
        unknown = set(names) - set(self.names)
        if unknown:
            raise ValueError(f"unknown thought factors {sorted(unknown)}; the catalog has {self.names}")
        return replace(self, factors=tuple(replace(f, enabled=f.name in names) for f in self.factors))

    def with_cue(self, name: str, cue: str) -> Catalog:
        self.get(name)
        return replace(self, factors=tuple(replace(f, cue=cue) if f.name == name else f for f in self.factors))

    def to_dict(self) -> dict[str, Any]:
        out = []
        for f in self.factors:
            d = asdict(f)
            d["tags"] = list(f.tags) if f.tags else None
            out.append(d)
        return {"name": self.name, "factors": out}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Catalog:
        if not isinstance(data, dict) or not isinstance(data.get("factors"), list):
            raise ValueError("a catalog is an object with a 'factors' list")
        factors = []
        for i, raw in enumerate(data["factors"]):
            if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"].strip():
                raise ValueError(f"catalog factor #{i} needs a non-empty string 'name'")
            tags = raw.get("tags")
            if tags is not None and (not isinstance(tags, list | tuple) or len(tags) != 2):
                raise ValueError(f"catalog factor {raw['name']!r}: 'tags' must be a pair [open, close]")
            factors.append(
                ThoughtFactor(
                    name=raw["name"],
                    description=str(raw.get("description", "")),
                    cue=str(raw.get("cue", "")),
                    tags=tuple(tags) if tags else None,
                    terminal=bool(raw.get("terminal", False)),
                    enabled=bool(raw.get("enabled", True)),
                    symbol=str(raw.get("symbol", "")),
                    color=str(raw.get("color", "")),
                )
            )
        return cls(tuple(factors), name=str(data.get("name", "custom")))


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Read a catalog from JSON or YAML; None gives the default catalog."""
    path = Path(path) if path else DEFAULT_CATALOG_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read thought-factor catalog {path}: {exc.strerror}") from None
    if path.suffix.lower() in {".yaml", ".yml"}:
        import yaml

        data = yaml.safe_load(text)
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"catalog {path} is not valid JSON: line {exc.lineno}: {exc.msg}") from None
    return Catalog.from_dict(data)
