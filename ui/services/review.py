"""The review queue, the calibration bins and annotator agreement as pure functions over literal values.

Annotators' time is best spent where a label would change the PRM: where the PRM score, the rollout value and the
human ratings disagree, and where the PRM itself is unsure (a score near 0.5). PRM800K chose convincing wrong-answer
solutions for the same reason. Nothing here touches the database or Gradio, so the ordering, the kappas and the bins
are tested on literal trees and ratings (tests/test_review.py); `ui/pages/review.py` feeds them from the store.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations

from reasoning.tree import ROOT, ReasoningTree

UNCERTAINTY_WEIGHT = 0.5  # a node where the signals disagree outranks one where the PRM is merely unsure
QUEUE_HEADERS = ["rank", "session", "node", "PRM", "rollout", "human", "disagreement", "problem set", "step"]
AGREEMENT_HEADERS = ["annotators", "measure", "kappa", "nodes"]
MAX_GROUPED = 6  # annotators up to which every group of 3+ gets its Fleiss' kappa
RATING_VALUE = {-1: 0.0, 0: 0.5, 1: 1.0}  # PRM800K ratings on the PRM's scale (neutral halfway)


@dataclass(frozen=True)
class ReviewSource:
    """One session's tree with its labels, as the queue reads them. `scores` overrides the stored PRM scores (the
    active PRM's, when it differs from the one the search ran with); `ratings` is {node: {annotator: rating}};
    `rollouts` is {node: (successes, rollouts)}; `adjudicated` is {node: (adjudicator, rating)}."""

    session_id: int
    problem_set: str
    tree: ReasoningTree
    ratings: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    rollouts: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    scores: Mapping[str, float | None] | None = None
    adjudicated: Mapping[str, tuple[str, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class ReviewItem:
    session_id: int
    node_id: str
    problem_set: str
    text: str
    prm: float | None
    rollout: float | None
    successes: int
    rollouts: int
    ratings: Mapping[str, int]
    disagreement: float
    uncertainty: float
    adjudication: tuple[str, int] | None = None  # (adjudicator, rating) once the step is settled

    @property
    def humans_disagree(self) -> bool:
        """Annotators gave different ratings and no adjudicator has settled the step yet."""
        return self.adjudication is None and len(set(self.ratings.values())) > 1

    @property
    def priority(self) -> float:
        return self.disagreement + UNCERTAINTY_WEIGHT * self.uncertainty

    @property
    def human(self) -> float | None:
        """The mean human rating on the PRM's scale, None when nobody rated the node."""
        vals = [RATING_VALUE[r] for r in self.ratings.values() if r in RATING_VALUE]
        return sum(vals) / len(vals) if vals else None


@dataclass(frozen=True)
class QueueFilter:
    """Which nodes the queue offers: blank fields mean any. `annotator` keeps the nodes that annotator rated (to
    review their labels); `skip_rated_by` drops the nodes the current annotator already rated (so rating moves on);
    `disputed` keeps only the steps where annotators disagree and no adjudicator has decided (an adjudicator's
    queue); `only`, when set, keeps just those (session, node) steps (an annotator's assigned steps still to do), in
    the queue's usual order."""

    session_id: int | None = None
    problem_set: str = ""
    annotator: str = ""
    skip_rated_by: str = ""
    disputed: bool = False
    only: frozenset[tuple[int, str]] | None = None


def disagreement(prm: float | None, rollout: float | None, ratings: Iterable[int]) -> float:
    """The largest gap between any two signals on [0, 1]: PRM score, rollout value, and each human rating (so
    two annotators who disagree count too). 0 with fewer than two signals."""
    signals = [x for x in (prm, rollout) if x is not None] + [RATING_VALUE[r] for r in ratings if r in RATING_VALUE]
    return max(signals) - min(signals) if len(signals) >= 2 else 0.0


def uncertainty(prm: float | None) -> float:
    """1 at a PRM score of 0.5, 0 at 0 or 1; an unscored step counts as fully uncertain."""
    return 1.0 if prm is None else 1.0 - 2.0 * abs(float(prm) - 0.5)


def review_items(sources: Iterable[ReviewSource]) -> list[ReviewItem]:
    """Every live step of every source as a queue item (unordered)."""
    items = []
    for src in sources:
        for nid in src.tree.nodes(include_pruned=False):
            if nid == ROOT or not src.tree.is_live(nid):
                continue
            attrs = src.tree.node(nid)
            prm = src.scores.get(nid) if src.scores is not None else attrs["score"]
            succ, n = src.rollouts.get(nid, (0, 0))
            rollout = succ / n if n else None
            ratings = dict(src.ratings.get(nid, {}))
            items.append(ReviewItem(src.session_id, nid, src.problem_set, attrs["text"] or "", prm, rollout, succ, n,
                                    ratings, disagreement(prm, rollout, ratings.values()), uncertainty(prm),
                                    src.adjudicated.get(nid)))
    return items


def keep(item: ReviewItem, f: QueueFilter) -> bool:
    if f.session_id is not None and item.session_id != f.session_id:
        return False
    if f.problem_set and item.problem_set != f.problem_set:
        return False
    if f.annotator and f.annotator not in item.ratings:
        return False
    if f.disputed and not item.humans_disagree:
        return False
    if f.only is not None and (item.session_id, item.node_id) not in f.only:
        return False
    return not (f.skip_rated_by and f.skip_rated_by in item.ratings)


