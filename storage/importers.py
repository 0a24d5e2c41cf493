"""Import labeled traces and problem sets: pure readers in a registry that turn records into labeled trees."""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from reasoning.digests import problem_id
from reasoning.limits import MAX_DEPTH, MAX_PROBLEM_CHARS, MAX_STEP_CHARS, TextError, check_text
from reasoning.problems import ProblemFormatError, check_input_file, jsonl_records, problem_from_record
from reasoning.tree import ROOT, ReasoningTree
from reasoning.types import Problem, Step

from .records import RATINGS, Annotation, ImportFormatError, LabeledTree

Record = tuple[str, Any]  # (where: "file:line", parsed JSON value)


# -- reading files ---------------------------------------------------------------------------------
MAX_IMPORT_DEPTH = MAX_DEPTH  # node ids stay short enough to address and exports stay linear in practice


def read_records(path: str | Path) -> Iterator[Record]:
    """JSONL lines (or the rows of a .parquet file), each with where it came from; bad JSON names its line."""
    path = Path(path)
    if path.suffix == ".parquet":
        yield from _parquet_records(path)
        return
    yield from jsonl_records(path, ImportFormatError)


def _parquet_records(path: Path) -> Iterator[Record]:
    import pyarrow.parquet as pq

    check_input_file(path, ImportFormatError)
    try:
        rows = pq.read_table(path).to_pylist()
    except (OSError, ValueError) as exc:
        raise ImportFormatError(f"cannot read {path} as Parquet: {exc}") from None
    for i, row in enumerate(rows, 1):
        yield f"{path}:row {i}", row


# -- checking fields ---------------------------------------------------------------------------------
def _need(ok: bool, where: str, name: str, what: str, got: Any = ...) -> None:
    if not ok:
        _fail(where, name, what, got)


def _fail(where: str, name: str, what: str, got: Any = ...) -> NoReturn:
    tail = "" if got is ... else f", got {json.dumps(got)[:60]}"
    raise ImportFormatError(f"{where}: field '{name}' {what}{tail}")


def _obj(rec: Any, where: str, name: str = "record") -> dict[str, Any]:
    _need(isinstance(rec, dict), where, name, "must be a JSON object", rec)
    return rec


def _get(rec: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...], name: str | None = None,
         optional: bool = False) -> Any:
    name = name or key
    if key not in rec or rec[key] is None:
        _need(optional, where, name, "is missing")
        return None
    value = rec[key]
    ok = isinstance(value, kind) and not (isinstance(value, bool) and bool not in _as_tuple(kind))
    _need(ok, where, name, f"must be {_kind_name(kind)}", value)
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", list: "a list", dict: "an object", bool: "true or false", int: "an integer"}
    return " or ".join(names.get(k, k.__name__) for k in _as_tuple(kind))


def _strings(value: list[Any], where: str, name: str) -> list[str]:
    for i, s in enumerate(value):
        _need(isinstance(s, str), where, f"{name}[{i}]", "must be a string", s)
        _text(s, where, f"{name}[{i}]")
    return value


def _text(value: str, where: str, name: str, limit: int = MAX_STEP_CHARS) -> str:
    """The shared text rule (reasoning.limits) on one imported string: the error names the line and the field."""
    try:
        return check_text(value, f"field '{name}'", limit, allow_empty=True)
    except TextError as exc:
        raise ImportFormatError(f"{where}: {exc}") from None


def _rating(value: Any, where: str, name: str) -> int | None:
    _need(value is None or (not isinstance(value, bool) and value in RATINGS), where, name,
          "must be -1, 0, 1 or null", value)
    return value


def _problem(text: str, answer: Any = None) -> Problem:
    """A problem known only by its text: the id is a hash of the exact text, so imports of it meet again."""
    return Problem(problem_id(text), text, None if answer is None else str(answer))


