"""Countdown / 24: a calculator tool that books the model's operations, an exact checker and a memoised solver.

A step is one operation written by the model, `8-7=1`. `observe` acts as a calculator that keeps the bookkeeping of
the remaining numbers and appends it: `8-7=1 (left: 1 4 8)`. The calculator books what the model *claims*: a wrong
result (`8-7=2`) or an operand that is not available is left as written and booked as claimed, so the mistake stays in
the trace for the PRM (and the model's own `verify` steps) to catch; the reconstructed answer expression always uses
the true operands, so the exact checker rejects such a path unless it is corrected. Such a step carries `valid: False`
and, in words, what is wrong in `meta["invalid"]` (e.g. `7 is used twice but the numbers left (4 7 8 8) hold one 7`),
which the search and the explorer copy onto the node. Factors:

- `verify` changes nothing; `correct` replaces the latest operation (undo, then book the new one);
- any other factor books its operation; `conclude`, or one number left, ends the path with
  `(answer: <expression>)`, the expression over the given numbers rebuilt from the path, e.g. `(4-(8-7))*8`.

A step a person types is booked the same way (`read_typed`), and refused where booking would drop or change what was
typed (a note the calculator would not write, a typed final answer under a factor that does not end the path).
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache

from ..types import Problem, State, Step, StepMeta

NUM = r"\(?-?\d+(?:/\d+)?\)?"
_OP = re.compile(rf"^\s*(?P<a>{NUM})\s*(?P<op>[-+*/x×÷−])\s*(?P<b>{NUM})\s*=\s*(?P<c>{NUM})")
_OP_ALIASES = {"x": "*", "×": "*", "÷": "/", "−": "-"}
_BOOKKEEPING = re.compile(r"\s*\((?:left|answer):.*$", re.DOTALL)
OPS = "+-*/"


def fmt(value: Fraction) -> str:
    """A number as the model and the calculator write it: `3`, `-1`, `8/3`."""
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def fmt_operand(value: Fraction) -> str:
    """An operand inside an operation: fractions and negatives are parenthesised, `3-(8/3)=1/3`."""
    text = fmt(value)
    return f"({text})" if value.denominator != 1 or value < 0 else text


def _num(text: str) -> Fraction:
    return Fraction(text.strip("()"))


def apply_op(a: Fraction, op: str, b: Fraction) -> Fraction | None:
    """The exact result of `a op b`, or None for a division by zero."""
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    return a / b if b != 0 else None


@dataclass(frozen=True)
class Operation:
    """`a op b = claimed` as the model wrote it; `valid` once booked: operands available, arithmetic right."""

    a: Fraction
    op: str
    b: Fraction
    claimed: Fraction

    @property
    def true_result(self) -> Fraction | None:
        return apply_op(self.a, self.op, self.b)

    @property
    def text(self) -> str:
        return f"{fmt_operand(self.a)}{self.op}{fmt_operand(self.b)}={fmt(self.claimed)}"


def parse_operation(text: str) -> Operation | None:
    """Read `8-7=1` (also `8 x 3 = 24`, `3-(8/3)=1/3`) from the start of a step; None when it is not one."""
    m = _OP.match(text)
    if not m:
        return None
    try:
        op = _OP_ALIASES.get(m["op"], m["op"])
        return Operation(_num(m["a"]), op, _num(m["b"]), _num(m["c"]))
    except (ValueError, ZeroDivisionError):
        return None


def _wrap(expr: str) -> str:
    return f"({expr})" if any(ch in expr[1:] for ch in OPS) else expr


@dataclass
class Board:
    """The calculator's memory: remaining numbers with the expression each stands for, and the history for undo."""

    numbers: list[tuple[Fraction, str]]
    history: list[list[tuple[Fraction, str]]] = field(default_factory=list)
    errors: int = 0  # booked operations that were mistakes (still in effect)
    error_stack: list[int] = field(default_factory=list)
    mistake: str | None = None  # what was wrong with the latest booked operation, in words (None: nothing)

    @classmethod
    def start(cls, numbers: list[int]) -> Board:
        return cls([(Fraction(n), str(n)) for n in numbers])

    @property
    def values(self) -> list[Fraction]:
        return sorted(v for v, _ in self.numbers)

    def left_text(self) -> str:
        return " ".join(fmt(v) for v in self.values)

    def _take(self, value: Fraction, pool: list[tuple[Fraction, str]]) -> tuple[str, bool]:
        for i, (v, _) in enumerate(pool):
            if v == value:
                return pool.pop(i)[1], True
        return fmt_operand(value), False

    def book(self, op: Operation) -> bool:
        """Book `op` as claimed; returns whether it was valid (operands available and arithmetic right)."""
        self.history.append(list(self.numbers))
        self.error_stack.append(self.errors)
        left = self.left_text()
        pool = list(self.numbers)
        ea, ok_a = self._take(op.a, pool)
        eb, ok_b = self._take(op.b, pool)
        valid = ok_a and ok_b and op.true_result == op.claimed
        self.mistake = None if valid else _mistake(op, ok_a, ok_b, left)
        pool.append((op.claimed, f"{_wrap(ea)}{op.op}{_wrap(eb)}"))
        self.numbers = pool
        self.errors += 0 if valid else 1
        return valid

    def undo(self) -> None:
        if self.history:
            self.numbers = self.history.pop()
            self.errors = self.error_stack.pop()

    @property
    def last_expression(self) -> str:
        return self.numbers[-1][1]


