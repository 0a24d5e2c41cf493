"""A run's pending problems searched on a Ray cluster (`solve --ray ADDRESS`): one actor per worker loads the models
once, from the same plain arguments as `cli/common.load_models`, searches one problem at a time and writes it with
its tree through its own `Runs(Store(url)).record`, so the shared database (PostgreSQL) is the one place results land.

Fault tolerance. A worker killed mid-problem wrote nothing for it (a result and its tree are one transaction); the
driver puts the problem back at the front of the queue for another worker, and Ray restarts the dead actor (up to
`max_restarts` times). A worker killed after its write but before answering is harmless: the retry's `record` finds
the item done and stores nothing. A killed driver takes its actors with it; `solve --resume RUN --ray ADDRESS`
searches what the database still has pending. Every problem is searched with the config's seed, exactly as
`experiments.execute` does, so a problem's answer does not depend on which worker (or process) searched it.

Ray is optional: only this module imports it, and only when a run asks for it (ARCHITECTURE.md, "Runs")."""
from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from reasoning.search import SearchConfig
from reasoning.types import Problem
from storage.runs import Runs

from .execute import Progress, Tick, changed_models

INSTALL = "--ray needs Ray, which is not installed here: pip install 'ray>=2.9' (without --ray everything runs as today)"
ROOT = Path(__file__).resolve().parents[1]


def require_ray():
    """The ray module, or a one-line RuntimeError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RuntimeError(INSTALL) from None
    return ray


def check_database(url: str | None) -> None:
    """A cluster needs a database every node reaches: PostgreSQL, never a SQLite file on one machine (None, the
    default database, is one)."""
    from sqlalchemy.engine import make_url

    if url is None or make_url(url).get_backend_name() == "sqlite":
        raise ValueError("--ray needs a database every node reaches: PostgreSQL (--db postgresql://...), not SQLite")


def connect(address: str):
    """Join the Ray cluster at `address`; `auto`: the one RAY_ADDRESS names, else a local one started on the spot."""
    ray = require_ray()
    if not ray.is_initialized():
        ray.init(address=None if address == "auto" else address, include_dashboard=False, log_to_driver=False,
                 namespace="reasoning-explorer")
    return ray


@dataclass(frozen=True)
class ModelSpec:
    """What a worker loads, as plain values (a directory or URL per model and the loading options): every node
    loads its own copy, so the paths must exist on every node (or be server URLs)."""

    generator: str | None = None
    prm: str | None = None
    prm_adapter: str | None = None
    orm: str | None = None
    device: str | None = None
    trust_remote_code: bool = False
    kv_reuse: bool = True
    max_step_tokens: int = 64
    top_p: float = 1.0
    kv_cache_mb: float | None = None
    prm_batch_tokens: int | None = None
    prm_kv_cache_mb: float | None = None
    threads: int | None = None

    def load(self, catalog) -> tuple[Any, Any, Any]:
        """(generator, scorer, orm) as `cli/common.load_models` and `load_orm_arg` load them; torch's threads by
        the same rule (`reasoning.backends.loading.choose_threads`)."""
        from reasoning.backends import DEMO_PRM_DIR, load_scorer
        from reasoning.backends.loading import choose_threads, set_threads

        generator = self.load_generator(catalog)
        scorer = load_scorer(_where(self.prm, DEMO_PRM_DIR), adapter=self.prm_adapter, device=self.device,
                             trust_remote_code=self.trust_remote_code, batch_tokens=self.prm_batch_tokens,
                             kv_cache_mb=self.prm_kv_cache_mb)
        orm = None
        if self.orm:
            from reasoning.backends.orm import load_orm

            orm = load_orm(Path(self.orm), device=self.device, trust_remote_code=self.trust_remote_code)
        set_threads(choose_threads([generator, scorer], self.threads)[0])
        return generator, scorer, orm

    def load_generator(self, catalog):
        """The generator alone (what rollout labels need), torch's threads set for it when it is the only model."""
        from reasoning.backends import DEMO_GENERATOR_DIR, load_generator
        from reasoning.backends.loading import choose_threads, set_threads

        generator = load_generator(_where(self.generator, DEMO_GENERATOR_DIR), catalog=catalog, device=self.device,
                                   trust_remote_code=self.trust_remote_code, kv_reuse=self.kv_reuse,
                                   max_step_tokens=self.max_step_tokens, top_p=self.top_p,
                                   kv_cache_mb=self.kv_cache_mb)
        set_threads(choose_threads([generator], self.threads)[0])
        return generator


