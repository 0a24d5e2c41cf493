"""Search configuration, events and results: small typed values, validated without I/O.

`SearchConfig` is the one declaration of every search setting: each field carries its default, bounds, choices and
help text as field metadata (see `setting`). The command-line flags (`cli/common.py`), the UI controls
(`ui/pages/explore.py`), the API parameters (`ui/api.py`) and server-side validation are generated from it, so a
setting added here appears everywhere at once. ARCHITECTURE.md, "One declaration of the search settings".
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..aggregation import AGGREGATIONS
from ..limits import MAX_BUDGET, MAX_CANDIDATES, MAX_DB_INT, MAX_DEPTH

ALGORITHMS = ("greedy", "best_of_n", "beam", "mcts")
ANSWER_SELECTIONS = ("value", "visits", "vote", "orm")  # "orm": an outcome reward model reads each final path
INVALID_STEPS = ("dead", "open")  # what a step the domain's calculator cannot book does in a search
AGGREGATION_NAMES = tuple(AGGREGATIONS)
DEFAULT_MAX_BUDGET = MAX_BUDGET  # the shared limits live in reasoning/limits.py
MAX_SEED = MAX_DB_INT


@dataclass(frozen=True)
class Setting:
    """What the declaration says about one search setting (read from `SearchConfig`'s field metadata)."""

    name: str
    kind: str  # "int", "float", "choice", "bool", "floats" (a tuple of numbers) or "names" (a tuple of names)
    default: Any
    help: str
    label: str
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()
    flag: str = ""  # the command-line flag; "" for none
    negated_flag: bool = False  # a `store_true` flag that sets the setting to False (`--keep-duplicates`)
    control: bool = True  # a UI control and an API parameter
    algorithms: tuple[str, ...] = ()  # the algorithms that read it (() for all)

    def coerce(self, value: Any, *, hi: float | None = None) -> Any:
        """`value` from loose UI, API or command-line input as this setting's type, or a ValueError that names the
        setting and what is wrong, in one line."""
        hi = self.hi if hi is None else hi
        if self.kind == "int":
            return as_integer(value, self.label, self.lo, hi)
        if self.kind == "float":
            return as_number(value, self.label, self.lo, hi)
        if self.kind == "choice":
            if value not in self.choices:
                raise ValueError(f"{self.label} must be one of {list(self.choices)}, got {_show(value)}")
            return value
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"{self.label} must be true or false, got {_show(value)}")
            return value
        if self.kind == "floats":
            return _numbers(value, self.label, self.lo, hi)
        if self.kind == "names":
            return _names(value, self.label)
        raise AssertionError(f"unknown setting kind {self.kind}")


