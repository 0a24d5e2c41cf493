"""Export labeled trees as training data: pure record builders in a registry, and an atomic JSONL/Parquet writer."""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reasoning.tree import ROOT, ReasoningTree

from .labels import LabelOptions, LabelView, account, export_paths, labeled_runs, leaf_paths, rating_counts, views
from .records import LabeledTree

STEP_JOIN = "\n"  # how steps are joined where a format wants one string (SFT completions, preference prompts)
SHEPHERD_TAG, SHEPHERD_GOOD, SHEPHERD_BAD = "ки", "+", "-"


# -- small readers -------------------------------------------------------------------------------
def _texts(tree: ReasoningTree, path: list[str]) -> list[str]:
    return [tree.node(n)["text"] for n in path]


def _prompt(view: LabelView) -> str:
    return view.tree.problem.text


def _is_human(tree: ReasoningTree, nid: str) -> bool:
    a = tree.node(nid)
    return a["origin"] == "human" or (a["meta"] or {}).get("source") == "human"


def _context(view: LabelView, parent: str) -> str:
    """The problem and the steps down to `parent`: what a preference pair's steps continue."""
    steps = _texts(view.tree, view.tree.path(parent)[1:])
    return STEP_JOIN.join([_prompt(view), *steps])


# -- TRL stepwise (contract), Math-Shepherd, ProcessBench ----------------------------------------
def _with_context(view: LabelView, context: list[str]) -> str:
    """The prompt of a record whose labeled steps start below the root: the problem and the steps before them."""
    return STEP_JOIN.join([_prompt(view), *_texts(view.tree, context)])


def trl_records(view: LabelView) -> list[dict[str, Any]]:
    """`{"prompt", "completions", "labels"}` per run of labeled steps on a root-to-leaf path (the steps before a run
    that starts below the root are part of its prompt: context, not targets); soft values go in `soft_labels`."""
    out = []
    for context, path in labeled_runs(view):
        rec: dict[str, Any] = {"prompt": _with_context(view, context), "completions": _texts(view.tree, path),
                               "labels": [view.good(n) for n in path]}
        if view.options.soft:
            rec["soft_labels"] = [view.soft(n) for n in path]
        view.mark(path)
        out.append(rec)
    return out


def math_shepherd_records(view: LabelView) -> list[dict[str, Any]]:
    """Math-Shepherd's `input` (each labeled step ends in `ки`) and `label` (the tag replaced by `+` or `-`); the
    untagged steps before a run that starts below the root are context."""
    out = []
    for context, path in labeled_runs(view):
        texts = _texts(view.tree, path)
        marks = [SHEPHERD_GOOD if view.good(n) else SHEPHERD_BAD for n in path]
        head = _with_context(view, context) + " "
        out.append({
            "input": head + "\n".join(f"{t} {SHEPHERD_TAG}" for t in texts),
            "label": head + "\n".join(f"{t} {m}" for t, m in zip(texts, marks, strict=True)),
        })
        view.mark(path)
    return out


def _first_error(view: LabelView, path: list[str]) -> tuple[list[str], int] | None:
    """ProcessBench's reading of a path: steps and the earliest wrong step's index (-1: none), if known."""
    for i, nid in enumerate(path):
        good = view.good(nid)
        if good is False:
            return path, i
        if good is None:
            return (path[:i], -1) if i else None
    return path, -1


def processbench_records(view: LabelView) -> list[dict[str, Any]]:
    """`{"id", "problem", "steps", "label"}`; `label` is the earliest wrong step's index, or -1."""
    out, seen = [], set()
    for path in export_paths(view, partial=True):
        read = _first_error(view, path)
        if read is None or tuple(read[0]) in seen:
            continue
        steps, label = read
        seen.add(tuple(steps))
        view.mark(steps if label < 0 else steps[:label + 1])
        out.append({"id": f"{view.lt.session_id}:{steps[-1]}", "problem": _prompt(view),
                    "steps": _texts(view.tree, steps), "label": label})
    return out