def _where(value: str | None, default: Path) -> str | Path:
    """A model argument as the loaders take it: a server URL as is, a directory as a Path, the default when unset."""
    from reasoning.http_client import is_url

    return default if not value else value if is_url(value) else Path(value)


class Worker:
    """One Ray actor: the models loaded once, a store of its own, one problem searched and recorded per call."""

    def __init__(self, db_url: str, spec: dict[str, Any], config: SearchConfig, catalog) -> None:
        from storage.store import Store

        from .execute import models_identity

        self.config, self.catalog = config, catalog
        self.generator, self.scorer, self.orm = ModelSpec(**spec).load(catalog)
        self.identity = models_identity(self.generator, self.scorer)
        self.runs = Runs(Store(db_url, migrate=False))  # the driver migrated it

    def describe(self) -> dict[str, Any]:
        import ray

        return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(), "models": self.identity}

    def solve(self, run_id: int, problem: Problem) -> dict[str, Any]:
        """Search and record one problem; its record, or None when another worker (or process) wrote it first.
        The session is the one `experiments.execute` stores for a problem (keep the two alike)."""
        from .analysis import solve

        record, tree = solve(problem, self.generator, self.scorer, self.config, self.catalog, self.orm)
        record.pop("stopped", None)
        session = {"tree": tree, "name": f"run {run_id}: {problem.id}", "config": self.config.to_dict(),
                   "catalog": self.catalog, "provenance": self.identity,
                   "meta": {"run": run_id, "search": {"state": "finished"}}}
        written = self.runs.record(run_id, problem.id, record, session) is not None
        return {"problem_id": problem.id, "record": record if written else None, "pid": os.getpid()}


class LabelWorker:
    """One Ray actor for `label --ray`: the generator loaded once, a store of its own, one stored session labeled
    per call through `experiments.autolabel` (chunks committed as they finish, labeled nodes skipped), so a worker
    killed mid-session loses at most its chunk in flight and the retry labels only what is left."""

    def __init__(self, db_url: str, spec: dict[str, Any], rollouts, catalog, options: dict[str, Any]) -> None:
        from storage.store import Store

        self.rollouts, self.options = rollouts, options
        self.generator = ModelSpec(**spec).load_generator(catalog)
        self.identity = {"generator": self.generator.provenance()}
        self.store = Store(db_url, migrate=False)

    def describe(self) -> dict[str, Any]:
        import ray

        return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(), "models": self.identity}

    def label(self, session_id: int) -> dict[str, Any]:
        from .autolabel import label_first_errors, label_rollouts

        skip, chunk = not self.options["relabel"], self.options["chunk"]
        reports = [label_rollouts(self.store, session_id, self.generator, self.rollouts, skip_labeled=skip,
                                  chunk=chunk)]
        if self.options["first_error"]:
            reports.append(label_first_errors(self.store, session_id, self.generator, self.rollouts,
                                              skip_labeled=skip))
        return {"session": session_id, "pid": os.getpid(), "labeled": sum(len(r.labeled) for r in reports),
                "skipped": sum(r.skipped for r in reports), "rollouts": sum(r.rollouts for r in reports)}