def setting(default: Any, help: str, *, kind: str, label: str = "", lo: float | None = None, hi: float | None = None,
            choices: tuple[str, ...] = (), flag: str | None = None, negated_flag: bool = False,
            control: bool = True, algorithms: tuple[str, ...] = ()) -> Any:
    """A `SearchConfig` field with its declaration in the metadata."""
    meta = {"kind": kind, "help": help, "label": label, "lo": lo, "hi": hi, "choices": choices, "flag": flag,
            "negated_flag": negated_flag, "control": control, "algorithms": algorithms}
    if isinstance(default, list | tuple):
        return field(default=tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class SearchConfig:
    """Every knob of every algorithm, each declared once (type, default, bounds, help)."""

    algorithm: str = setting("mcts", "search algorithm: greedy, best_of_n, beam or mcts", kind="choice",
                             choices=ALGORITHMS)
    budget: int = setting(64, "nodes created (distinct steps) allowed per problem, the same unit for every algorithm",
                          kind="int", lo=1, hi=DEFAULT_MAX_BUDGET)
    seed: int = setting(0, "seed of the search's own random choices and of every sampling call", kind="int", lo=0,
                        hi=MAX_SEED)
    candidates: int = setting(3, "continuations sampled per chosen factor (MCTS), per beam node (beam)", kind="int",
                              lo=1, hi=MAX_CANDIDATES, algorithms=("mcts", "beam"))
    temperatures: tuple[float, ...] = setting(
        (1.0,), "sampling temperatures, cycled over candidates (the pool of sampler copies; comma separated)",
        kind="floats", lo=0.0, hi=5.0)
    # a property of the loaded generator (`--top-p` on the command line), recorded with the session
    top_p: float = setting(1.0, "nucleus sampling threshold", kind="float", lo=1e-6, hi=1.0, label="top p",
                           control=False)
    c_puct: float = setting(1.5, "PUCT exploration constant", kind="float", lo=0.0, hi=100.0, algorithms=("mcts",))
    widen: float = setting(
        0.0, "MCTS progressive widening: a factor may hold candidates * (1 + N(S,a)) ** widen children (0: one batch)",
        kind="float", lo=0.0, hi=1.0, algorithms=("mcts",))
    fpu_reduction: float = setting(
        0.0, "MCTS first-play urgency: an untried factor starts at its parent's value minus this", kind="float",
        lo=0.0, hi=1.0, label="FPU reduction", algorithms=("mcts",))
    beam_width: int = setting(4, "nodes kept per depth by beam search", kind="int", lo=1, hi=256,
                              algorithms=("beam",))
    max_depth: int = setting(12, "steps after which a path is cut", kind="int", lo=1, hi=MAX_DEPTH)
    parallel_leaves: int = setting(
        1, "in flight per model call: MCTS leaves selected per round under virtual loss (expanded in one generator "
           "call, scored in one PRM call), best-of-N solutions sampled side by side", kind="int", lo=1, hi=64,
        algorithms=("mcts", "best_of_n"))
    aggregation: str = setting("min", "how a path's step scores fold into its value: min, prod, last or mean",
                               kind="choice", choices=AGGREGATION_NAMES)
    answer_selection: str = setting("value", "final answer by the best path value, by visits, by value-weighted "
                                    "vote, or by an outcome reward model's score of each finished path (orm: needs "
                                    "--orm DIR)", kind="choice", choices=ANSWER_SELECTIONS)
    merge_duplicates: bool = setting(
        True, "a sampled step identical to a sibling is merged into it (counted in its samples, not in the budget) "
              "instead of becoming a second copy of the same node", kind="bool", flag="--keep-duplicates",
        negated_flag=True, label="merge repeated samples")
    factors: tuple[str, ...] | None = setting(
        None, "names of the enabled thought factors, comma separated (default: the catalog's enabled ones)",
        kind="names", control=False)
    invalid_steps: str = setting(
        "dead", "a step the domain flags invalid (Countdown's calculator: an operand not left, a wrong result): "
                "'dead' ends its path (never expanded, valued 0, its answer never chosen), 'open' leaves it to the "
                "PRM like any other step", kind="choice", choices=INVALID_STEPS)
    max_budget: int = setting(DEFAULT_MAX_BUDGET, "the configured cap on budget (REASONING_MAX_BUDGET)", kind="int",
                              lo=1, hi=10**9, flag="", control=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "temperatures", tuple(float(t) for t in self.temperatures))
        if self.factors is not None:
            object.__setattr__(self, "factors", tuple(self.factors))
        self.validate()

    def validate(self) -> None:
        """Every field against its declaration; a ValueError names the first bad one."""
        for s in SETTINGS:
            hi = self.max_budget if s.name == "budget" else None
            s.coerce(getattr(self, s.name), hi=hi)
        if self.budget > self.max_budget:
            raise ValueError(f"budget must be between 1 and {self.max_budget}, got {self.budget}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["temperatures"] = list(self.temperatures)
        d["factors"] = list(self.factors) if self.factors is not None else None
        return d

    @classmethod
    def from_values(cls, values: Mapping[str, Any], *, defaults: Mapping[str, Any] | None = None,
                    max_budget: int = DEFAULT_MAX_BUDGET) -> SearchConfig:
        """A validated config from loosely typed values (UI, API, a stored config); unknown names are refused, a
        value that is None or missing takes `defaults`, then the declaration's default."""
        unknown = sorted(set(values) - set(BY_NAME))
        if unknown:
            raise ValueError(f"unknown search setting {unknown[0]!r}; the settings are {sorted(BY_NAME)}")
        picked: dict[str, Any] = {}
        for s in SETTINGS:
            raw = values.get(s.name)
            if raw is None:
                raw = (defaults or {}).get(s.name)
            if raw is None:
                if s.name == "factors":
                    continue
                raw = s.default
            hi = max_budget if s.name == "budget" else None
            picked[s.name] = s.coerce(raw, hi=hi)
        picked["max_budget"] = max_budget
        return cls(**picked)

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any] | None, *, max_budget: int = DEFAULT_MAX_BUDGET,
                    **overrides: Any) -> SearchConfig:
        """The config a session was searched with (as `to_dict` stored it), with `overrides`; settings stored by an
        older version that no longer exist are dropped, so an old session always reopens. A ValueError when a stored
        value is out of bounds (the one place a stored config becomes a SearchConfig)."""
        known = {k: v for k, v in dict(stored or {}).items() if k in BY_NAME and k != "max_budget"}
        return cls.from_values({**known, **overrides}, max_budget=max_budget)