# -- building trees ------------------------------------------------------------------------------------
@dataclass
class TreeBuilder:
    """One imported tree; a step equal to a sibling (same text, no clashing label) merges into it."""

    problem: Problem
    tree: ReasoningTree = field(init=False)
    ratings: dict[str, int] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    records: list[Any] = field(default_factory=list)  # the records it was read from, for their fingerprints
    _index: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tree = ReasoningTree(self.problem)

    def child(self, parent: str, text: str, rating: int | None = None, meta: dict[str, Any] | None = None,
              terminal: bool = False) -> str:
        if self.tree.node(parent)["depth"] >= MAX_IMPORT_DEPTH:
            raise ImportFormatError(f"a trace of problem {self.problem.id!r} has more than {MAX_IMPORT_DEPTH} steps; "
                                    "split it, or it cannot be shown, rated or exported")
        for nid in self._index.get((parent, text), []):
            node = self.tree.node(nid)
            known = self.ratings.get(nid)
            if (node["meta"] or None) == (meta or None) and (None in (known, rating) or known == rating):
                if rating is not None:
                    self.ratings[nid] = rating
                node["terminal"] = node["terminal"] or terminal
                return nid
        nid = self.tree.add_child(parent, Step(text, terminal=terminal, answer=_answer(text) if terminal else None),
                                  origin="imported", meta=meta or None)
        self._index.setdefault((parent, text), []).append(nid)
        if rating is not None:
            self.ratings[nid] = rating
        return nid

    def path(self, texts: list[str], ratings: list[int | None] | None = None, last: dict[str, Any] | None = None,
             terminal: bool = False) -> list[str]:
        """Add a chain of steps from the root; `last` is the final step's meta."""
        ratings = ratings or [None] * len(texts)
        ids, parent = [], ROOT
        for i, (text, rating) in enumerate(zip(texts, ratings, strict=True)):
            end = i == len(texts) - 1
            parent = self.child(parent, text, rating, last if end else None, terminal and end)
            ids.append(parent)
        return ids

    def labeled(self, name: str, fmt: str) -> LabeledTree:
        """The tree with its ratings; its meta's `fingerprints` name the records it holds (see `fingerprint`)."""
        notes = [Annotation(0, nid, "", r) for nid, r in self.ratings.items()]
        prints = [fingerprint(fmt, rec) for rec in self.records]
        return LabeledTree(0, self.tree, notes, [], {**self.meta, "fingerprints": prints}, name)


def _answer(text: str) -> str | None:
    m = re.search(r"#\s*Answer\s*\n+(.+)\s*$", text, re.S)
    return m.group(1).strip() if m else None


class Builders(dict):
    """Tree builders by problem id, in first-seen order; a second text under one id is an error."""

    def get_for(self, problem: Problem, where: str, rec: Any) -> TreeBuilder:
        """The builder of `problem`'s tree, which `rec` (the record read at `where`) adds to."""
        b = self.get(problem.id)
        if b is None:
            b = self[problem.id] = TreeBuilder(problem)
        elif b.problem.text != problem.text:
            raise ImportFormatError(f"{where}: field 'id' {problem.id!r} names another problem earlier in the file")
        b.records.append(rec)
        return b

    def trees(self, fmt: str) -> list[LabeledTree]:
        return [b.labeled(f"imported {fmt}: {b.problem.text[:60]}", fmt) for b in self.values()]


@dataclass
class ImportBatch:
    """What a reader makes of a file: problems to store and labeled trees to store as new sessions."""

    problems: list[Problem]
    trees: list[LabeledTree]


# -- PRM800K ---------------------------------------------------------------------------------------------
def _prm800k_completion(b: TreeBuilder, parent: str, c: Any, where: str, name: str, human: bool) -> dict[str, Any]:
    c = _obj(c, where, name)
    text = _text(_get(c, "text", where, str, f"{name}.text"), where, f"{name}.text")
    rating = _rating(c.get("rating"), where, f"{name}.rating")
    extra = {k: v for k, v in c.items() if k not in ("text", "rating")}
    meta = {"source": "human"} if human else None
    terminal = _answer(text) is not None
    return {"node": b.child(parent, text, rating, meta, terminal), "extra": extra}


def _prm800k_step(b: TreeBuilder, parent: str, st: Any, where: str, name: str) -> tuple[dict[str, Any], str | None]:
    """One labeled step: its completions as siblings under `parent`; returns the trace entry and the followed node."""
    st = _obj(st, where, name)
    comps = _get(st, "completions", where, list, f"{name}.completions", optional=True)
    entries = None if comps is None else [
        _prm800k_completion(b, parent, c, where, f"{name}.completions[{i}]", False) for i, c in enumerate(comps)]
    human = _get(st, "human_completion", where, dict, f"{name}.human_completion", optional=True)
    human_entry = None if human is None else _prm800k_completion(b, parent, human, where, f"{name}.human_completion",
                                                                 True)
    chosen = _get(st, "chosen_completion", where, int, f"{name}.chosen_completion", optional=True)
    _need(chosen is None or 0 <= chosen < len(entries or []), where, f"{name}.chosen_completion",
          f"must index one of the {len(entries or [])} completions", chosen)
    nxt = entries[chosen]["node"] if chosen is not None and entries else human_entry["node"] if human_entry else None
    return {"completions": entries, "human": human_entry, "chosen": chosen}, nxt


