"""The review queue's pure views on literal trees and ratings: ordering by disagreement and PRM uncertainty, filters,
Cohen's and Fleiss' kappa against textbook values, calibration bins, and the chart's escaped hover text."""
from __future__ import annotations

import pytest

from reasoning.tree import ReasoningTree
from reasoning.types import Problem, Step
from ui.calibration import calibration_figure
from ui.services import review as rv


def literal_tree() -> ReasoningTree:
    """0 → 0.0 (PRM 0.9) → 0.0.0 (PRM 0.5); 0 → 0.1 (PRM 0.95) → 0.1.0 (PRM 0.1, pruned)."""
    t = ReasoningTree(Problem("p", "2+2?", "4"))
    a = t.add_child("0", Step("two plus two"), score=0.9)
    t.add_child(a, Step("is <b>4</b>"), score=0.5)
    b = t.add_child("0", Step("maybe five"), score=0.95)
    t.set_pruned(t.add_child(b, Step("gone"), score=0.1))
    return t


def source(**kw) -> rv.ReviewSource:
    return rv.ReviewSource(7, "math", literal_tree(), **kw)


def test_queue_puts_disagreement_first_then_uncertainty():
    # 0.1: PRM 0.95, but rollouts say 1/8 and a human says bad -> the largest disagreement
    # 0.0.0: PRM 0.5, no other signal -> most uncertain, no disagreement
    # 0.0: PRM 0.9 and rollouts 7/8 agree
    src = source(ratings={"0.1": {"ann": -1}}, rollouts={"0.1": (1, 8), "0.0": (7, 8)})
    queue = rv.review_queue(rv.review_items([src]))
    assert [it.node_id for it in queue] == ["0.1", "0.0.0", "0.0"]  # the pruned step is not offered
    top = queue[0]
    assert top.disagreement == pytest.approx(0.95) and top.rollout == pytest.approx(0.125)
    assert queue[1].uncertainty == pytest.approx(1.0) and queue[1].disagreement == 0.0
    assert queue[2].disagreement == pytest.approx(0.9 - 0.875)


def test_two_annotators_who_disagree_count_as_disagreement():
    assert rv.disagreement(None, None, [1, -1]) == 1.0
    assert rv.disagreement(0.7, None, []) == 0.0  # one signal: nothing to disagree with
    assert rv.disagreement(0.7, None, [0]) == pytest.approx(0.2)  # neutral sits at 0.5


def test_active_prm_scores_override_the_stored_ones():
    src = source(scores={"0.0": 0.5, "0.0.0": 0.99, "0.1": 0.99})
    assert rv.review_queue(rv.review_items([src]))[0].node_id == "0.0"


def test_filters_by_session_problem_set_and_annotator():
    a = source(ratings={"0.0": {"ann": 1}, "0.1": {"bob": -1}})
    b = rv.ReviewSource(8, "imported: prm800k.jsonl", literal_tree())
    items = rv.review_items([a, b])
    assert {it.session_id for it in rv.review_queue(items, rv.QueueFilter(session_id=8))} == {8}
    assert {it.session_id for it in rv.review_queue(items, rv.QueueFilter(problem_set="math"))} == {7}
    assert [(it.session_id, it.node_id) for it in rv.review_queue(items, rv.QueueFilter(annotator="ann"))] == [
        (7, "0.0")]
    left = rv.review_queue(items, rv.QueueFilter(session_id=7, skip_rated_by="ann"))
    assert "0.0" not in [it.node_id for it in left] and len(left) == 2


def test_only_keeps_the_given_steps_in_the_queues_order():
    # the assigned steps still to do, given in another order than the queue's: the queue's order wins
    src = source(ratings={"0.1": {"ann": -1}}, rollouts={"0.1": (1, 8), "0.0": (7, 8)})
    items = rv.review_items([src, rv.ReviewSource(8, "math", literal_tree())])
    mine = rv.review_queue(items, rv.QueueFilter(only=frozenset({(7, "0.0"), (7, "0.1"), (9, "0.0")})))
    assert [(it.session_id, it.node_id) for it in mine] == [(7, "0.1"), (7, "0.0")]
    assert rv.review_queue(items, rv.QueueFilter(only=frozenset())) == []  # nothing assigned: nothing queued
    assert len(rv.review_queue(items, rv.QueueFilter(session_id=8, only=frozenset({(7, "0.0")})))) == 0