# -- PRM800K -------------------------------------------------------------------------------------
def _completion(view: LabelView, nid: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    view.mark([nid])
    return {"text": view.tree.node(nid)["text"], "rating": view.rating(nid), **(extra or {"flagged": False})}


def _prm800k_step(view: LabelView, parent: str, nid: str) -> dict[str, Any]:
    """One PRM800K step: the live siblings rated, the followed one chosen, or a human-written step."""
    human = _is_human(view.tree, nid)
    sibs = [c for c in view.tree.children(parent) if not _is_human(view.tree, c)]
    return {
        "completions": [_completion(view, c) for c in sibs],
        "human_completion": _completion(view, nid, {"source": "human", "flagged": False}) if human else None,
        "chosen_completion": None if human else sibs.index(nid),
    }


def _prm800k_generic(view: LabelView, skip: set[str]) -> list[dict[str, Any]]:
    """A record per path (ending outside `skip`): each step's live siblings rated, the path's node chosen."""
    tree, out = view.tree, []
    notes_by_node = view.by_node
    for path in _prm800k_paths(view):
        if path[-1] in skip:
            continue
        steps = [_prm800k_step(view, p, n) for p, n in zip([ROOT, *path[:-1]], path, strict=True)]
        rated = [a for p in [ROOT, *path[:-1]] for c in tree.children(p) for a in notes_by_node.get(c, [])]
        last = tree.node(path[-1])
        finish = "solution" if last["terminal"] else "found_error" if view.rating(path[-1]) == -1 else "give_up"
        stamps = [t for a in rated if (t := a.updated or a.created) is not None]
        out.append({
            "labeler": "+".join(sorted({a.annotator for a in rated})) or None,
            "timestamp": max(stamps).isoformat() if stamps else None,
            "generation": None, "is_quality_control_question": False, "is_initial_screening_question": False,
            "question": {"problem": tree.problem.text, "ground_truth_answer": tree.problem.answer},
            "label": {"steps": steps, "total_time": int(1000 * sum(a.seconds or 0 for a in rated)),
                      "finish_reason": finish},
        })
    return out


def _prm800k_paths(view: LabelView) -> list[list[str]]:
    """Whole root-to-leaf paths with all_paths, else each run of labeled steps with the path down to it."""
    if view.options.all_paths:
        return leaf_paths(view.tree)
    return [context + steps for context, steps in labeled_runs(view)]


def _prm800k_trace(view: LabelView, trace: dict[str, Any]) -> dict[str, Any]:
    """An imported PRM800K record, its ratings read again from the current labels."""
    steps = []
    for st in trace["steps"]:
        comps = st["completions"]
        steps.append({
            "completions": None if comps is None else [_completion(view, c["node"], c["extra"]) for c in comps],
            "human_completion": None if st["human"] is None else _completion(view, st["human"]["node"],
                                                                             st["human"]["extra"]),
            "chosen_completion": st["chosen"],
        })
    record = json.loads(json.dumps(trace["record"]))
    record["label"]["steps"] = steps
    return record


def prm800k_records(view: LabelView) -> list[dict[str, Any]]:
    """PRM800K labeling records; imported ones come back as they were (with their current ratings), then a record
    for each path that grew since."""
    traces = view.lt.meta.get("prm800k") or []
    return [_prm800k_trace(view, t) for t in traces] + _prm800k_generic(view, _trace_nodes(traces))


def _trace_nodes(traces: list[dict[str, Any]]) -> set[str]:
    out: set[str] = set()
    for t in traces:
        for st in t["steps"]:
            out.update(c["node"] for c in st["completions"] or [])
            out.update([st["human"]["node"]] if st["human"] else [])
    return out


# -- TRL preference pairs and SFT best paths ------------------------------------------------------
def pair_records(view: LabelView) -> list[dict[str, Any]]:
    """`{"prompt", "chosen", "rejected"}` for every two labeled live siblings where one is better."""
    out = []
    for parent in view.tree.nodes(include_pruned=False):
        if not view.tree.is_live(parent):
            continue
        values = {c: v for c in view.tree.children(parent) if (v := view.value(c)) is not None}
        for a, b in itertools.permutations(values, 2):
            if values[a] > values[b]:
                view.mark([a, b])
                out.append({"prompt": _context(view, parent), "chosen": view.tree.node(a)["text"],
                            "rejected": view.tree.node(b)["text"]})
    return out


def _best(view: LabelView, path: list[str]) -> bool:
    last = view.tree.node(path[-1])
    if not last["terminal"]:
        return False
    if (last["meta"] or {}).get("correct") is True:
        return True  # an imported solution marked correct
    goods = [view.good(n) for n in path]
    return False not in goods and (view.options.all_paths or None not in goods)


def _sft_paths(view: LabelView) -> list[list[str]]:
    return [p for p in leaf_paths(view.tree) if _best(view, p)]


def sft_records(view: LabelView) -> list[dict[str, Any]]:
    """`{"prompt", "completion"}` for each best path: a terminal path rated good throughout, or a correct import."""
    paths = _sft_paths(view)
    for p in paths:
        view.mark(p)
    return [{"prompt": _prompt(view), "completion": STEP_JOIN.join(_texts(view.tree, p))} for p in paths]


FORMATS: dict[str, Callable[[LabelView], list[dict[str, Any]]]] = {
    "trl": trl_records,
    "prm800k": prm800k_records,
    "math-shepherd": math_shepherd_records,
    "processbench": processbench_records,
    "pairs": pair_records,
    "sft": sft_records,
}
# Why a rating that survived the options' filters (annotators, pruning, combining, neutral) can still be left out of
# a format: the formats that carry every such rating have none.
FORMAT_GAPS = {
    "trl": "", "math-shepherd": "", "prm800k": "",
    "processbench": "ProcessBench writes a path only from the first step to its first error, every step labeled",
    "pairs": "pairs need a live sibling with a different label",
    "sft": "SFT writes only terminal paths rated good throughout",
}


def _per_tree(trees: list[LabeledTree], fmt: str,
              options: LabelOptions | None) -> Iterator[list[tuple[LabelView, list[dict[str, Any]]]]]:
    """Each tree's label views with their records of format `fmt`, in session order (combining `each`: one view per
    annotator, whose records carry an `annotator` field)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {sorted(FORMATS)}")
    options = options or LabelOptions()
    for lt in trees:
        out = []
        for view in views(lt, options):
            made = FORMATS[fmt](view)
            out.append((view, [{**r, "annotator": view.annotator} for r in made] if view.annotator else made))
        yield out


def export_records(trees: list[LabeledTree], fmt: str, options: LabelOptions | None = None) -> list[dict[str, Any]]:
    """All records of format `fmt` for `trees`, in session then path order. Pure: no I/O."""
    return [rec for per_view in _per_tree(trees, fmt, options) for _, records in per_view for rec in records]


# -- writing ---------------------------------------------------------------------------------------
def _jsonl_bytes(records: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in records)


def _parquet_bytes(records: list[dict[str, Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    keys = list(dict.fromkeys(k for r in records for k in r))
    table = pa.table({k: pa.array([r.get(k) for r in records]) for k in keys})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


WRITERS: dict[str, Callable[[list[dict[str, Any]]], bytes]] = {"jsonl": _jsonl_bytes, "parquet": _parquet_bytes}


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, fsync, then rename: the file is complete or absent."""
    tmp = _staged(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _staged(path: Path, data: bytes) -> Path:
    """`data` written and fsynced to a temporary file beside `path` (removed again if writing fails)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def atomic_write_pair(first: tuple[Path, bytes], second: tuple[Path, bytes]) -> None:
    """Write two files so that both are replaced or neither is: both are staged beside their targets first; if the
    second rename fails, the first target gets its old content back (or is removed when it had none)."""
    (path_a, data_a), (path_b, data_b) = first, second
    tmp_a = _staged(path_a, data_a)
    try:
        tmp_b = _staged(path_b, data_b)
    except BaseException:
        tmp_a.unlink(missing_ok=True)
        raise
    backup, replaced = None, False
    try:
        if path_a.exists():
            os.replace(path_a, old := path_a.with_name(tmp_a.name + ".old"))
            backup = old
        os.replace(tmp_a, path_a)
        replaced = True
        os.replace(tmp_b, path_b)
    except BaseException:
        tmp_a.unlink(missing_ok=True)
        tmp_b.unlink(missing_ok=True)
        if replaced and backup is None:
            path_a.unlink(missing_ok=True)
        if backup is not None:
            os.replace(backup, path_a)
        raise
    if backup is not None:
        backup.unlink(missing_ok=True)


# -- counts: the steps each format writes and the label each carries there -----------------------------------------
Mark = int | None  # +1 good, 0 neutral, -1 bad, None: written without a label


def _trl_marks(view: LabelView, records: list[dict[str, Any]]) -> list[Mark]:
    return [1 if x else -1 for r in records for x in r["labels"]]


def _shepherd_marks(view: LabelView, records: list[dict[str, Any]]) -> list[Mark]:
    """Read back from each record: `input` and `label` are the same text except where a step's `ки` tag stands in
    one and its `+` or `-` in the other (a step text holding `ки` itself matches in both, so it is not a tag)."""
    out: list[Mark] = []
    for r in records:
        src, lab, i, j = r["input"], r["label"], 0, 0
        while i < len(src) and j < len(lab):
            if src[i] == lab[j]:
                i, j = i + 1, j + 1
            elif src.startswith(SHEPHERD_TAG, i) and lab[j] in (SHEPHERD_GOOD, SHEPHERD_BAD):
                out.append(1 if lab[j] == SHEPHERD_GOOD else -1)
                i, j = i + len(SHEPHERD_TAG), j + 1
            else:  # not a record this writer made
                break
    return out


def _processbench_marks(view: LabelView, records: list[dict[str, Any]]) -> list[Mark]:
    out: list[Mark] = []
    for r in records:
        n, first_bad = len(r["steps"]), r["label"]
        out += [1] * n if first_bad < 0 else [1] * first_bad + [-1] + [None] * (n - first_bad - 1)
    return out


def _prm800k_marks(view: LabelView, records: list[dict[str, Any]]) -> list[Mark]:
    out: list[Mark] = []
    for r in records:
        for st in r["label"]["steps"] or []:
            written = [*(st["completions"] or []), *([st["human_completion"]] if st["human_completion"] else [])]
            out += [c.get("rating") for c in written]
    return out


def _pair_marks(view: LabelView, records: list[dict[str, Any]]) -> list[Mark]:
    return [m for _ in records for m in (1, -1)]  # the chosen step counts as good, the rejected one as bad


def _sft_marks(view: LabelView, records: list[dict[str, Any]]) -> list[Mark]:
    return [1 for p in _sft_paths(view) for _ in p]  # a best path: every step of it is a good demonstration


MARKS: dict[str, Callable[[LabelView, list[dict[str, Any]]], list[Mark]]] = {
    "trl": _trl_marks, "prm800k": _prm800k_marks, "math-shepherd": _shepherd_marks,
    "processbench": _processbench_marks, "pairs": _pair_marks, "sft": _sft_marks,
}


def step_counts(marks: list[Mark]) -> dict[str, int]:
    """Steps written and how many of them carry a good, neutral or bad label (the rest carry none)."""
    return {"steps": len(marks), "good": marks.count(1), "neutral": marks.count(0), "bad": marks.count(-1)}


def manifest_path(out: Path) -> Path:
    return out.with_name(out.name + ".manifest.json")


def write_export(trees: list[LabeledTree], fmt: str, out: str | Path, options: LabelOptions | None = None, *,
                 file_format: str | None = None) -> dict[str, Any]:
    """Write the export and its manifest (counts, options, sha256) beside it; returns the manifest."""
    out = Path(out)
    if out.is_dir():  # refused before anything is touched: writing would swap the user's folder out of the way
        raise ValueError(f"{out} is a directory; name the export file to write (e.g. {out / 'export.jsonl'})")
    options = options or LabelOptions()
    file_format = file_format or ("parquet" if out.suffix == ".parquet" else "jsonl")
    if file_format not in WRITERS:
        raise ValueError(f"unknown file format {file_format!r}; choose one of {sorted(WRITERS)}")
    records: list[dict[str, Any]] = []
    marks: list[Mark] = []
    accounts = []
    for lt, per_view in zip(trees, _per_tree(trees, fmt, options), strict=True):
        for view, mine in per_view:
            records += mine
            marks += MARKS[fmt](view, mine)
        accounts += account(lt, [view for view, _ in per_view], options or LabelOptions(), FORMAT_GAPS[fmt])
    data = WRITERS[file_format](records)
    manifest = {
        "format": fmt, "file": out.name, "file_format": file_format, "sha256": hashlib.sha256(data).hexdigest(),
        "created": datetime.now(UTC).isoformat(), "options": options.to_dict(),
        # steps: how many the file holds (PRM800K: every rated alternative; pairs: chosen and rejected); good,
        # neutral and bad: the labels they carry there (a binary format maps neutral as the options say)
        "counts": {"records": len(records), "sessions": len(trees), **step_counts(marks)},
        # every stored human rating: how many reached the file, per annotator, and why the others did not
        "ratings": rating_counts(accounts),
        "sessions": [lt.session_id for lt in trees],
    }
    # the data file and its manifest: both or neither (a data file without its manifest has no checksum or options)
    atomic_write_pair((out, data), (manifest_path(out), (json.dumps(manifest, indent=2) + "\n").encode()))
    return manifest
