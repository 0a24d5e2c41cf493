"""Step labels for export: human / auto / both, hard or soft, the neutral mapping, and which paths count."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from reasoning.tree import ROOT, ReasoningTree

from .records import Annotation, AutoLabel, LabeledTree

SOURCES = ("human", "auto", "both")
NEUTRAL = {"good": True, "bad": False, "drop": None}  # what a 0 rating becomes where labels are binary


@dataclass(frozen=True)
class LabelOptions:
    """How an export reads labels. `all_paths` adds paths with unlabeled steps where the format can carry them."""

    labels: str = "human"
    soft: bool = False
    neutral: str = "drop"
    all_paths: bool = False

    def __post_init__(self) -> None:
        if self.labels not in SOURCES:
            raise ValueError(f"labels must be one of {SOURCES}, not {self.labels!r}")
        if self.neutral not in NEUTRAL:
            raise ValueError(f"neutral must be one of {tuple(NEUTRAL)}, not {self.neutral!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StepLabel:
    """A node's label: `rating` on PRM800K's -1 / 0 / +1 scale, `soft` in [0, 1] where known."""

    rating: int | None
    soft: float | None = None
    source: str = "human"


def human_rating(notes: list[Annotation]) -> int | None:
    """Several annotators of one node: sure ratings before unsure ones, then the latest."""
    if not notes:
        return None
    best = max(notes, key=lambda a: (not a.unsure, _stamp(a), a.version))
    return best.rating


def _stamp(a: Annotation) -> float:
    when = a.updated or a.created
    return when.timestamp() if when else 0.0


def auto_label(labels: list[AutoLabel]) -> StepLabel | None:
    """Several methods on one node: the one with the most rollouts."""
    if not labels:
        return None
    best = max(labels, key=lambda a: a.rollouts)
    soft = best.soft_value
    if soft is None and best.rollouts:
        soft = best.successes / best.rollouts
    hard = best.hard_label if best.hard_label is not None else (None if soft is None else soft > 0)
    return StepLabel(None if hard is None else (1 if hard else -1), soft, "auto")


class LabelView:
    """The labels of one tree under one set of options; formats ask it about nodes."""

    def __init__(self, lt: LabeledTree, options: LabelOptions):
        self.lt, self.options, self.tree = lt, options, lt.tree
        by_node: dict[str, list[Annotation]] = {}
        for a in lt.annotations:
            by_node.setdefault(a.node_id, []).append(a)
        autos: dict[str, list[AutoLabel]] = {}
        for auto in lt.auto_labels:
            autos.setdefault(auto.node_id, []).append(auto)
        resolved = {n: self._resolve(by_node.get(n, []), autos.get(n, [])) for n in self.tree.nodes()}
        self.labels = {n: lab for n, lab in resolved.items() if lab is not None}

    def _resolve(self, notes: list[Annotation], autos: list[AutoLabel]) -> StepLabel | None:
        human = human_rating(notes) if self.options.labels in ("human", "both") else None
        auto = auto_label(autos) if self.options.labels in ("auto", "both") else None
        if human is not None:
            return StepLabel(human, auto.soft if auto else None, "human")
        return auto

    def rating(self, nid: str) -> int | None:
        lab = self.labels.get(nid)
        return lab.rating if lab else None

    def good(self, nid: str) -> bool | None:
        """The binary label after the neutral mapping; None when the step has none."""
        r = self.rating(nid)
        return None if r is None else (NEUTRAL[self.options.neutral] if r == 0 else r > 0)

    def soft(self, nid: str) -> float | None:
        lab = self.labels.get(nid)
        if lab and lab.soft is not None:
            return lab.soft
        g = self.good(nid)
        return None if g is None else float(g)

    def value(self, nid: str) -> float | bool | None:
        return self.soft(nid) if self.options.soft else self.good(nid)


def leaf_paths(tree: ReasoningTree) -> list[list[str]]:
    """Every root-to-leaf path of the live (unpruned) tree, root excluded, in creation order."""
    out: list[list[str]] = []
    stack = [[ROOT]]
    while stack:
        path = stack.pop()
        kids = tree.children(path[-1])
        if not kids and len(path) > 1:
            out.append(path[1:])
        stack.extend([*path, k] for k in reversed(kids))
    return out


def labeled_prefix(path: list[str], view: LabelView) -> list[str]:
    """The longest start of `path` whose every step has a binary label."""
    for i, nid in enumerate(path):
        if view.good(nid) is None:
            return path[:i]
    return path


def export_paths(view: LabelView, *, partial: bool = False) -> list[list[str]]:
    """Paths an export writes: maximal fully labeled prefixes, or (`partial` formats with all_paths) whole paths."""
    if partial and view.options.all_paths:
        return leaf_paths(view.tree)
    seen: set[tuple[str, ...]] = set()
    out = []
    for p in leaf_paths(view.tree):
        pre = tuple(labeled_prefix(p, view))
        if pre and pre not in seen:
            seen.add(pre)
            out.append(list(pre))
    # A prefix of another kept path says nothing new.
    inner = {tuple(q[:i]) for q in out for i in range(1, len(q))}
    return [p for p in out if tuple(p) not in inner]