def read_prm800k(records: Iterable[Record]) -> ImportBatch:
    """PRM800K labeling records: each step's completions become siblings, the chosen (or human) one is followed."""
    builders = Builders()
    for where, rec in records:
        rec = _obj(rec, where)
        q = _obj(_get(rec, "question", where, dict), where, "question")
        text = _text(_get(q, "problem", where, str, "question.problem"), where, "question.problem", MAX_PROBLEM_CHARS)
        b = builders.get_for(_problem(text, q.get("ground_truth_answer")), where, rec)
        label = _get(rec, "label", where, dict)
        steps = _get(label, "steps", where, list, "label.steps")
        trace: list[dict[str, Any]] = []
        parent: str | None = ROOT
        for i, st in enumerate(steps):
            if parent is None:
                _fail(where, f"label.steps[{i}]", "follows a step with no chosen or human completion")
            entry, parent = _prm800k_step(b, parent, st, where, f"label.steps[{i}]")
            trace.append(entry)
        record = json.loads(json.dumps(rec))
        record["label"]["steps"] = None
        b.meta.setdefault("prm800k", []).append({"record": record, "steps": trace})
    return ImportBatch([b.problem for b in builders.values()], builders.trees("prm800k"))


# -- TRL stepwise, ProcessBench, solutions ---------------------------------------------------------------
def read_trl(records: Iterable[Record]) -> ImportBatch:
    """TRL stepwise records `{"prompt", "completions", "labels"}`; labels are booleans (or 0 / 1)."""
    builders = Builders()
    for where, rec in records:
        rec = _obj(rec, where)
        prompt = _text(_get(rec, "prompt", where, str), where, "prompt", MAX_PROBLEM_CHARS)
        steps = _strings(_get(rec, "completions", where, list), where, "completions")
        labels = _get(rec, "labels", where, list)
        _need(len(labels) == len(steps), where, "labels", f"must have one label per completion ({len(steps)})",
              len(labels))
        for i, x in enumerate(labels):
            _need(x in (True, False, 0, 1), where, f"labels[{i}]", "must be true or false", x)
        builders.get_for(_problem(prompt), where, rec).path(steps, [1 if x else -1 for x in labels])
    return ImportBatch([b.problem for b in builders.values()], builders.trees("trl"))


def read_processbench(records: Iterable[Record]) -> ImportBatch:
    """ProcessBench `{"id"?, "problem", "steps", "label"}`: steps before `label` are right, step `label` wrong."""
    builders = Builders()
    for where, rec in records:
        rec = _obj(rec, where)
        text = _text(_get(rec, "problem", where, str), where, "problem", MAX_PROBLEM_CHARS)
        steps = _strings(_get(rec, "steps", where, list), where, "steps")
        label = _get(rec, "label", where, int)
        _need(-1 <= label < len(steps), where, "label", f"must be -1 or a step index below {len(steps)}", label)
        ratings: list[int | None] = [1] * len(steps) if label == -1 else [1] * label + [-1] + [None] * (len(steps) - label - 1)
        last = {"source": "processbench", "id": rec.get("id")}
        if "final_answer_correct" in rec:
            last["correct"] = bool(rec["final_answer_correct"])
        builders.get_for(_problem(text), where, rec).path(steps, ratings, last, terminal=True)
    return ImportBatch([b.problem for b in builders.values()], builders.trees("processbench"))


def split_steps(text: str) -> list[str]:
    """A written solution's steps: paragraphs when it has blank lines, else lines."""
    parts = re.split(r"\n\s*\n", text.strip()) if re.search(r"\n\s*\n", text) else text.strip().splitlines()
    return [p.strip() for p in parts if p.strip()]


def _solution_steps(sol: dict[str, Any], where: str, name: str) -> list[str]:
    if "steps" in sol:
        steps = _strings(_get(sol, "steps", where, list, f"{name}.steps"), where, f"{name}.steps")
    else:
        steps = [_text(t, where, f"{name}.text") for t in
                 split_steps(_get(sol, "text", where, str, f"{name}.text (or {name}.steps)"))]
    _need(bool(steps), where, name, "has no steps")
    return steps


def read_solutions(records: Iterable[Record]) -> ImportBatch:
    """`{"id"?, "problem", "answer"?, "solutions": [{"steps": [...]} or {"text": ...}, "correct"?, "source"?]}`."""
    builders = Builders()
    for where, rec in records:
        b = builders.get_for(_record_problem(rec, where), where, rec)
        for i, sol in enumerate(_get(_obj(rec, where), "solutions", where, list)):
            name = f"solutions[{i}]"
            sol = _obj(sol, where, name)
            correct = _get(sol, "correct", where, bool, f"{name}.correct", optional=True)
            last = {"source": str(sol.get("source") or "imported")}
            if correct is not None:
                last["correct"] = correct
            b.path(_solution_steps(sol, where, name), None, last, terminal=True)
    return ImportBatch([b.problem for b in builders.values()], builders.trees("solutions"))


