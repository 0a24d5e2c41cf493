"""What the Runs page and `runs compare` show: each run's solve rate with its Wilson interval and where its budget
went, and two runs compared on the problems they share. Pure functions of stored runs and results."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from storage.runs import RunInfo, RunResult, Runs

from .stats import Paired, paired, wilson

RUN_HEADERS = ["run", "name", "problem set", "algorithm", "budget", "solved", "solve rate (95% CI)", "mean nodes",
               "mean tokens", "mean s", "status", "models"]
CALIBRATION_BINS = 5


@dataclass(frozen=True)
class RunSummary:
    """A run's figures over its finished problems."""

    info: RunInfo
    rate: float
    interval: tuple[float, float]
    found_missed: int  # a correct answer was in the tree but not chosen
    not_found: int  # no correct answer anywhere in the tree
    duplicate_share: float  # merged duplicate samples of all samples
    mean_depth: float
    factors: dict[str, tuple[int, int]]  # factor: (steps, steps on a path to a correct answer)
    calibration: list[tuple[float, float, float, int]]  # (lo, hi, solve rate, problems) by the answer's value


@dataclass(frozen=True)
class Comparison:
    a: RunSummary
    b: RunSummary
    stats: Paired
    only_a: int  # problems of a alone (not compared)
    only_b: int
    rows: list[dict[str, Any]] = field(default_factory=list)  # the shared problems where the runs differ

    @property
    def line(self) -> str:
        s, (lo, hi) = self.stats, self.stats.interval
        return (f"{s.n} shared problems: run {self.a.info.id} {s.rate_a:.1%} vs run {self.b.info.id} {s.rate_b:.1%}; "
                f"difference {s.difference:+.1%} (95% paired bootstrap {lo:+.1%} to {hi:+.1%}); wins {s.wins}, "
                f"losses {s.losses}, ties {s.ties}; McNemar exact p = {s.mcnemar_p:.3g}")


def summarize(info: RunInfo, results: list[RunResult]) -> RunSummary:
    done = [r for r in results if r.status == "done"]
    solved = sum(bool(r.correct) for r in done)
    samples = sum((r.nodes or 0) + (r.duplicates or 0) for r in done)
    factors: dict[str, list[int]] = {}
    for r in done:
        for name, (steps, good) in (r.factors or {}).items():
            f = factors.setdefault(name, [0, 0])
            f[0] += steps
            f[1] += good
    return RunSummary(
        info, solved / len(done) if done else 0.0, wilson(solved, len(done)),
        sum(bool(r.found) and not r.correct for r in done), sum(r.found is False for r in done),
        sum(r.duplicates or 0 for r in done) / samples if samples else 0.0,
        sum(r.depth or 0 for r in done) / len(done) if done else 0.0,
        {k: (v[0], v[1]) for k, v in sorted(factors.items())}, calibration(done))


def calibration(done: list[RunResult], bins: int = CALIBRATION_BINS) -> list[tuple[float, float, float, int]]:
    """Solve rate by the chosen answer's value, in equal-width bins (a reliability diagram's points)."""
    out = []
    for i in range(bins):
        lo, hi = i / bins, (i + 1) / bins
        inside = [r for r in done if r.value is not None and (lo <= r.value < hi or (i == bins - 1 and r.value == 1))]
        if inside:
            out.append((lo, hi, sum(bool(r.correct) for r in inside) / len(inside), len(inside)))
    return out


def summary(runs: Runs, run_id: int) -> RunSummary:
    return summarize(runs.info(run_id), runs.results(run_id))


def compare(runs: Runs, a: int, b: int) -> Comparison:
    """Two runs on the problems both have finished; refused when they share none."""
    ra, rb = runs.results(a), runs.results(b)
    da = {r.problem_id: r for r in ra if r.status == "done"}
    db = {r.problem_id: r for r in rb if r.status == "done"}
    shared = [pid for pid in da if pid in db]
    if not shared:
        raise ValueError(f"runs {a} and {b} share no finished problem: nothing to compare")
    stats = paired([bool(da[p].correct) for p in shared], [bool(db[p].correct) for p in shared])
    problems = runs.problems(a)
    rows = [{"problem_id": p, "problem": problems[p].text if p in problems else p,
             "a_correct": bool(da[p].correct), "b_correct": bool(db[p].correct), "a_answer": da[p].answer,
             "b_answer": db[p].answer, "a_session": da[p].session_id, "b_session": db[p].session_id}
            for p in shared if bool(da[p].correct) != bool(db[p].correct)]
    return Comparison(summarize(runs.info(a), ra), summarize(runs.info(b), rb), stats,
                      len(set(da) - set(db)), len(set(db) - set(da)), rows)


def models_line(models: dict[str, Any]) -> str:
    """The models of a run in a few words: directory names or server models, with short sha256."""
    parts = []
    for role in ("generator", "prm"):
        m = models.get(role) or {}
        where = m.get("model_dir") or m.get("base_url") or m.get("url") or m.get("name") or "?"
        sha = m.get("weights_sha256")
        if isinstance(sha, dict):  # one sha256 per weights file
            sha = "+".join(str(v)[:8] for _, v in sorted(sha.items()))
        parts.append(f"{role} {str(where).rstrip('/').rsplit('/', 1)[-1]}" + (f" ({str(sha)[:17]})" if sha else ""))
    return ", ".join(parts)


def solve_rate(info: RunInfo) -> tuple[float, tuple[float, float]]:
    """A run's solve rate over its finished problems and its Wilson interval, from its stored counts alone."""
    return (info.solved / info.done if info.done else 0.0), wilson(info.solved, info.done)


def run_rows(infos: list[RunInfo]) -> list[list[Any]]:
    """The runs table's rows (from the runs' counts: no result is read)."""
    out = []
    for i in infos:
        rate, (lo, hi) = solve_rate(i)
        out.append([i.id, i.name, i.problem_set, i.algorithm, i.budget, f"{i.solved}/{i.done} of {i.problems}",
                    f"{rate:.1%} ({lo:.1%}–{hi:.1%})" if i.done else "-", _fmt(i.nodes), _fmt(i.tokens),
                    _fmt(i.seconds, 2), i.status, models_line(i.models)])
    return out


def _fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"
