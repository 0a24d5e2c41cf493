"""Start, run and resume a run: its pending problems searched (several at once if asked), each result recorded once
with its tree, progress reported through a callback, a Stop honoured between steps. The CLI's `solve` and the Runs
page both drive runs through here."""
from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from itertools import islice
from typing import Any

from reasoning.search import SearchConfig
from reasoning.types import Problem
from storage.runs import Runs

from .analysis import solve

Progress = Callable[["Tick"], None]


@dataclass(frozen=True)
class Tick:
    """Progress of a run: problems done of all, solved so far, and the last problem's id and outcome."""

    run_id: int
    done: int
    total: int
    solved: int
    problem_id: str | None = None
    correct: bool | None = None


def models_identity(generator, scorer) -> dict[str, Any]:
    """What identifies the models of a run: a local directory with its weights' sha256, or a server URL and model."""
    return {"generator": generator.provenance(), "prm": scorer.provenance()}


def changed_models(stored: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """The models whose weights (sha256) or server/model differ from when the run started."""
    keys = ("weights_sha256", "url", "model", "model_dir", "base_url")
    out = []
    for role in ("generator", "prm"):
        a, b = stored.get(role) or {}, now.get(role) or {}
        if any(a.get(k) != b.get(k) for k in keys if k in a or k in b):
            out.append(role)
    return out


def refuse_changed_models(info: Any, identity: dict[str, Any]) -> None:
    """A resume with other models than the run started with is refused in one line (results would be mixed)."""
    changed = changed_models(info.models, identity)
    if changed:
        raise ValueError(f"run {info.id}'s {' and '.join(changed)} changed since it started (weights sha256 or "
                         "server); resume it with the same models, or start a new run")


def start(runs: Runs, problems: list[Problem], config: SearchConfig, generator, scorer, *, name: str,
          problem_set: str, started_by: str, catalog=None) -> int:
    """A new run, every problem pending; `execute` runs it."""
    return runs.create(name=name, problem_set=problem_set, problems=problems, config=config.to_dict(),
                       models=models_identity(generator, scorer), started_by=started_by,
                       meta={"catalog": catalog.to_dict() if catalog is not None else None})


def execute(runs: Runs, run_id: int, generator, scorer, config: SearchConfig, catalog, *, orm=None, workers: int = 1,
            progress: Progress | None = None, stop: threading.Event | None = None) -> str:
    """Search the run's pending problems and record each; returns the run's final status (finished or stopped).

    A problem stopped mid-search is not recorded (a resume searches it again from the start), so a stopped run
    keeps only whole results. A failure marks the run failed and is raised."""
    stop = stop or threading.Event()
    todo = runs.pending(run_id)
    info = runs.info(run_id)
    done, solved = info.done, info.solved
    runs.set_status(run_id, "running")
    report = progress or (lambda tick: None)
    report(Tick(run_id, done, info.problems, solved))

    def one(problem: Problem) -> tuple[Problem, dict[str, Any] | None]:
        if stop.is_set():
            return problem, None
        record, tree = solve(problem, generator, scorer, config, catalog, orm, stop=stop)
        if stop.is_set() and record.pop("stopped"):
            return problem, None
        record.pop("stopped", None)
        session = {"tree": tree, "name": f"run {run_id}: {problem.id}", "config": config.to_dict(),
                   "catalog": catalog, "provenance": models_identity(generator, scorer),
                   "meta": {"run": run_id, "search": {"state": "finished"}}}
        if runs.record(run_id, problem.id, record, session) is None:
            return problem, None  # written already by another worker or process
        return problem, record

    try:
        for problem, record in bounded_map(one, todo, workers):
            if record is None:
                continue
            done += 1
            solved += bool(record["correct"])
            report(Tick(run_id, done, info.problems, solved, problem.id, record["correct"]))
    except BaseException as exc:
        runs.set_status(run_id, "failed", error=f"{type(exc).__name__}: {exc}"[:500])
        raise
    status = "stopped" if runs.pending(run_id) else "finished"
    runs.set_status(run_id, status)
    return status


def bounded_map(fn, items, workers: int, *, ordered: bool = False):
    """fn over items with up to `workers` calls at once (threads; one worker: in this thread), yielding results as
    they finish, or in the items' order with `ordered` (a slow item then holds back the ones after it, never more
    than `workers` started ahead). The one pool behind `solve --workers` and a run's workers."""
    if workers <= 1:
        for item in items:
            yield fn(item)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="solve") as pool:
        todo = iter(items)
        running = [pool.submit(fn, item) for item in islice(todo, workers)]
        while running:
            if ordered:
                finished = [running.pop(0)]
            else:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                finished = [f for f in running if f in done]
                running = [f for f in running if f not in done]
            for f in finished:
                running.extend(pool.submit(fn, item) for item in islice(todo, 1))
                yield f.result()