def _record_problem(rec: Any, where: str) -> Problem:
    try:
        return problem_from_record(rec, where)
    except ProblemFormatError as exc:
        raise ImportFormatError(str(exc)) from None


def read_problem_set(records: Iterable[Record]) -> ImportBatch:
    """Problem records (`{id, problem, answer?}`, Countdown, GSM8K `{question, answer}`); no trees."""
    problems: dict[str, Problem] = {}
    for where, rec in records:
        p = _record_problem(rec, where)
        if "question" in rec and "####" in str(rec.get("answer", "")):  # GSM8K: the gold answer follows ####
            p = Problem(p.id, p.text, str(rec["answer"]).rsplit("####", 1)[1].strip(), p.domain,
                        {"solution": rec["answer"]})
        _need(problems.get(p.id, p) == p, where, "id", f"{p.id!r} names another problem earlier in the file")
        problems[p.id] = p
    return ImportBatch(list(problems.values()), [])


IMPORTERS: dict[str, Callable[[Iterable[Record]], ImportBatch]] = {
    "prm800k": read_prm800k,
    "trl": read_trl,
    "processbench": read_processbench,
    "solutions": read_solutions,
    "problems": read_problem_set,
}


# -- which format: the records' fields tell, when the user does not say ----------------------------------
AUTO = "auto"  # the format choice that means "detect it from the file's records"
DETECT_RECORDS = 20  # records read to detect a format; they must all agree

SIGNATURES: dict[str, Callable[[dict[str, Any]], bool]] = {  # in order: the first that fits a record names it
    "prm800k": lambda r: isinstance(r.get("question"), dict) and isinstance(r.get("label"), dict),
    "trl": lambda r: {"prompt", "completions", "labels"} <= r.keys(),
    "processbench": lambda r: {"problem", "steps", "label"} <= r.keys(),
    "solutions": lambda r: {"problem", "solutions"} <= r.keys(),
    "problems": lambda r: "problem" in r or "question" in r or "numbers" in r,
}


def record_format(rec: Any) -> str | None:
    """The import format whose fields a record has, or None."""
    if not isinstance(rec, dict):
        return None
    return next((fmt for fmt, fits in SIGNATURES.items() if fits(rec)), None)


def detect_format(path: str | Path) -> str:
    """The format of a file's first records (they must agree); an ImportFormatError says which record does not fit."""
    found: str | None = None
    for n, (where, rec) in enumerate(read_records(path)):
        if n == DETECT_RECORDS:
            break
        fmt = record_format(rec)
        if fmt is None:
            keys = ", ".join(sorted(rec)) if isinstance(rec, dict) else type(rec).__name__
            raise ImportFormatError(f"{where}: no import format has these fields ({keys[:80]}); choose the format")
        if found not in (None, fmt):
            raise ImportFormatError(f"{where}: reads as {fmt} but the records before it as {found}; choose the format")
        found = fmt
    if found is None:
        raise ImportFormatError(f"{path}: no records")
    return found


def resolve_format(path: str | Path, fmt: str | None) -> tuple[str, bool]:
    """(format, detected): the format asked for, or the one the file's records have when none (or `auto`) is."""
    if fmt in (None, "", AUTO):
        return detect_format(path), True
    if fmt not in IMPORTERS:
        raise ImportFormatError(f"unknown import format {fmt!r}; choose one of {sorted(IMPORTERS)}")
    return fmt, False


def read_batch(records: list[Record], fmt: str, path: str | Path) -> ImportBatch:
    """Records read in format `fmt`; an ImportFormatError names the line and field of the first problem."""
    batch = IMPORTERS[fmt](records)
    if not batch.problems:
        raise ImportFormatError(f"{path}: no records")
    return batch


def read_import(path: str | Path, fmt: str | None) -> ImportBatch:
    """Read a whole file in format `fmt` (None or `auto`: detected); errors name the line and field."""
    fmt, _ = resolve_format(path, fmt)
    return read_batch(list(read_records(path)), fmt, path)


