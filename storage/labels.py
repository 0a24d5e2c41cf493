"""Step labels for export: human / auto / both, hard or soft, the neutral mapping, how annotators' ratings combine,
which paths count, and the account of every stored rating (exported, or why not)."""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from reasoning.tree import ROOT, ReasoningTree

from .records import Annotation, AutoLabel, LabeledTree

SOURCES = ("human", "auto", "both")
NEUTRAL = {"good": True, "bad": False, "drop": None}  # what a 0 rating becomes where labels are binary
# How several annotators' ratings of one node become its label (an adjudicator's decision settles it in all four):
# latest: the latest sure rating (unsure ones only where no sure one exists); majority: the most frequent sure
# rating, none on a tie; unanimous: only where every sure rating agrees; each: every annotator's ratings are their
# own labels, written as their own records (with an "annotator" field).
COMBINES = ("latest", "majority", "unanimous", "each")
COMBINE_LOSS = {
    "latest": "superseded by a later or surer rating (--combine latest)",
    "majority": "outvoted (--combine majority)",
    "unanimous": "annotators disagree (--combine unanimous)",
}
TIE = "a tie between annotators (--combine majority)"
ADJUDICATED = "settled otherwise by an adjudicator"


@dataclass(frozen=True)
class LabelOptions:
    """How an export reads labels. `all_paths` adds paths with unlabeled steps where the format can carry them;
    `annotators` keeps only those annotators' ratings (empty: everyone's)."""

    labels: str = "human"
    soft: bool = False
    neutral: str = "drop"
    all_paths: bool = False
    combine: str = "latest"
    annotators: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.labels not in SOURCES:
            raise ValueError(f"labels must be one of {SOURCES}, not {self.labels!r}")
        if self.neutral not in NEUTRAL:
            raise ValueError(f"neutral must be one of {tuple(NEUTRAL)}, not {self.neutral!r}")
        if self.combine not in COMBINES:
            raise ValueError(f"combine must be one of {COMBINES}, not {self.combine!r}")
        object.__setattr__(self, "annotators", tuple(sorted({a.strip() for a in self.annotators if a.strip()})))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["annotators"] = list(self.annotators)
        return d

    def keeps(self, annotator: str) -> bool:
        return not self.annotators or annotator in self.annotators


@dataclass(frozen=True)
class StepLabel:
    """A node's label: `rating` on PRM800K's -1 / 0 / +1 scale, `soft` in [0, 1] where known."""

    rating: int | None
    soft: float | None = None
    source: str = "human"


def human_rating(notes: list[Annotation], combine: str = "latest") -> int | None:
    """Several annotators' ratings of one node as one label (see COMBINES); an adjudicator's decision wins."""
    if not notes:
        return None
    decided = [a for a in notes if a.adjudicated]
    if decided:
        return max(decided, key=lambda a: (_stamp(a), a.version)).rating
    if combine in ("latest", "each"):
        return max(notes, key=lambda a: (not a.unsure, _stamp(a), a.version)).rating
    sure = [a.rating for a in notes if not a.unsure] or [a.rating for a in notes]
    if combine == "unanimous":
        return sure[0] if len(set(sure)) == 1 else None
    (top, n), *rest = Counter(sure).most_common()
    return None if rest and rest[0][1] == n else top


def lost_reason(note: Annotation, notes: list[Annotation], combine: str) -> str | None:
    """Why `note` is not the node's combined label (None: it is, or agrees with it)."""
    label = human_rating(notes, combine)
    if label == note.rating:
        return None
    if any(a.adjudicated for a in notes):
        return ADJUDICATED
    if label is None and combine == "majority":
        return TIE
    return COMBINE_LOSS.get(combine, COMBINE_LOSS["latest"])


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
    """The labels of one tree under one set of options (and, when combining `each`, of one annotator); formats ask
    it about nodes and tell it which nodes' labels they wrote (`mark`), so an export can account for every rating."""

    def __init__(self, lt: LabeledTree, options: LabelOptions, annotator: str | None = None):
        self.lt, self.options, self.tree, self.annotator = lt, options, lt.tree, annotator
        self.notes = [a for a in lt.annotations if options.keeps(a.annotator)
                      and (annotator is None or a.annotator == annotator)]
        self.by_node: dict[str, list[Annotation]] = {}
        for a in self.notes:
            self.by_node.setdefault(a.node_id, []).append(a)
        autos: dict[str, list[AutoLabel]] = {}
        for auto in lt.auto_labels:
            autos.setdefault(auto.node_id, []).append(auto)
        resolved = {n: self._resolve(self.by_node.get(n, []), autos.get(n, [])) for n in self.tree.nodes()}
        self.labels = {n: lab for n, lab in resolved.items() if lab is not None}
        self.written: set[str] = set()  # nodes whose label a format wrote

    def _resolve(self, notes: list[Annotation], autos: list[AutoLabel]) -> StepLabel | None:
        human = human_rating(notes, self.options.combine) if self.options.labels in ("human", "both") else None
        auto = auto_label(autos) if self.options.labels in ("auto", "both") else None
        if human is not None:
            return StepLabel(human, auto.soft if auto else None, "human")
        return auto

    def mark(self, nodes: list[str] | set[str]) -> None:
        """Record that a format wrote these nodes' labels."""
        self.written.update(n for n in nodes if self.rating(n) is not None)

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