def _declaration(f: Any) -> Setting:
    m = f.metadata
    flag = m["flag"] if m["flag"] is not None else "--" + f.name.replace("_", "-")
    return Setting(name=f.name, kind=m["kind"], default=f.default, help=m["help"],
                   label=m["label"] or f.name.replace("_", " "), lo=m["lo"], hi=m["hi"], choices=m["choices"],
                   flag=flag, negated_flag=m["negated_flag"], control=m["control"], algorithms=m["algorithms"])


SETTINGS: tuple[Setting, ...] = tuple(_declaration(f) for f in fields(SearchConfig))
BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
HELP: dict[str, str] = {s.name: s.help for s in SETTINGS}


def recommended(block: Mapping[str, Any] | None, algorithm: str) -> dict[str, Any]:
    """The settings a model recommends for `algorithm`, from a manifest's `recommended_search` block:
    `{"settings": {...}, "per_algorithm": {"mcts": {...}}}`. Names are checked against the declaration."""
    if not block:
        return {}
    base = dict(block.get("settings") or {})
    base.update((block.get("per_algorithm") or {}).get(algorithm) or {})
    unknown = sorted(set(base) - set(BY_NAME))
    if unknown:
        raise ValueError(f"recommended_search names unknown setting {unknown[0]!r}")
    return base


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def as_integer(value: Any, name: str, lo: float | None, hi: float | None) -> int:
    """The one integer coercion behind the settings, the UI's and the API's parameters and the CLI's bounded flags:
    an int, an integral float or a decimal string (at most 40 digits), within [lo, hi]; else a one-line
    ValueError naming `name`."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,40}", value.strip()):
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {_show(value)}")
    return _bounded(value, name, lo, hi)


def as_number(value: Any, name: str, lo: float | None, hi: float | None) -> float:
    """The one number coercion (as `as_integer`): a finite int, float or numeric string within [lo, hi]."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError(f"{name} must be a number, got {_show(value)}") from None
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number, got {_show(value)}")
    return _bounded(float(value), name, lo, hi)


def _bounded(value: Any, name: str, lo: float | None, hi: float | None) -> Any:
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        lo_s = "" if lo is None else _bound(lo)
        hi_s = "" if hi is None else _bound(hi)
        raise ValueError(f"{name} must be between {lo_s} and {hi_s}, got {value}")
    return value


def _bound(x: float) -> str:
    """A bound as people write it: 2147483647, not 2.14748e+09; 0.5 as 0.5."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e18 else f"{x:g}"


def _numbers(value: Any, name: str, lo: float | None, hi: float | None) -> tuple[float, ...]:
    items = _items(value, name)
    if not items:
        raise ValueError(f"{name} needs at least one value")
    return tuple(as_number(x, name, lo, hi) for x in items)


def _names(value: Any, name: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = _items(value, name)
    if not all(isinstance(x, str) and x.strip() for x in items):
        raise ValueError(f"{name} must be names, got {_show(value)}")
    return tuple(x.strip() for x in items) or None


def _items(value: Any, name: str) -> list[Any]:
    if isinstance(value, str):
        return [x for x in value.replace(";", ",").split(",") if x.strip()]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [value]
    if isinstance(value, list | tuple):
        return list(value)
    raise ValueError(f"{name} must be a list or comma-separated text, got {_show(value)}")


@dataclass
class SearchResult:
    answer: str | None
    node: str | None
    value: float | None
    nodes_created: int
    generated_tokens: int
    iterations: int
    seconds: float
    algorithm: str
    stopped: bool = False


@dataclass
class SearchEvent:
    """What a search yields: `expanded`, `scored`, `backed_up` or `finished` (the last, with `result`)."""

    kind: str
    iteration: int
    nodes: tuple[str, ...]
    created: int
    budget: int
    result: SearchResult | None = None
    data: dict[str, Any] = field(default_factory=dict)