def review_queue(items: Iterable[ReviewItem], f: QueueFilter = QueueFilter()) -> list[ReviewItem]:
    """The kept items, most disagreement first, then PRM uncertainty; ties in a stable (session, node) order."""
    kept = [it for it in items if keep(it, f)]
    return sorted(kept, key=lambda it: (-it.priority, -it.disagreement, it.session_id, _node_key(it.node_id)))


def _node_key(node_id: str) -> tuple[int, ...]:
    return tuple(int(p) for p in node_id.split("."))


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{x:.2f}"


def human_text(item: ReviewItem) -> str:
    """The human ratings of a step, and the adjudicator's decision once there is one."""
    text = ", ".join(f"{a} {r:+d}" for a, r in sorted(item.ratings.items()))
    if item.adjudication:
        text += f" · settled by {item.adjudication[0]}: {item.adjudication[1]:+d}"
    return text


def queue_rows(queue: Sequence[ReviewItem], limit: int = 200) -> list[list[object]]:
    """Table rows of the queue (plain strings for model text: the Dataframe shows them as text)."""
    rows: list[list[object]] = []
    for rank, it in enumerate(queue[:limit], 1):
        human = human_text(it)
        rollout = f"{_fmt(it.rollout)} ({it.successes}/{it.rollouts})" if it.rollouts else ""
        rows.append([rank, it.session_id, it.node_id, _fmt(it.prm), rollout, human, f"{it.disagreement:.2f}",
                     it.problem_set, it.text[:300]])
    return rows


# -- calibration -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bin:
    lo: float
    hi: float
    count: int
    mean_score: float | None
    mean_target: float | None


def calibration_bins(pairs: Iterable[tuple[float, float]], bins: int = 10) -> list[Bin]:
    """(PRM score, target) pairs binned by score into `bins` equal bins on [0, 1] (a score of 1 falls in the last);
    each bin has its count and the mean score and target of its pairs (None when empty)."""
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    sums = [[0, 0.0, 0.0] for _ in range(bins)]
    for score, target in pairs:
        k = min(bins - 1, max(0, int(float(score) * bins)))
        sums[k][0] += 1
        sums[k][1] += float(score)
        sums[k][2] += float(target)
    return [Bin(k / bins, (k + 1) / bins, int(n), s / n if n else None, t / n if n else None)
            for k, (n, s, t) in enumerate(sums)]


def calibration_pairs(items: Iterable[ReviewItem]) -> dict[str, list[tuple[float, float]]]:
    """PRM score against rollout value, and against each human rating (on [0, 1]), over scored items."""
    out: dict[str, list[tuple[float, float]]] = {"rollout value": [], "human label": []}
    for it in items:
        if it.prm is None:
            continue
        if it.rollout is not None:
            out["rollout value"].append((it.prm, it.rollout))
        out["human label"] += [(it.prm, RATING_VALUE[r]) for r in it.ratings.values() if r in RATING_VALUE]
    return out


# -- agreement -------------------------------------------------------------------------------------------------
def cohen_kappa(a: Sequence[int], b: Sequence[int]) -> float | None:
    """Cohen's kappa of two raters over the same items; None with no items, 1.0 when both always agree on one
    category (no chance disagreement to correct for)."""
    if len(a) != len(b):
        raise ValueError("both raters must rate the same items")
    n = len(a)
    if n == 0:
        return None
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    expected = sum(ca[k] * cb[k] for k in ca) / (n * n)
    if expected >= 1.0:
        return 1.0 if observed >= 1.0 else 0.0
    return (observed - expected) / (1.0 - expected)


def fleiss_kappa(items: Sequence[Sequence[int]]) -> float | None:
    """Fleiss' kappa: each item is the ratings it received, every item rated by the same number (>= 2) of raters."""
    if not items:
        return None
    m = len(items[0])
    if m < 2 or any(len(r) != m for r in items):
        raise ValueError("Fleiss' kappa needs the same number (at least 2) of ratings per item")
    n = len(items)
    cats = sorted({r for row in items for r in row})
    counts = [Counter(row) for row in items]
    p_j = [sum(c[k] for c in counts) / (n * m) for k in cats]
    p_i = [(sum(v * v for v in c.values()) - m) / (m * (m - 1)) for c in counts]
    p_bar, p_e = sum(p_i) / n, sum(p * p for p in p_j)
    if p_e >= 1.0:
        return 1.0 if p_bar >= 1.0 else 0.0
    return (p_bar - p_e) / (1.0 - p_e)


def agreement(ratings: Mapping[tuple[int, str], Mapping[str, int]]) -> list[list[object]]:
    """Agreement rows `[annotators, measure, kappa, nodes]`: Cohen's kappa for every pair of annotators over the nodes
    both rated, and Fleiss' kappa for every larger group over the nodes all of them rated. Pairs and groups with no
    shared node are left out."""
    names = sorted({a for by in ratings.values() for a in by})
    rows: list[list[object]] = []
    # every group while there are few annotators; past that only pairs and all of them (groups grow as 2^n)
    sizes = range(2, len(names) + 1) if len(names) <= MAX_GROUPED else sorted({2, len(names)})
    for size in sizes:
        for group in combinations(names, size):
            shared = [by for by in ratings.values() if all(a in by for a in group)]
            if not shared:
                continue
            if size == 2:
                kappa = cohen_kappa([by[group[0]] for by in shared], [by[group[1]] for by in shared])
                measure = "Cohen"
            else:
                kappa = fleiss_kappa([[by[a] for a in group] for by in shared])
                measure = "Fleiss"
            rows.append([" · ".join(group), measure, None if kappa is None else round(kappa, 3), len(shared)])
    return rows
