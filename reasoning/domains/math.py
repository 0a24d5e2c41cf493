"""The generic free-text math domain: answers are read and compared by `math-verify` (GSM8K, MATH, LaTeX).

A step is terminal when it states a final answer: `\\boxed{...}`, GSM8K's `#### n`, or "the answer is ...". The gold
comparison is math-verify's (sympy equivalence after LaTeX / expression extraction): `\\frac{1}{2}` equals `0.5`,
`1,234` equals `1234`, `\\$1.24` equals `1.24`. math-verify bounds its own parsing with SIGALRM, which only works on
the main thread; elsewhere (the web server's worker threads) the checks run without that timeout.
"""
from __future__ import annotations

import re
import threading

from ..types import Problem, State, Step

# Where a step states its final answer (only to decide that it is terminal and what to show as its answer).
_BOXED = re.compile(r"\\boxed\s*\{")
_ANSWER_IS = re.compile(r"answer is[:\s]*\$?([^\n$]+?)\$?\s*(?:\.|$)", re.IGNORECASE)
_HASHES = re.compile(r"####\s*(.+)$", re.MULTILINE)
_ESCAPED_DOLLAR = re.compile(r"\\\$")  # MATH writes currency as `\$1.24`: a unit, not a math delimiter


def _boxed_contents(text: str) -> str | None:
    """The contents of the last `\\boxed{...}`, with nested braces balanced."""
    starts = [m.end() for m in _BOXED.finditer(text)]
    if not starts:
        return None
    depth, start = 1, starts[-1]
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start:i].strip()
    return None


def extract_answer(text: str) -> str | None:
    """The final answer a text states (`\\boxed{}`, `#### n`, "the answer is ..."), as written; None if none."""
    boxed = _boxed_contents(text)
    if boxed is not None:
        return boxed
    for pattern in (_HASHES, _ANSWER_IS):
        found = pattern.findall(text)
        if found:
            return found[-1].strip()
    return None


def _timeout() -> int | None:
    return 5 if threading.current_thread() is threading.main_thread() else None


def _parse(text: str) -> list:
    """math-verify's parse of an answer text: LaTeX (boxed first) and plain expressions."""
    from math_verify import parse  # imported lazily: it pulls in sympy, which the search itself never needs

    cleaned = _ESCAPED_DOLLAR.sub("", text).strip()
    if "\\" in cleaned and "$" not in cleaned and "\\boxed" not in cleaned:
        cleaned = f"${cleaned}$"  # bare LaTeX (`\\dfrac{3}{4}`): math-verify reads LaTeX between delimiters
    return parse(cleaned, parsing_timeout=_timeout())


def _answer_text(text: str) -> str:
    """The part of a text that holds its answer: after GSM8K's `####`, else the whole text."""
    hashes = _HASHES.findall(text)
    return hashes[-1].strip() if hashes else text


def answers_match(predicted: str | None, gold: str | None) -> bool:
    """Whether `predicted` states the same answer as `gold` (a bare answer or a whole GSM8K / MATH solution)."""
    if predicted is None or gold is None or not predicted.strip() or not gold.strip():
        return False
    from math_verify import verify

    gold_parsed, pred_parsed = _parse(_answer_text(gold)), _parse(_answer_text(predicted))
    if not gold_parsed or not pred_parsed:  # nothing mathematical in one of them: compare the words
        return _answer_text(predicted).strip().lower() == _answer_text(gold).strip().lower()
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=_timeout()))


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
