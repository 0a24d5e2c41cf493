"""Runs from the web: start a run over a stored problem set with the loaded models, watch its progress, stop and
resume it (after a restart too), compare two runs and write the report. A run executes in a background thread of the
server (never inside a page event), so closing the tab does not stop it and annotators are not held up."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from experiments.compare import Comparison, compare
from experiments.execute import Tick, execute, models_identity, refuse_changed_models, start
from reasoning.problems import read_problems
from reasoning.search import SearchConfig
from storage.runs import RunInfo, Runs

from .. import validate as v

DATA = Path(__file__).resolve().parents[2] / "reasoning" / "data"
BUILT_IN_SETS = {"countdown-eval": DATA / "countdown_eval.jsonl", "countdown-dev": DATA / "countdown_dev.jsonl"}


@dataclass
class _Job:
    stop: threading.Event
    thread: threading.Thread
    tick: Tick | None = None
    error: str = ""


@dataclass
class RunJobs:
    """The runs this server executes, and the queries of the Runs page."""

    store: Any
    registry: Any  # ModelRegistry: the loaded generator and the active PRM
    catalog: Any
    max_budget: int
    jobs: dict[int, _Job] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _seeded: bool = False

    @property
    def runs(self) -> Runs:
        return Runs(self.store)

    def problem_sets(self) -> dict[str, int]:
        """Stored problem sets (the project's own Countdown sets are stored on first use)."""
        if not self._seeded:
            have = self.runs.problem_sets()
            for name, path in BUILT_IN_SETS.items():
                if name not in have and path.exists():
                    self.runs.save_problem_set(name, read_problems(path))
            self._seeded = True
        return self.runs.problem_sets()

    def start(self, problem_set: Any, algorithm: Any, budget: Any, name: Any, limit: Any, *, annotator: str) -> int:
        """A new run over the first `limit` problems of a stored set (blank: all), started in the background."""
        sets = self.problem_sets()
        set_name = v.choice(problem_set, "problem set", list(sets))
        n = sets[set_name] if limit in (None, "", 0) else v.integer(limit, "problems", 1, sets[set_name])
        try:
            config = SearchConfig.from_values(
                {"algorithm": algorithm, "budget": v.integer(budget, "budget", 1, self.max_budget)},
                defaults=self.registry.recommended(str(algorithm), None), max_budget=self.max_budget)
        except ValueError as exc:
            raise v.UserError(str(exc)) from None
        problems = self.runs.problem_set(set_name)[:n]
        generator, scorer = self.registry.pair(None, None)
        label = v.text(name or "", "run name", limit=200, allow_empty=True).strip() or \
            f"{config.algorithm}@{config.budget} on {set_name}"
        rid = start(self.runs, problems, config, generator, scorer, name=label, problem_set=set_name,
                    started_by=annotator, catalog=self.catalog)
        self._launch(rid, config)
        return rid

    def resume(self, run_id: Any) -> int:
        """Go on with a stopped, failed or interrupted run (its finished problems are kept, never redone)."""
        rid = v.integer(run_id, "run id", 1, 2**31 - 1)
        info = self.runs.info(rid)
        v.need(rid not in self.running(), f"run {rid} is running already")
        v.need(info.done < info.problems, f"run {rid} has finished every problem")
        generator, scorer = self.registry.pair(None, None)
        try:
            refuse_changed_models(info, models_identity(generator, scorer))
        except ValueError as exc:
            raise v.UserError(str(exc)) from None
        try:
            config = SearchConfig.from_stored(info.config, max_budget=self.max_budget)
        except ValueError as exc:
            raise v.UserError(f"run {rid}'s stored settings are not usable: {exc}") from None
        self._launch(rid, config)
        return rid

    def stop(self, run_id: Any) -> bool:
        job = self.jobs.get(v.integer(run_id, "run id", 1, 2**31 - 1))
        if job is None or not job.thread.is_alive():
            return False
        job.stop.set()
        return True

    def running(self) -> set[int]:
        return {rid for rid, job in self.jobs.items() if job.thread.is_alive()}

    def status(self, info: RunInfo) -> str:
        """A run's state as this server sees it: a stored 'running' run that no thread here runs was interrupted."""
        if info.status == "running" and info.id not in self.running():
            return "interrupted"
        return info.status

    def progress(self, run_id: int | None) -> tuple[str, float]:
        """The progress line and fraction of a run (the latest one started here when none is given)."""
        if run_id is None:
            if not self.jobs:
                return "", 0.0
            run_id = max(self.jobs)
        info = self.runs.info(run_id)
        job = self.jobs.get(run_id)
        state = self.status(info)
        frac = info.done / info.problems if info.problems else 0.0
        line = (f"run {run_id} {info.name!r}: {info.done} of {info.problems} problems, {info.solved} solved · "
                f"{state}")
        if job and job.error:
            line += f" · {job.error}"
        return line, frac

    def infos(self) -> list[RunInfo]:
        """Every run with its state as this server sees it (the runs table reads counts only, never results)."""
        return [replace(info, status=self.status(info)) for info in self.runs.all()]

    def compare(self, a: Any, b: Any) -> Comparison:
        ra, rb = v.integer(a, "run A", 1, 2**31 - 1), v.integer(b, "run B", 1, 2**31 - 1)
        v.need(ra != rb, "choose two different runs to compare")
        try:
            return compare(self.runs, ra, rb)
        except ValueError as exc:
            raise v.UserError(str(exc)) from None

    def _launch(self, rid: int, config: SearchConfig) -> None:
        generator, scorer = self.registry.pair(None, None)
        job = _Job(threading.Event(), threading.Thread())

        def work() -> None:
            try:
                execute(self.runs, rid, generator, scorer, config, self.catalog, progress=record, stop=job.stop)
            except Exception as exc:  # noqa: BLE001 - the run is marked failed; the page shows the line
                job.error = f"failed: {type(exc).__name__}: {exc}"[:300]

        def record(tick: Tick) -> None:
            job.tick = tick

        job.thread = threading.Thread(target=work, name=f"run-{rid}", daemon=True)
        with self._lock:
            self.jobs[rid] = job
        job.thread.start()