class Pool:
    """`workers` Ray actors spread over the cluster's nodes, each with the models loaded."""

    def __init__(self, actors: list, described: list[dict[str, Any]], max_restarts: int):
        self.actors, self.described, self.max_restarts = actors, described, max_restarts
        self.closed = False

    @classmethod
    def start(cls, address: str, *, workers: int, db_url: str, spec: ModelSpec, config: SearchConfig | None = None,
              catalog=None, labels: tuple[Any, dict[str, Any]] | None = None, cpus: float = 1.0,
              gpus: float | None = None, max_restarts: int = 3) -> Pool:
        """Connect, check the cluster can hold `workers` actors, start them (SPREAD over nodes) and wait until every
        one has loaded its models; refuse workers whose models differ (another sha256 on some node). Search workers
        by default; with `labels` (a RolloutConfig and the labeling options) workers for `label --ray`."""
        check_database(db_url)
        ray = connect(address)
        gpus = gpus if gpus is not None else (1.0 if (spec.device or "").startswith("cuda") else 0.0)
        have = ray.cluster_resources()
        for name, each in (("CPU", cpus), ("GPU", gpus)):
            if each and have.get(name, 0) < workers * each:
                raise ValueError(f"the Ray cluster has {have.get(name, 0):g} {name}s; {workers} workers need "
                                 f"{workers * each:g} (--workers N)")
        env = {"PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
               "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        actor = ray.remote(LabelWorker if labels else Worker).options(num_cpus=cpus, num_gpus=gpus, max_restarts=max_restarts,
                                           max_task_retries=0, scheduling_strategy="SPREAD",
                                           runtime_env={"env_vars": env})
        init = (labels[0], catalog, labels[1]) if labels else (config, catalog)
        actors = [actor.remote(db_url, asdict(spec), *init) for _ in range(workers)]
        try:
            described = ray.get([a.describe.remote() for a in actors])
        except ray.exceptions.RayActorError as exc:  # its __init__ raised: say why in one line (the last one)
            for a in actors:
                ray.kill(a, no_restart=True)
            why = [x.strip() for x in str(exc).splitlines() if x.strip()]
            raise RuntimeError(f"a Ray worker could not start: {why[-1] if why else type(exc).__name__}") from None
        for d in described[1:]:
            changed = changed_models(described[0]["models"], d["models"])
            if changed:
                raise ValueError(f"the Ray workers' {' and '.join(changed)} differ between nodes (weights sha256 or "
                                 "server); give every node the same models")
        return cls(actors, described, max_restarts)

    @property
    def identity(self) -> dict[str, Any]:
        return self.described[0]["models"]

    def close(self) -> None:
        """Kill every actor (calls in flight write nothing more); a second call does nothing."""
        import ray

        if self.closed:
            return
        self.closed = True
        for a in self.actors:
            ray.kill(a, no_restart=True)


def start(runs: Runs, problems: list[Problem], config: SearchConfig, identity: dict[str, Any], *, name: str,
          problem_set: str, started_by: str, catalog=None) -> int:
    """A new run, every problem pending, with the models' identity the workers reported (`execute.start` takes it
    from models loaded in this process)."""
    return runs.create(name=name, problem_set=problem_set, problems=problems, config=config.to_dict(),
                       models=identity, started_by=started_by,
                       meta={"catalog": catalog.to_dict() if catalog is not None else None, "ray": True})


class _Queue:
    """The items (problems, or sessions to label) still to hand out, and which workers each one died on."""

    def __init__(self, items: list, workers: int, max_restarts: int, retries: int, what: str = "problem"):
        self.todo: deque = deque(items)
        self.deaths = [0] * workers
        self.tried: dict[str, set[int]] = {}  # item key -> the workers it died on
        self.attempts: dict[str, int] = {}  # item key -> how many times a worker died on it
        self.max_restarts, self.retries, self.what = max_restarts, retries, what

    @staticmethod
    def key(item) -> str:
        return str(getattr(item, "id", item))

    def alive(self) -> list[int]:
        return [w for w, d in enumerate(self.deaths) if d <= self.max_restarts]

    def next_for(self, w: int):
        """The first queued item that did not die on worker w (unless no other live worker could take it)."""
        others = [v for v in self.alive() if v != w]
        for i, p in enumerate(self.todo):
            tried = self.tried.get(self.key(p), set())
            if w not in tried or all(v in tried for v in others):
                del self.todo[i]
                return p
        return None

    def died(self, w: int, p) -> None:
        """Worker w died on p: p goes back to the front, for another worker."""
        k = self.key(p)
        self.deaths[w] += 1
        self.tried.setdefault(k, set()).add(w)
        self.attempts[k] = self.attempts.get(k, 0) + 1
        if self.attempts[k] > self.retries:
            raise RuntimeError(f"{self.what} {k!r} killed its worker {self.attempts[k]} times")
        self.todo.appendleft(p)