def _mistake(op: Operation, ok_a: bool, ok_b: bool, left: str) -> str:
    """Why a booked operation is invalid: an operand that is not among the numbers left (or one used twice), a
    wrong result, a division by zero."""
    why = []
    if not ok_a:
        why.append(f"{fmt(op.a)} is not among the numbers left ({left})")
    if not ok_b and op.b == op.a and ok_a:
        why.append(f"{fmt(op.b)} is used twice but the numbers left ({left}) hold one {fmt(op.b)}")
    elif not ok_b and (ok_a or op.b != op.a):
        why.append(f"{fmt(op.b)} is not among the numbers left ({left})")
    true = op.true_result
    if true is None:
        why.append("division by zero")
    elif true != op.claimed:
        why.append(f"{fmt_operand(op.a)}{op.op}{fmt_operand(op.b)} is {fmt(true)}, not {fmt(op.claimed)}")
    return "; ".join(why)


def replay(problem: Problem, steps: tuple[Step, ...] | list[Step]) -> Board:
    """The calculator's state after `steps` (bookkeeping is recomputed, so edited steps are honoured)."""
    board = Board.start(problem.meta["numbers"])
    for step in steps:
        _apply(board, step)
    return board


def _apply(board: Board, step: Step) -> tuple[Operation | None, bool]:
    if step.factor == "verify":
        return None, True
    op = parse_operation(step.text)
    if op is None:
        return None, False
    if step.factor == "correct":
        board.undo()
    return op, board.book(op)


def strip_bookkeeping(text: str) -> str:
    """The model's own words of a step, without any calculator note (the model may imitate one)."""
    return _BOOKKEEPING.sub("", text).strip()


class CountdownDomain:
    """Countdown / 24 (ARCHITECTURE.md, "Core concepts"); `Problem.meta` holds `numbers` and `target`."""

    name = "countdown"

    def prompt(self, problem: Problem) -> str:
        return problem.text

    def observe(self, state: State, step: Step) -> Step:
        board = replay(state.problem, state.steps)
        text = strip_bookkeeping(step.text)
        fresh = step.with_(text=text)
        op, valid = _apply(board, fresh)
        if op is None:
            terminal = step.factor == "conclude"
            meta: StepMeta = {**step.meta, "valid": step.factor == "verify"}
            if step.factor != "verify":
                meta["invalid"] = "no operation the calculator can book (one such as 8-7=1)"
            return fresh.with_(terminal=terminal, answer=None, meta=meta)
        meta = {**step.meta, "valid": valid, "left": [fmt(v) for v in board.values]}
        if not valid:  # flagged on the node (the inspector, the hover and the trace show it); booked as claimed
            meta["invalid"] = board.mistake
        if step.factor == "conclude" or len(board.numbers) == 1:
            answer = board.last_expression
            return fresh.with_(text=f"{text} (answer: {answer})", terminal=True, answer=answer, meta=meta)
        return fresh.with_(text=f"{text} (left: {board.left_text()})", terminal=False, answer=None, meta=meta)

    def read_typed(self, state: State, step: Step) -> Step:
        """A step a person typed, booked as `observe` books a generated one; a ValueError (one line) where that would
        drop or change what was typed. The calculator writes its own note, so a typed note must be the one it
        writes: a typed `(answer: ...)` must end the path with that answer, a typed `(left: ...)` must list what
        the calculator finds left (`verify` books nothing and writes no note)."""
        booked = self.observe(state, step)
        typed = " ".join(step.text.split())
        if " ".join(booked.text.split()).startswith(typed):
            return booked
        note = typed[len(strip_bookkeeping(typed)):].strip()
        final = note.startswith("(answer:") and not booked.terminal
        fix = "pick 'conclude' to end the path with it" if final else f"leave out {note!r}"
        raise ValueError(f"under '{step.factor}' the calculator would store this step as {booked.text!r}"
                         f"{', not as a final answer' if final else ''}: {fix}")

    def check(self, problem: Problem, answer: str | None) -> bool:
        return check_expression(answer, problem.meta["numbers"], problem.meta.get("target", 24))


