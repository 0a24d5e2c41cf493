"""Search configuration, events and results: small typed values, validated without I/O."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..aggregation import AGGREGATIONS
from ..limits import MAX_BUDGET, MAX_CANDIDATES, MAX_DB_INT, MAX_DEPTH

ALGORITHMS = ("greedy", "best_of_n", "beam", "mcts")
ANSWER_SELECTIONS = ("value", "visits", "vote")
DEFAULT_MAX_BUDGET = MAX_BUDGET


@dataclass(frozen=True)
class SearchConfig:
    """Every knob of every algorithm; each field's meaning is in `HELP`."""

    algorithm: str = "mcts"
    budget: int = 64
    seed: int = 0
    aggregation: str = "min"
    candidates: int = 3
    temperatures: tuple[float, ...] = (1.0,)
    top_p: float = 1.0
    c_puct: float = 1.5
    widen: float = 0.0
    fpu_reduction: float = 0.0
    beam_width: int = 4
    max_depth: int = 12
    parallel_leaves: int = 1
    answer_selection: str = "value"
    merge_duplicates: bool = True
    factors: tuple[str, ...] | None = None
    max_budget: int = DEFAULT_MAX_BUDGET

    def __post_init__(self) -> None:
        object.__setattr__(self, "temperatures", tuple(float(t) for t in self.temperatures))
        if self.factors is not None:
            object.__setattr__(self, "factors", tuple(self.factors))
        self.validate()

    def validate(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(message)

        need(self.algorithm in ALGORITHMS, f"algorithm must be one of {ALGORITHMS}, not {self.algorithm!r}")
        need(isinstance(self.budget, int) and not isinstance(self.budget, bool), "budget must be an integer")
        need(1 <= self.budget <= self.max_budget, f"budget must be between 1 and {self.max_budget}, got {self.budget}")
        need(self.aggregation in AGGREGATIONS, f"aggregation must be one of {sorted(AGGREGATIONS)}")
        need(1 <= self.candidates <= MAX_CANDIDATES,
             f"candidates must be between 1 and {MAX_CANDIDATES}, got {self.candidates}")
        need(len(self.temperatures) >= 1, "temperatures needs at least one value")
        need(all(0.0 <= t <= 5.0 for t in self.temperatures), "each temperature must be between 0 and 5")
        need(0.0 < self.top_p <= 1.0, f"top_p must be in (0, 1], got {self.top_p}")
        need(0.0 <= self.c_puct <= 100.0, f"c_puct must be between 0 and 100, got {self.c_puct}")
        need(0.0 <= self.widen <= 1.0, f"widen must be between 0 and 1, got {self.widen}")
        need(0.0 <= self.fpu_reduction <= 1.0, f"fpu_reduction must be between 0 and 1, got {self.fpu_reduction}")
        need(1 <= self.beam_width <= 256, f"beam_width must be between 1 and 256, got {self.beam_width}")
        need(1 <= self.max_depth <= MAX_DEPTH, f"max_depth must be between 1 and {MAX_DEPTH}, got {self.max_depth}")
        need(1 <= self.parallel_leaves <= 64, f"parallel_leaves must be between 1 and 64, got {self.parallel_leaves}")
        need(self.answer_selection in ANSWER_SELECTIONS, f"answer_selection must be one of {ANSWER_SELECTIONS}")
        need(0 <= self.seed <= MAX_DB_INT, f"seed must be between 0 and {MAX_DB_INT}, got {self.seed}")
        need(isinstance(self.merge_duplicates, bool), "merge_duplicates must be true or false")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["temperatures"] = list(self.temperatures)
        d["factors"] = list(self.factors) if self.factors is not None else None
        return d


HELP = {
    "algorithm": "search algorithm: greedy, best_of_n, beam or mcts",
    "budget": "nodes created (distinct steps) allowed per problem, the same unit for every algorithm",
    "seed": "seed of the search's own random choices and of every sampling call",
    "aggregation": "how a path's step scores fold into its value: min, prod, last or mean",
    "candidates": "continuations sampled per chosen factor (MCTS), per beam node (beam)",
    "temperatures": "sampling temperatures, cycled over candidates (the pool of sampler copies)",
    "top_p": "nucleus sampling threshold",
    "c_puct": "PUCT exploration constant",
    "widen": "MCTS progressive widening: a factor may hold candidates * (1 + N(S,a)) ** widen children (0: one batch)",
    "fpu_reduction": "MCTS first-play urgency: an untried factor starts at its parent's value minus this",
    "beam_width": "nodes kept per depth by beam search",
    "max_depth": "steps after which a path is cut",
    "parallel_leaves": "MCTS leaves selected per iteration under virtual loss, scored in one batch",
    "answer_selection": "final answer by the best path value, by visits, or by value-weighted vote",
    "merge_duplicates": "a sampled step identical to a sibling is merged into it (counted in its samples, not in the "
                        "budget) instead of becoming a second copy of the same node",
    "factors": "names of the enabled thought factors (None: the catalog's enabled ones)",
    "max_budget": "the configured cap on budget",
}


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
