"""Issue 13: the automatic labels (rollout estimates, first-error search) in the trace's `auto` column, the rendered
trace, and the gold check cached so that a figure redrawn often checks each answer once. Pure tests."""
from __future__ import annotations

from reasoning.tree import ReasoningTree
from reasoning.types import Problem, Step
from storage.records import AutoLabel
from ui.services import views
from ui.services.views import TRACE_HEADERS, auto_marks, gold_mark, trace_math, trace_rows

AUTO = TRACE_HEADERS.index("auto")


def word_tree() -> tuple[ReasoningTree, str, str]:
    tree = ReasoningTree(Problem("p", "Three pencils cost $\\$1.24$. What is $\\frac{1}{2}$ of 8*3*1?", answer="12"))
    a = tree.add_child("0", Step("Half of 8*3*1 is $\\frac{24}{2}$.", "compute"), score=0.5, value=0.5)
    b = tree.add_child(a, Step("The answer is 12.", "conclude", terminal=True, answer="12"), score=0.9, value=0.9)
    return tree, a, b


def test_trace_headers_only_grow_at_the_end():
    assert TRACE_HEADERS[:12] == ["#", "node", "factor", "origin", "step", "PRM", "value", "Q", "visits", "prior",
                                  "human", "gold"]
    assert TRACE_HEADERS[12:] == ["auto"]


def test_auto_marks_and_the_auto_column():
    tree, a, b = word_tree()
    labels = [AutoLabel(a, "rollout", 4, 3, 0.75, True), AutoLabel(b, "first_error", 0, 0, None, False),
              AutoLabel(b, "rollout", 2, 0, None, None)]
    marks = auto_marks(labels)
    assert marks[a].value == 0.75 and marks[a].text == "rollouts 3/4 = 0.75 (rollout)"
    assert marks[b].text == "wrong, inferred (first_error) · rollouts 0/2 = 0.00 (rollout)"
    assert marks[b].value == 0.0, "the label with the most rollouts gives the colour"
    rows = trace_rows(tree, b, {}, marks)
    assert [r[AUTO] for r in rows] == ["", "rollouts 3/4 = 0.75 (rollout)", marks[b].text]
    assert all(len(r) == len(TRACE_HEADERS) for r in rows)
    assert auto_marks([AutoLabel(a, "first_error", 0, 0, None, True)])[a].value == 1.0
    assert trace_rows(tree, b, {})[1][AUTO] == "", "no auto labels: the column is blank"


def test_imported_steps_show_their_origin_not_problem():
    tree = ReasoningTree(Problem("q", "A problem"))
    n = tree.add_child("0", Step("Imported step", None), origin="imported")
    rows = trace_rows(tree, n, {})
    assert rows[0][2] == "(problem)" and rows[1][2] == "imported"


def test_the_rendered_trace_typesets_math_and_keeps_the_rest_text():
    tree, _, b = word_tree()
    tree.node(b)["text"] = "The answer is 12. <img src=x onerror=alert(1)> [x](javascript:alert(2))"
    md = trace_math(trace_rows(tree, b, {}))
    assert md.startswith("**Problem**\n\n") and "\\(\\$1.24\\)" in md and "\\(\\frac{24}{2}\\)" in md
    assert "8&#42;3&#42;1" in md and "<img" not in md and "javascript:" not in md
    assert "selected" in md.split("**step 2")[1] and "✓ correct" in md
    assert trace_math([]) == ""


def test_a_redraw_checks_each_answer_once(monkeypatch):
    tree, _, b = word_tree()
    calls = []
    real = views.get_domain

    def counting(name):
        domain = real(name)

        class Counted:
            def check(self, problem, answer):
                calls.append(answer)
                return domain.check(problem, answer)

        return Counted()

    monkeypatch.setattr(views, "get_domain", counting)
    views._GOLD_CACHE.clear()
    assert [gold_mark(tree, b) for _ in range(5)] == ["✓ correct"] * 5
    assert calls == ["12"]
    other = ReasoningTree(Problem("p2", "Another problem", answer="13"))
    c = other.add_child("0", Step("The answer is 12.", None, terminal=True, answer="12"))
    assert gold_mark(other, c) == "✗ wrong", "a different gold is a different check"
    assert calls == ["12", "12"]


def test_a_redraw_checks_a_bounded_number_of_new_answers():
    from ui.services.views import gold_marks

    views._GOLD_CACHE.clear()
    tree = ReasoningTree(Problem("p3", "A problem", answer="3"))
    ends = [tree.add_child("0", Step(f"The answer is {k}.", None, terminal=True, answer=str(k))) for k in range(5)]
    step = tree.add_child("0", Step("A step.", None))
    first = gold_marks(tree, [step, *ends], max_new=2)
    assert list(first) == ends[:2], "two new checks, the rest wait"
    second = gold_marks(tree, ends, max_new=2)
    assert list(second) == ends[:4] and second[ends[2]] == "✗ wrong" and second[ends[3]] == "✓ correct"
    everything = gold_marks(tree, ends, max_new=2)
    assert everything == {n: ("✓ correct" if k == 3 else "✗ wrong") for k, n in enumerate(ends)}