def test_the_adjudicators_queue_holds_the_disputed_steps_until_settled():
    ratings = {"0.0": {"ann": 1, "bob": -1}, "0.0.0": {"ann": 1, "bob": 1}, "0.1": {"ann": 0, "bob": 1}}
    items = rv.review_items([source(ratings=ratings, adjudicated={"0.1": ("carol", 1)})])
    disputed = rv.review_queue(items, rv.QueueFilter(disputed=True))
    assert [it.node_id for it in disputed] == ["0.0"]  # 0.0.0 agrees; 0.1 is settled already
    settled = next(it for it in items if it.node_id == "0.1")
    assert rv.human_text(settled) == "ann +0, bob +1 · settled by carol: +1"


def test_queue_rows_show_text_as_plain_strings():
    rows = rv.queue_rows(rv.review_queue(rv.review_items([source(rollouts={"0.0": (7, 8)})])))
    assert rows[0][0] == 1 and len(rows[0]) == len(rv.QUEUE_HEADERS)
    by_node = {r[2]: r for r in rows}
    assert by_node["0.0"][4] == "0.88 (7/8)" and by_node["0.0.0"][-1] == "is <b>4</b>"


def test_cohen_kappa_textbook_value():
    # Wikipedia's example: 50 proposals, yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> kappa 0.4
    a = [1] * 20 + [1] * 5 + [-1] * 10 + [-1] * 15
    b = [1] * 20 + [-1] * 5 + [1] * 10 + [-1] * 15
    assert rv.cohen_kappa(a, b) == pytest.approx(0.4)
    assert rv.cohen_kappa([1, 1, 0, 0], [1, 0, 0, 0]) == pytest.approx(0.5)
    assert rv.cohen_kappa([1, -1], [-1, 1]) == pytest.approx(-1.0)
    assert rv.cohen_kappa([], []) is None


def test_fleiss_kappa_textbook_value():
    # Wikipedia's example: 10 subjects, 14 raters, 5 categories -> kappa 0.210
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    items = [[cat for cat, n in enumerate(row) for _ in range(n)] for row in table]
    assert rv.fleiss_kappa(items) == pytest.approx(0.2099, abs=5e-4)
    with pytest.raises(ValueError, match="same number"):
        rv.fleiss_kappa([[1, 1], [1, 1, 1]])


def test_agreement_rows_count_the_shared_nodes():
    ratings = {(1, "0.0"): {"ann": 1, "bob": 1, "cy": -1}, (1, "0.1"): {"ann": -1, "bob": -1, "cy": -1},
               (1, "0.2"): {"ann": 1, "bob": -1}}
    rows = {r[0]: r for r in rv.agreement(ratings)}
    assert rows["ann · bob"][1:] == ["Cohen", pytest.approx(rv.cohen_kappa([1, -1, 1], [1, -1, -1]), abs=1e-3), 3]
    assert rows["ann · cy"][3] == 2 and rows["ann · bob · cy"][1] == "Fleiss" and rows["ann · bob · cy"][3] == 2
    assert rows["ann · bob · cy"][2] == pytest.approx(rv.fleiss_kappa([[1, 1, -1], [-1, -1, -1]]), abs=1e-3)


def test_agreement_stays_small_with_many_annotators():
    names = [f"a{i}" for i in range(8)]
    ratings = {(1, f"0.{k}"): {n: (1 if (k + i) % 3 else -1) for i, n in enumerate(names)} for k in range(4)}
    rows = rv.agreement(ratings)
    assert [r[1] for r in rows].count("Cohen") == 28 and [r[0] for r in rows if r[1] == "Fleiss"] == [
        " · ".join(names)]


def test_calibration_bins_count_and_average():
    pairs = [(0.05, 0.0), (0.15, 1.0), (0.12, 0.0), (0.95, 1.0), (1.0, 1.0)]
    bins = rv.calibration_bins(pairs, bins=10)
    assert [b.count for b in bins] == [1, 2, 0, 0, 0, 0, 0, 0, 0, 2]
    assert bins[1].mean_score == pytest.approx(0.135) and bins[1].mean_target == pytest.approx(0.5)
    assert bins[2].mean_score is None and bins[9].mean_target == 1.0
    with pytest.raises(ValueError, match="bins"):
        rv.calibration_bins(pairs, bins=0)


def test_calibration_pairs_and_figure_escape_hover_text():
    items = rv.review_items([source(ratings={"0.0": {"ann": 1, "bob": 0}}, rollouts={"0.0": (7, 8)})])
    pairs = rv.calibration_pairs(items)
    assert pairs["rollout value"] == [(0.9, 0.875)] and sorted(pairs["human label"]) == [(0.9, 0.5), (0.9, 1.0)]
    fig = calibration_figure({k: rv.calibration_bins(p) for k, p in pairs.items()}, prm_name="<img src=x>")
    assert "<img" not in fig.layout.title.text and "&lt;img" in fig.layout.title.text
    human = next(t for t in fig.data if t.name.startswith("human label"))
    assert human.text == ("2",) and "2 steps" in human.hovertext[0]
