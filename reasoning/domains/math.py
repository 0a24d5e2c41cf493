"""The generic free-text math domain: answers are read from 'the answer is', \\boxed{} or '####'."""
from __future__ import annotations

import re
from fractions import Fraction

from ..types import Problem, State, Step

_BOXED = re.compile(r"\\boxed\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}")
_ANSWER_IS = re.compile(r"answer is[:\s]*\$?([^\n$]+?)\$?\s*(?:\.|$)", re.IGNORECASE)
_HASHES = re.compile(r"####\s*(.+)$", re.MULTILINE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")


def extract_answer(text: str) -> str | None:
    for pattern in (_BOXED, _HASHES, _ANSWER_IS):
        found = pattern.findall(text)
        if found:
            return found[-1].strip()
    return None


def _as_number(text: str) -> Fraction | None:
    m = _NUMBER.findall(text.replace("$", ""))
    if not m:
        return None
    try:
        return Fraction(m[-1].replace(",", ""))
    except (ValueError, ZeroDivisionError):
        return None


def answers_match(predicted: str | None, gold: str | None) -> bool:
    if predicted is None or gold is None:
        return False
    gold = extract_answer(gold) or gold
    a, b = _as_number(predicted), _as_number(gold)
    if a is not None and b is not None:
        return a == b
    return predicted.strip().lower() == gold.strip().lower()


class MathDomain:
    name = "math"

    def prompt(self, problem: Problem) -> str:
        return problem.text

    def observe(self, state: State, step: Step) -> Step:
        answer = extract_answer(step.text)
        terminal = step.terminal or answer is not None or step.factor == "conclude"
        return step.with_(terminal=terminal, answer=answer if answer is not None else step.answer)

    def check(self, problem: Problem, answer: str | None) -> bool:
        return answers_match(answer, problem.answer)