# -- importing: the same traces twice are stored once ----------------------------------------------------
def fingerprint(fmt: str, rec: Any) -> str:
    """sha256 of a record as canonical JSON (sorted keys, no spaces, ASCII) under its format: the same trace read
    again, from any file, in any key order or spacing, has the same fingerprint. Sessions keep theirs in their meta."""
    text = json.dumps(rec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{fmt}\n{text}".encode()).hexdigest()


@dataclass
class Unseen:
    """A file's records split by fingerprint: those to store, those stored already (with their sessions) and those
    repeated earlier in the same file."""

    records: list[Record]
    stored: dict[str, tuple[int, bool]]
    repeated: int


def unseen_records(records: list[Record], fmt: str, stored: dict[str, tuple[int, bool]]) -> Unseen:
    """The records whose fingerprint is neither in `stored` (fingerprint -> (session id, deleted)) nor earlier in
    the file."""
    fresh: list[Record] = []
    known: dict[str, tuple[int, bool]] = {}
    seen: set[str] = set()
    repeated = 0
    for where, rec in records:
        f = fingerprint(fmt, rec)
        if f in stored:
            known[f] = stored[f]
        elif f in seen:
            repeated += 1
        else:
            seen.add(f)
            fresh.append((where, rec))
    return Unseen(fresh, known, repeated)


def import_file(store: Any, path: str | Path, fmt: str | None = None) -> dict[str, Any]:
    """Read then store a file in one transaction (all or nothing); returns counts and the new session ids.

    `fmt` None (or `auto`) detects the format from the records. Every record is checked; those a session holds
    already (same fingerprint) or that repeat an earlier line are skipped, so importing a file again adds nothing."""
    fmt, detected = resolve_format(path, fmt)
    records = list(read_records(path))
    batch = read_batch(records, fmt, path)
    traces = len(records) if batch.trees else 0  # problem sets make no sessions: a stored problem counts as present
    unseen = Unseen(records, {}, 0)
    if traces:
        unseen = unseen_records(records, fmt, store.imported_traces(p.id for p in batch.problems))
        if len(unseen.records) < len(records):
            batch = ImportBatch(batch.problems, IMPORTERS[fmt](unseen.records).trees if unseen.records else [])
    source = {"format": fmt, "file": Path(path).name}
    done = store.import_counted(batch.problems, batch.trees, annotator=f"imported:{fmt}", source=source)
    return {"format": fmt, "detected": detected, "problems": len(batch.problems),
            "new_problems": done["new_problems"], "known_problems": done["known_problems"],
            "sessions": done["sessions"], "nodes": sum(len(t.tree) - 1 for t in batch.trees),
            "labels": sum(len(t.annotations) for t in batch.trees), "traces": traces,
            "known_traces": len(unseen.stored) + done.get("skipped_traces", 0), "repeated_traces": unseen.repeated,
            "known_sessions": sorted({sid for sid, _ in unseen.stored.values()}),
            "deleted_sessions": sorted({sid for sid, deleted in unseen.stored.values() if deleted})}


def import_line(report: dict[str, Any]) -> str:
    """One line saying what an import stored: the detected format, new problems apart from those stored already,
    sessions, steps and labels, then the traces skipped because they were imported before or repeat in the file."""
    known = report.get("known_problems", 0)
    line = (f"imported {report.get('new_problems', report['problems'])} new problems"
            f"{f', {known} already present' if known else ''}, {len(report['sessions'])} sessions, "
            f"{report['nodes']} steps, {report['labels']} labels")
    skipped = _skipped(report)
    detected = f"detected format {report['format']}: " if report.get("detected") else ""
    return detected + line + (f"; {skipped}" if skipped else "")


def _skipped(report: dict[str, Any]) -> str:
    """What an import left out as already stored: nothing new at all, or how many traces of how many."""
    known, repeated, total = report.get("known_traces", 0), report.get("repeated_traces", 0), report.get("traces", 0)
    parts = []
    if known:
        deleted = report.get("deleted_sessions") or []
        sessions = report.get("known_sessions") or []
        where = f" (in sessions {_ids(sessions)})" if sessions else ""
        where = where[:-1] + f"; deleted, restore to see them: {_ids(deleted)})" if deleted else where
        if known + repeated == total and not report["sessions"]:
            parts.append(f"nothing new: all {known} traces were imported before{where}")
        else:
            parts.append(f"{known} of {total} traces were imported before and skipped{where}")
    if repeated:
        parts.append(f"{repeated} repeated lines skipped")
    return "; ".join(parts)


def _ids(ids: list[int]) -> str:
    """Session ids, a run of consecutive ones as a range (3–8)."""
    if ids and ids == list(range(ids[0], ids[-1] + 1)) and len(ids) > 2:
        return f"{ids[0]}–{ids[-1]}"
    return ", ".join(map(str, ids))