def _outcomes(pool: Pool, queue: _Queue, call: Callable[[Any, Any], Any], left: str,
              stop: threading.Event | None = None):
    """(item, answer) as each item of `queue` is finished, one item per idle worker at a time (`call(actor, item)`
    starts it); an item whose worker died goes back to the queue for another worker (`_Queue.died`). Calls still in
    flight when this ends (`stop` set, an error) are abandoned: the pool is closed, so they write nothing more.
    `left` ends the message when every worker died ("problems left pending ...")."""
    import ray
    from ray.exceptions import RayActorError

    idle = list(range(len(pool.actors)))
    running: dict[Any, tuple[int, Any]] = {}
    try:
        while (queue.todo or running) and not (stop is not None and stop.is_set()):
            for w, item in [(w, queue.next_for(w)) for w in list(idle) if w in queue.alive()]:
                if item is not None:
                    running[call(pool.actors[w], item)] = (w, item)
                    idle.remove(w)
            if not running:
                raise RuntimeError(f"every Ray worker died; {len(queue.todo)} {left}")
            ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
            for ref in ready:
                w, item = running.pop(ref)
                idle.append(w)
                try:
                    out = ray.get(ref)
                except RayActorError:  # the worker died mid-item: another one takes it again
                    queue.died(w, item)
                    continue
                yield item, out
    finally:
        if running:
            pool.close()


def execute(runs: Runs, run_id: int, pool: Pool, *, progress: Progress | None = None,
            stop: threading.Event | None = None, retries: int = 3) -> str:
    """Search the run's pending problems on the pool, one problem per worker at a time; returns the run's status
    (finished, or stopped when `stop` was set: the workers are killed, so a problem mid-search writes nothing).
    A problem whose worker died goes back to the front of the queue for another worker, at most `retries` times;
    a search that raises marks the run failed and is raised, as in `experiments.execute`."""
    stop = stop or threading.Event()
    queue = _Queue(runs.pending(run_id), len(pool.actors), pool.max_restarts, retries)
    info = runs.info(run_id)
    runs.set_status(run_id, "running")
    report = progress or (lambda tick: None)
    done, solved = info.done, info.solved
    report(Tick(run_id, done, info.problems, solved))
    results = _outcomes(pool, queue, lambda actor, p: actor.solve.remote(run_id, p),
                        "problems left pending (resume the run)", stop)
    try:
        for p, out in results:
            if out["record"] is None:  # written before its first worker died (or by another process)
                now = runs.info(run_id)
                done, solved = now.done, now.solved
                report(Tick(run_id, done, info.problems, solved, p.id, None))
            else:  # counted here: no database read per problem
                done, solved = done + 1, solved + bool(out["record"]["correct"])
                report(Tick(run_id, done, info.problems, solved, p.id, bool(out["record"]["correct"])))
    except BaseException as exc:
        runs.set_status(run_id, "failed", error=f"{type(exc).__name__}: {exc}"[:500])
        raise
    finally:
        results.close()  # on an error here too: calls still in flight are abandoned (the pool closed) at once
        if stop.is_set():
            pool.close()  # a problem stopped mid-search writes nothing; a resume searches it again
    status = "stopped" if runs.pending(run_id) else "finished"
    runs.set_status(run_id, status)
    return status


def label(pool: Pool, sessions: list[int], *, progress: Callable[[dict[str, Any]], None] | None = None,
          retries: int = 3) -> dict[str, int]:
    """Label the stored sessions on the pool's label workers, one session per worker at a time; the totals
    (labeled, skipped, rollouts). A session whose worker died goes to another worker, which skips the chunks
    already stored (each node is labeled once: one row per node and method)."""
    queue = _Queue(list(sessions), len(pool.actors), pool.max_restarts, retries, what="session")
    totals = {"labeled": 0, "skipped": 0, "rollouts": 0}
    for _sid, out in _outcomes(pool, queue, lambda actor, sid: actor.label.remote(sid),
                               "sessions left unlabeled (run label again: it skips what is stored)"):
        for k in totals:
            totals[k] += out[k]
        if progress is not None:
            progress(out)
    return totals