# -- the exact checker ------------------------------------------------------------------------------------------------
_AST_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


def evaluate(expression: str) -> tuple[Fraction, list[int]]:
    """The exact value of an arithmetic expression over integers, and the integers it uses; ValueError if not one."""
    try:
        tree = ast.parse(expression.replace("×", "*").replace("÷", "/").replace("−", "-"), mode="eval")
    except SyntaxError:
        raise ValueError(f"not an arithmetic expression: {expression!r}") from None
    used: list[int] = []

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.BinOp) and type(node.op) in _AST_OPS:
            value = apply_op(walk(node.left), _AST_OPS[type(node.op)], walk(node.right))
            if value is None:
                raise ValueError("division by zero")
            return value
        if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
            used.append(node.value)
            return Fraction(node.value)
        raise ValueError(f"only integers, + - * / and parentheses are allowed in {expression!r}")

    return walk(tree.body), used


def check_expression(answer: str | None, numbers: list[int], target: int = 24) -> bool:
    """Exact check: the expression uses each given number exactly once and equals the target (fractions exact)."""
    if not answer:
        return False
    try:
        value, used = evaluate(answer)
    except ValueError:
        return False
    return sorted(used) == sorted(numbers) and value == target


# -- the solver -------------------------------------------------------------------------------------------------------
def moves(values: tuple[Fraction, ...]) -> list[tuple[Fraction, str, Fraction, Fraction, tuple[Fraction, ...]]]:
    """Every operation on two of `values`: (a, op, b, result, remaining values sorted)."""
    out, seen = [], set()
    for i in range(len(values)):
        for j in range(len(values)):
            if i == j:
                continue
            a, b = values[i], values[j]
            rest = [v for k, v in enumerate(values) if k not in (i, j)]
            for op in OPS:
                if op in "+*" and i > j:
                    continue
                result = apply_op(a, op, b)
                key = (a, op, b)
                if result is None or key in seen:
                    continue
                seen.add(key)
                out.append((a, op, b, result, tuple(sorted([*rest, result]))))
    return out


@lru_cache(maxsize=200_000)
def _solvable(values: tuple[Fraction, ...], target: Fraction) -> bool:
    if len(values) == 1:
        return values[0] == target
    return any(_solvable(rest, target) for *_, rest in moves(values))


def solvable(numbers, target=24) -> bool:
    """Whether the multiset `numbers` (ints or Fractions) can make `target` with + - * /, each number once."""
    return _solvable(tuple(sorted(Fraction(n) for n in numbers)), Fraction(target))


def keeps_solvable(problem: Problem, steps: tuple[Step, ...] | list[Step]) -> bool:
    """Whether the numbers left after `steps` can still make the target (a step the calculator books as a mistake
    counts as it leaves the board): how good a policy's first move is, before any search."""
    board = replay(problem, steps)
    return board.errors == 0 and solvable(board.values, problem.meta.get("target", 24))


def committed_first_move(problem: Problem, steps: tuple[Step, ...] | list[Step]) -> list[Step] | None:
    """The steps up to the first operation a path keeps: everything before its second operation, so that a first try
    the path itself judged dead and corrected (`verify` "... cannot make 24", then `correct`) does not count, and the
    try it went on from does. None when the path writes no operation."""
    steps = list(steps)
    board, wrote = Board.start(problem.meta["numbers"]), False
    start = len(board.numbers)
    for k, step in enumerate(steps):  # replay's walk, stopped at the second operation
        op, _ = _apply(board, step)
        wrote = wrote or op is not None
        if len(board.numbers) <= start - 2:
            return steps[:k]
    return steps if wrote else None


def solve(numbers: list[int], target: int = 24) -> str | None:
    """One expression over `numbers` that makes `target`, or None when there is none."""
    board = Board.start(numbers)
    while len(board.numbers) > 1:
        values = tuple(v for v, _ in board.numbers)
        good = [m for m in moves(values) if _solvable(m[4], Fraction(target))]
        if not good:
            return None
        a, op, b, result, _ = good[0]
        board.book(Operation(a, op, b, result))
    return board.last_expression if board.numbers[0][0] == target else None
