"""Reading problems: JSONL records (plain, Countdown, GSM8K) and free text typed into the UI."""
from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import limits
from .digests import problem_id
from .limits import MAX_ANSWER_CHARS, MAX_ID_CHARS, MAX_PROBLEM_CHARS, TextError, check_text
from .types import Problem

_COUNTDOWN_TEXT = re.compile(
    r"^\s*(?:use\s+)?(?P<nums>-?\d+(?:[\s,]+-?\d+){1,7})\s*(?:(?:to\s+)?(?:make|reach|get)\s+(?P<target>-?\d+))?\s*\.?\s*$",
    re.IGNORECASE,
)


class ProblemFormatError(ValueError):
    """A problem record that cannot be read; the message names the line and the field."""


def countdown_problem(numbers: list[int], target: int = 24, pid: str | None = None) -> Problem:
    text = f"Use {' '.join(str(n) for n in numbers)} to make {target}."
    pid = pid or "countdown-" + "-".join(str(n) for n in numbers) + f"-{target}"
    return Problem(pid, text, None, "countdown", {"numbers": list(numbers), "target": target})


def parse_problem_text(text: str, pid: str | None = None) -> Problem:
    """Free text from the problem box: `Use 4 7 8 8 to make 24.` or `4 7 8 8` is Countdown, anything else math."""
    if not text or not text.strip():
        raise ProblemFormatError("the problem is empty")
    try:
        check_text(text, "the problem", MAX_PROBLEM_CHARS)
    except TextError as exc:
        raise ProblemFormatError(str(exc)) from None
    return countdown_text(text, pid) or Problem(pid or problem_id(text), text.strip())


def countdown_text(text: str, pid: str | None = None) -> Problem | None:
    """The Countdown problem a text states (`Use 4 7 8 8 to make 24.`, `4 7 8 8`), else None: the one reading of a
    problem's text, for the problem box, `search` and the `problem` field of a record alike."""
    m = _COUNTDOWN_TEXT.match(text)
    if not m:
        return None
    numbers = [int(x) for x in re.split(r"[\s,]+", m.group("nums").strip())]
    if not 2 <= len(numbers) <= 6:
        return None
    return countdown_problem(numbers, int(m.group("target") or 24), pid)


def problem_from_record(rec: Any, where: str = "record") -> Problem:
    """One problem record: `{id, problem, answer?}`, `{id, domain: countdown, numbers, target}` or GSM8K's
    `{question, answer}`."""
    if not isinstance(rec, dict):
        raise ProblemFormatError(f"{where}: a problem record must be a JSON object")
    try:
        return _checked(_record_problem(rec, where))
    except TextError as exc:
        raise ProblemFormatError(f"{where}: {exc}") from None


def _checked(p: Problem) -> Problem:
    """The shared text rule on every field a problem record brings in (NUL, lone surrogates, lengths)."""
    check_text(p.id, "field 'id'", MAX_ID_CHARS)
    check_text(p.text, "field 'problem'", MAX_PROBLEM_CHARS)
    if p.answer is not None:
        check_text(p.answer, "field 'answer'", MAX_ANSWER_CHARS, allow_empty=True)
    return p


def _record_problem(rec: dict[str, Any], where: str) -> Problem:
    if rec.get("domain") == "countdown" or "numbers" in rec:
        nums = rec.get("numbers")
        if not isinstance(nums, list) or not nums or not all(isinstance(n, int) and not isinstance(n, bool) for n in nums):
            raise ProblemFormatError(f"{where}: field 'numbers' must be a non-empty list of integers")
        target = rec.get("target", 24)
        if not isinstance(target, int) or isinstance(target, bool):
            raise ProblemFormatError(f"{where}: field 'target' must be an integer")
        return countdown_problem(nums, target, str(rec["id"]) if "id" in rec else None)
    text = rec.get("problem", rec.get("question"))
    if not isinstance(text, str) or not text.strip():
        raise ProblemFormatError(f"{where}: field 'problem' (or 'question') must be a non-empty string")
    answer = rec.get("answer")
    if answer is not None and not isinstance(answer, str | int | float):
        raise ProblemFormatError(f"{where}: field 'answer' must be a string or a number")
    pid = str(rec["id"]) if rec.get("id") is not None else None
    return countdown_text(text, pid) or Problem(pid or problem_id(text), text.strip(),
                                                None if answer is None else str(answer))


def check_input_file(path: str | Path, error: type[ValueError] = ProblemFormatError, what: str = "") -> int:
    """The size of an input file (a problems or import file) that is a regular file of at most MAX_IMPORT_BYTES,
    else `error` in one line. Checked before anything is read: a FIFO would hang the reader and a device such as
    /dev/zero would fill the memory."""
    try:
        return _regular_size(os.stat(path), path, error, what)
    except OSError as exc:
        raise error(f"cannot read {what}{path}: {exc.strerror}") from None


def read_input_file(path: str | Path, error: type[ValueError] = ProblemFormatError, what: str = "") -> bytes:
    """The bytes of an input file under `check_input_file`'s rule, never more than MAX_IMPORT_BYTES of them (opened
    without blocking and checked again once open, so a file swapped for a FIFO meanwhile cannot hang it)."""
    check_input_file(path, error, what)
    try:
        with open(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as f:
            _regular_size(os.fstat(f.fileno()), path, error, what)
            data = f.read(limits.MAX_IMPORT_BYTES + 1)
    except OSError as exc:
        raise error(f"cannot read {what}{path}: {exc.strerror}") from None
    if len(data) > limits.MAX_IMPORT_BYTES:  # it grew since it was checked
        raise error(_too_large(path, what))
    return data


def _regular_size(st: os.stat_result, path: str | Path, error: type[ValueError], what: str) -> int:
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "a pipe" if stat.S_ISFIFO(st.st_mode) else \
            "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a file"
        raise error(f"{what}{path} is {kind}, not a regular file: give a file")
    if st.st_size > limits.MAX_IMPORT_BYTES:
        raise error(_too_large(path, what, st.st_size))
    return st.st_size


def _too_large(path: str | Path, what: str, size: int | None = None) -> str:
    has = f" ({size:,} bytes)" if size is not None else ""
    return f"{what}{path} is too large{has}: at most {limits.MAX_IMPORT_BYTES:,} bytes; split it"


def jsonl_records(path: str | Path, error: type[ValueError] = ProblemFormatError,
                  what: str = "") -> Iterator[tuple[str, Any]]:
    """The JSON value of every non-blank line of a UTF-8 file, with where it came from ("file:line"); an unreadable
    file or a line of bad JSON raises `error` naming the file and the line."""
    path = Path(path)
    try:
        lines = read_input_file(path, error, what).decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise error(f"{what}{path} is not UTF-8 text") from None
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield f"{path}:{i}", json.loads(line)
        except json.JSONDecodeError as exc:
            raise error(f"{path}:{i}: invalid JSON ({exc.msg} at column {exc.colno})") from None


def read_problems(path: str | Path) -> list[Problem]:
    """All problems of a JSONL file, or a ProblemFormatError naming the first bad line."""
    problems = [problem_from_record(rec, where) for where, rec in jsonl_records(path, what="problems file ")]
    if not problems:
        raise ProblemFormatError(f"problems file {path} holds no problems")
    seen: set[str] = set()
    for p in problems:  # one pass with a set: linear in the file (a list count per id was quadratic)
        if p.id in seen:
            raise ProblemFormatError(f"{path}: problem id {p.id!r} appears more than once")
        seen.add(p.id)
    return problems
