"""The free-text math checker (math-verify): GSM8K, MATH and LaTeX answers that must and must not match."""
from __future__ import annotations

import threading

import pytest

from reasoning.domains.math import MathDomain, answers_match, extract_answer
from reasoning.types import Problem, State, Step

MATCH = [
    ("1234", "Natalia sold 48 clips... so 1,000 + 234 = 1,234.\n#### 1,234"),  # GSM8K gold with a thousands comma
    ("1,234", "#### 1234"),
    ("0.5", "\\boxed{\\frac{1}{2}}"),  # MATH: a fraction against its decimal
    ("\\frac{1}{2}", "0.5"),
    ("1.24", "\\$1.24"),  # MATH writes currency with an escaped dollar
    ("\\$1.24", "1.24"),
    ("\\boxed{72}", "#### 72"),
    ("\\frac{3}{4}", "\\dfrac{3}{4}"),
]
NO_MATCH = [
    ("1235", "#### 1,234"),
    ("0.52", "\\boxed{\\frac{1}{2}}"),
    ("2", "\\boxed{\\frac{1}{2}}"),
    ("1.25", "\\$1.24"),
    ("12", "#### 1,234"),
    ("", "#### 5"),
    (None, "#### 5"),
    ("5", None),
]


@pytest.mark.parametrize(("predicted", "gold"), MATCH)
def test_equivalent_answers_match(predicted, gold):
    assert answers_match(predicted, gold)


@pytest.mark.parametrize(("predicted", "gold"), NO_MATCH)
def test_different_answers_do_not_match(predicted, gold):
    assert not answers_match(predicted, gold)


def test_extract_reads_nested_boxed_hashes_and_answer_is():
    assert extract_answer("so x = \\boxed{\\frac{1}{2}} here") == "\\frac{1}{2}"
    assert extract_answer("the total is\n#### 1,234") == "1,234"
    assert extract_answer("Therefore the answer is 42.") == "42"
    assert extract_answer("we add 3 and 4") is None


def test_domain_marks_an_answering_step_terminal_and_checks_it():
    domain, problem = MathDomain(), Problem("p", "What is half of one?", answer="\\boxed{\\frac{1}{2}}")
    step = domain.observe(State(problem), Step("Half of one is \\boxed{0.5}", "conclude"))
    assert step.terminal and step.answer == "0.5" and domain.check(problem, step.answer)
    assert not domain.check(problem, "0.25")


def test_checks_work_off_the_main_thread():
    """The web server checks answers in worker threads, where math-verify's SIGALRM timeout cannot be set."""
    results = []
    worker = threading.Thread(target=lambda: results.append((answers_match("0.5", "\\frac{1}{2}"),
                                                              answers_match("0.6", "\\frac{1}{2}"))))
    worker.start()
    worker.join()
    assert results == [(True, False)]