def labeled_runs(view: LabelView) -> list[tuple[list[str], list[str]]]:
    """Every maximal run of labeled steps on a root-to-leaf path, as (context, steps): the steps before the run
    (unlabeled somewhere, so they are context, not training targets) and the run. A run that starts at the root has
    no context. A run that is the start of a longer run from the same step says nothing new and is dropped."""
    runs: dict[tuple[str, ...], list[str]] = {}
    for p in leaf_paths(view.tree):
        start = None
        for i, nid in enumerate([*p, None]):
            labeled = nid is not None and view.good(nid) is not None
            if labeled and start is None:
                start = i
            elif not labeled and start is not None:
                runs.setdefault(tuple(p[start:i]), p[:start])
                start = None
    inner = {run[:i] for run in runs for i in range(1, len(run))}
    return [(context, list(run)) for run, context in runs.items() if run not in inner]


def export_paths(view: LabelView, *, partial: bool = False) -> list[list[str]]:
    """Root-anchored paths: fully labeled runs from the first step, or (`partial` formats with all_paths) whole
    root-to-leaf paths."""
    if partial and view.options.all_paths:
        return leaf_paths(view.tree)
    return [steps for context, steps in labeled_runs(view) if not context]


def views(lt: LabeledTree, options: LabelOptions) -> list[LabelView]:
    """The label views an export writes for one tree: one, or one per annotator when combining `each`."""
    if options.combine != "each" or options.labels == "auto":
        return [LabelView(lt, options)]
    names = sorted({a.annotator for a in lt.annotations if options.keeps(a.annotator)})
    return [LabelView(lt, options, name) for name in names]


# -- the account of every stored rating -------------------------------------------------------------------------
def _omission(note: Annotation, view: LabelView | None, options: LabelOptions, gap: str) -> str | None:
    """Why a stored rating is not in the export (None: it is there, as its node's label)."""
    if options.labels == "auto":
        return "human ratings not asked for (--labels auto)"
    if not options.keeps(note.annotator) or view is None:
        return "annotator not selected (--annotators)"
    if note.node_id not in view.tree or not view.tree.is_live(note.node_id):
        return "on a pruned branch"
    lost = lost_reason(note, view.by_node.get(note.node_id, []), options.combine)
    if lost is not None:
        return lost
    if note.node_id in view.written:
        return None
    if note.rating == 0 and NEUTRAL[options.neutral] is None:
        return "neutral, dropped (--neutral drop)"
    return gap or "the format wrote no path through it"


def account(lt: LabeledTree, views_: list[LabelView], options: LabelOptions,
            gap: str) -> list[tuple[Annotation, str | None]]:
    """Every stored human rating of one tree, with why it was left out of the views' records (None: exported)."""
    each = options.combine == "each" and options.labels != "auto"
    by_annotator = {v.annotator: v for v in views_}
    out = []
    for note in lt.annotations:
        view = by_annotator.get(note.annotator) if each else (views_[0] if views_ else None)
        out.append((note, _omission(note, view, options, gap)))
    return out


def rating_counts(accounts: list[tuple[Annotation, str | None]]) -> dict[str, Any]:
    """Ratings stored against ratings exported, per annotator, with the reasons for those left out."""
    total: dict[str, Any] = {"stored": 0, "exported": 0, "left_out": {}, "by_annotator": {}}
    for note, reason in accounts:
        mine = total["by_annotator"].setdefault(note.annotator, {"stored": 0, "exported": 0, "left_out": {}})
        for c in (total, mine):
            c["stored"] += 1
            if reason is None:
                c["exported"] += 1
            else:
                c["left_out"][reason] = c["left_out"].get(reason, 0) + 1
    total["by_annotator"] = dict(sorted(total["by_annotator"].items()))
    return total


def ratings_line(counts: dict[str, Any]) -> str:
    """The ratings part of an export's summary: stored against exported, per annotator, and why any were left out."""
    if not counts["stored"]:
        return "no human ratings stored in these sessions"
    who = ", ".join(f"{name} {c['exported']}/{c['stored']}" for name, c in counts["by_annotator"].items())
    line = f"human ratings: {counts['exported']} of {counts['stored']} exported ({who})"
    if counts["left_out"]:
        reasons = "; ".join(f"{n}: {why}" for why, n in sorted(counts["left_out"].items(), key=lambda kv: -kv[1]))
        line += f"; left out: {reasons}"
    return line
