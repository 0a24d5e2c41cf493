"""The explorer's problem lookup: a stored problem is reused for its gold answer, unless it lacks what its domain
needs (then the typed text is parsed), so a search never fails on a stored problem built without its numbers."""
from __future__ import annotations

from fakes import FakeGenerator, FakeScorer
from reasoning.tree import ReasoningTree
from reasoning.types import Problem
from ui.service import Explorer


def test_a_stored_countdown_problem_without_numbers_is_parsed_from_its_text(store):
    text = "Use 2 3 4 6 to make 24."
    store.create_session(ReasoningTree(Problem("bare", text, domain="countdown")), name="built in code")
    engine = Explorer(FakeGenerator(), FakeScorer(), store)
    problem = engine.problem(text)
    assert problem.domain == "countdown" and sorted(problem.meta["numbers"]) == [2, 3, 4, 6]


def test_a_stored_math_problem_brings_its_gold_answer(store):
    text = "Tom has 3 apples and buys 4 more. How many apples does he have?"
    store.create_session(ReasoningTree(Problem("gsm-1", text, answer="7")), name="imported")
    engine = Explorer(FakeGenerator(), FakeScorer(), store)
    assert engine.problem(text).answer == "7"
