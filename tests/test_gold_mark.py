"""Defect 7 (issue 13): a finished path shows a tick or a cross, from the domain's checker against the gold answer or
from an imported trace's `correct` flag, in the status line, the inspector line and the trace's gold column."""
from __future__ import annotations

from types import SimpleNamespace

from reasoning.problems import parse_problem_text
from reasoning.tree import ReasoningTree
from reasoning.types import Problem, Step
from ui.services.views import TRACE_HEADERS, gold_mark, node_info, result_line, trace_rows

GOLD = TRACE_HEADERS.index("gold")


def countdown_tree() -> tuple[ReasoningTree, str, str]:
    tree = ReasoningTree(parse_problem_text("Use 4 7 8 8 to make 24."))
    a = tree.add_child("0", Step("8-7=1 (left: 1 4 8)", "compute"))
    wrong = tree.add_child(a, Step("answer", "conclude", terminal=True, answer="(8-7)*4*8"))
    return tree, a, wrong


def test_countdown_paths_are_checked_by_the_exact_checker():
    tree, step, wrong = countdown_tree()
    right = tree.add_child(step, Step("answer", "conclude", terminal=True, answer="(7-8/8)*4"))
    assert gold_mark(tree, right) == "✓ correct"
    assert gold_mark(tree, wrong) == "✗ wrong"
    assert gold_mark(tree, step) == "", "a step that is not an answer gets no mark"
    assert trace_rows(tree, right, {})[-1][GOLD] == "✓ correct"
    assert [r[GOLD] for r in trace_rows(tree, right, {})[:-1]] == ["", ""]
    assert node_info(tree, wrong).endswith("· ✗ wrong")


def test_the_status_line_of_a_finished_search_marks_its_answer():
    tree, _, wrong = countdown_tree()
    result = SimpleNamespace(answer="(8-7)*4*8", value=0.9, stopped=False, nodes_created=3, seconds=1.0, node=wrong)
    assert "answer (8-7)*4*8 (value 0.900) ✗ wrong ·" in result_line(1, tree, result)
    result.node = None  # an algorithm that reports no node: no mark, nothing breaks
    assert "✗" not in result_line(1, tree, result) and "✓" not in result_line(1, tree, result)


def test_word_problems_use_the_gold_answer_and_imports_their_flag():
    tree = ReasoningTree(Problem("p", "Natalia sold 48 clips, then half as many. How many?", answer="72"))
    right = tree.add_child("0", Step("So the answer is 72.", None, terminal=True, answer="72"))
    wrong = tree.add_child("0", Step("So the answer is 70.", None, terminal=True, answer="70"))
    assert (gold_mark(tree, right), gold_mark(tree, wrong)) == ("✓ correct", "✗ wrong")

    imported = ReasoningTree(Problem("q", "A problem imported without its answer"))
    flagged = imported.add_child("0", Step("Done.", None, terminal=True, answer="5"), meta={"correct": False})
    unflagged = imported.add_child("0", Step("Done too.", None, terminal=True, answer="6"))
    assert gold_mark(imported, flagged) == "✗ wrong (imported)"
    assert gold_mark(imported, unflagged) == "", "no gold and no flag: nothing to claim"
