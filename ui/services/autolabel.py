"""Automatic labels from the web: rollout estimates and first-error search as jobs, one per session, with progress
and Stop, for the inspector's buttons (`ui/pages/autolabel.py`) and the API (`ui/api_review.py`). No gradio here.

A job validates what the request sends, picks the session's generator and the active PRM, and keeps a stop Event per
session so the page's Stop button (and `/stop_autolabel`) can end it between rollout rounds, nothing half-stored
(`reasoning.labeling.Stopped`). The work itself is `experiments/autolabel.py`'s; results are plain dicts, ready for
JSON, and `summary` gives one readable line of them.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from experiments.autolabel import label_first_error, label_rollouts, live_steps
from reasoning.factors import Catalog, ThoughtFactor, load_catalog
from reasoning.labeling import Estimate, RolloutConfig, Stopped
from reasoning.protocols import Generator, Scorer
from storage.store import Store

from .. import validate as v
from .models import ModelRegistry

__all__ = ["AutoLabelJobs", "Job", "JobRequest", "Stopped", "estimate_by_rollouts", "find_first_error",
           "label_by_rollouts", "request", "rollout_config", "summary"]

Progress = Callable[[int, int], None]
KINDS = ("estimate", "first_error", "label")  # one node; its path; every step under a node (the root: the session)
NODE_KINDS = ("estimate", "first_error")
MAX_ROLLOUTS = 64  # per request from the web (the command line allows more)
MAX_STEPS = 64
MAX_CALL_ROLLOUTS = 256  # the service functions' own cap, for callers other than a web request


# -- the work: one plain function per action --------------------------------------------------------------------------
def session_factors(store: Store, session_id: int) -> tuple[ThoughtFactor, ...]:
    """The factors the session's search had enabled (rollouts continue the way its search did)."""
    info = store.session(session_id)
    catalog = Catalog.from_dict(info.catalog) if info.catalog else load_catalog()
    return catalog.enabled


def rollout_config(store: Store, session_id: int, *, rollouts: int = 8, temperature: float = 0.7,
                   max_steps: int = 12, seed: int | None = None) -> RolloutConfig:
    """Validated rollout settings (a ValueError names the bad one); capped for a shared server."""
    if not isinstance(rollouts, int) or not 1 <= rollouts <= MAX_CALL_ROLLOUTS:
        raise ValueError(f"rollouts must be an integer in 1..{MAX_CALL_ROLLOUTS}, got {rollouts!r}")
    return RolloutConfig(session_factors(store, session_id), n=rollouts, temperature=float(temperature),
                         max_steps=int(max_steps), seed=seed)


def _estimate_json(got: Estimate) -> dict:
    return {"rollouts": got.rollouts, "successes": got.successes, "value": got.value, "hard": got.hard,
            "terminal": got.terminal}


def _prm_score(store: Store, scorer: Scorer | None, session_id: int, node_id: str) -> float | None:
    """The node's stored PRM score, or a fresh one from `scorer` where the node has none (a human step)."""
    tree = store.load_tree(session_id)
    score = tree.node(node_id)["score"]
    if score is None and scorer is not None:
        score = scorer.score(tree.problem, [tree.state(node_id).step_texts])[0][-1]
    return score


def estimate_by_rollouts(store: Store, generator: Generator, scorer: Scorer | None, session_id: int, node_id: str,
                         *, rollouts: int = 8, temperature: float = 0.7, max_steps: int = 12, seed: int | None = None,
                         progress: Progress | None = None, stop: threading.Event | None = None) -> dict:
    """"Estimate by rollouts" on a node: N continuations, stored as its `rollout` auto label (replacing an older
    one), returned beside the node's PRM score."""
    config = rollout_config(store, session_id, rollouts=rollouts, temperature=temperature, max_steps=max_steps,
                            seed=seed)
    label_rollouts(store, session_id, generator, config, node_ids=[node_id], skip_labeled=False, chunk=1,
                   progress=progress, stop=stop)
    (label,) = [a for a in store.auto_labels(session_id) if a.node_id == node_id and a.method == "rollout"]
    got = Estimate(label.rollouts, label.successes)
    return {"session_id": session_id, "node_id": node_id, **_estimate_json(got),
            "prm_score": _prm_score(store, scorer, session_id, node_id), "provenance": label.provenance}


def find_first_error(store: Store, generator: Generator, scorer: Scorer | None, session_id: int, node_id: str,
                     *, rollouts: int = 8, temperature: float = 0.7, max_steps: int = 12, seed: int | None = None,
                     progress: Progress | None = None, stop: threading.Event | None = None) -> dict:
    """"Find the first error" on the root-to-node path: OmegaPRM bisection by rollouts; every step of the path
    gets a `first_error` auto label. `first_error` is the wrong step's node id, None when none was found."""
    config = rollout_config(store, session_id, rollouts=rollouts, temperature=temperature, max_steps=max_steps,
                            seed=seed)
    found = label_first_error(store, session_id, node_id, generator, config, progress=progress, stop=stop)
    tree = store.load_tree(session_id)
    path = tree.path(node_id)[1:]
    scores = {n: tree.node(n)["score"] for n in path}
    return {
        "session_id": session_id, "path": path, "index": found.index,
        "first_error": path[found.index] if found.index >= 0 else None, "rounds": found.rounds,
        "measured": {path[i]: _estimate_json(e) for i, e in sorted(found.measured.items())},
        "prm_scores": scores,
    }


def label_by_rollouts(store: Store, generator: Generator, scorer: Scorer | None, session_id: int, node_id: str = "0",
                      *, rollouts: int = 8, temperature: float = 0.7, max_steps: int = 12, seed: int | None = None,
                      relabel: bool = False, chunk: int = 4, progress: Progress | None = None,
                      stop: threading.Event | None = None) -> dict:
    """`python app.py label` from the page: every live step under `node_id` ("0": the whole session) estimated by
    rollouts, `chunk` nodes per stored batch, steps with a rollout label skipped unless `relabel`. Stopped, the
    batches already finished stay stored (a second run goes on from there) and the result says how many."""
    config = rollout_config(store, session_id, rollouts=rollouts, temperature=temperature, max_steps=max_steps,
                            seed=seed)
    tree = store.load_tree(session_id)
    under = set(tree.subtree(node_id))
    steps = [n for n in live_steps(tree) if n in under]
    done = [0]

    def counted(n: int, total: int) -> None:
        done[0] = n
        if progress is not None:
            progress(n, total)

    out = {"session_id": session_id, "node_id": node_id, "steps": len(steps), "rollouts_each": rollouts}
    try:
        report = label_rollouts(store, session_id, generator, config, node_ids=steps, skip_labeled=not relabel,
                                chunk=chunk, progress=counted, stop=stop)
    except Stopped:
        # "labelled" (so spelled): a key of /label_rollouts' answer, which outside scripts read
        return {**out, "stopped": True, "labelled": done[0]}
    return {**out, "stopped": False, "labelled": len(report.labeled), "skipped": report.skipped,
            "rollouts": report.rollouts}


# -- the jobs: one per session, in a thread or blocking, stoppable ----------------------------------------------------
@dataclass
class Job:
    """A running job's progress, read by the page while the work thread fills it in."""

    kind: str
    session_id: int
    node_id: str
    done: int = 0
    total: int = 0
    result: dict | None = None
    error: BaseException | None = None
    finished: threading.Event = field(default_factory=threading.Event)

    def progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total


@dataclass(frozen=True)
class JobRequest:
    session_id: int
    node_id: str
    rollouts: int
    max_steps: int
    seed: int | None
    relabel: bool = False  # "label": label again the steps that have a rollout label (else they are skipped)


def request(session_id: Any, node_id: Any, rollouts: Any, max_steps: Any = 12, seed: Any = None,
            relabel: Any = False) -> JobRequest:
    """Every parameter checked on the server; a bad one gives one line naming it."""
    return JobRequest(v.session_id(session_id), v.node_id(node_id),
                      v.integer(rollouts, "rollouts", 1, MAX_ROLLOUTS), v.integer(max_steps, "max_steps", 1, MAX_STEPS),
                      None if seed is None or seed == "" else v.integer(seed, "seed", 0, 2**31 - 1),
                      v.flag(relabel, "relabel"))


class AutoLabelJobs:
    def __init__(self, store: Store, registry: ModelRegistry):
        self.store = store
        self.registry = registry
        self._stops: dict[int, threading.Event] = {}
        self._lock = threading.Lock()

    def run(self, kind: str, req: JobRequest, progress: Progress | None = None) -> dict:
        """Do the job now (blocking); raises UserError when one already runs on the session, and returns
        `{"stopped": true}` when stopped."""
        v.choice(kind, "kind", KINDS)
        info = self.store.session(req.session_id)
        self._check(kind, req)
        stop = threading.Event()
        with self._lock:
            v.need(req.session_id not in self._stops, f"automatic labeling already runs on session {req.session_id}; "
                                                      "stop it or wait for it")
            self._stops[req.session_id] = stop
        try:
            generator, scorer = self.registry.pair((info.provenance or {}).get("generator_dir"), None)
            if kind == "label":
                return label_by_rollouts(self.store, generator, scorer, req.session_id, req.node_id,
                                         rollouts=req.rollouts, max_steps=req.max_steps, seed=req.seed,
                                         relabel=req.relabel, progress=progress, stop=stop)
            fn = estimate_by_rollouts if kind == "estimate" else find_first_error
            out = fn(self.store, generator, scorer, req.session_id, req.node_id, rollouts=req.rollouts,
                     max_steps=req.max_steps, seed=req.seed, progress=progress, stop=stop)
            return {"stopped": False, **out}
        except Stopped:
            return {"stopped": True, "session_id": req.session_id, "node_id": req.node_id}
        finally:
            with self._lock:
                self._stops.pop(req.session_id, None)

    def _check(self, kind: str, req: JobRequest) -> None:
        """The node is in the session's tree (a step, for the node kinds) and its problem has a gold answer."""
        tree = self.store.load_tree(req.session_id)
        if kind in NODE_KINDS:
            v.need(req.node_id in tree and req.node_id != "0", f"no step {req.node_id} in session {req.session_id} "
                                                                 "(the root has no label)")
        else:
            v.need(req.node_id in tree, f"no node {req.node_id} in session {req.session_id}")
        v.need(tree.problem.answer is not None or tree.problem.domain == "countdown",
               f"session {req.session_id}'s problem has no gold answer: rollouts need one to count successes")

    def start(self, kind: str, req: JobRequest) -> Job:
        """Run the job in a thread; the page polls the returned Job."""
        job = Job(kind, req.session_id, req.node_id)

        def work() -> None:
            try:
                job.result = self.run(kind, req, job.progress)
            except BaseException as exc:  # noqa: BLE001 - handed to the page, which shows it as one line
                job.error = exc
            finally:
                job.finished.set()

        threading.Thread(target=work, name=f"autolabel-{req.session_id}", daemon=True).start()
        return job

    def stopping(self, session_id: int) -> bool:
        """Whether Stop was asked for the session's running job (the page says so in its next progress line)."""
        with self._lock:
            stop = self._stops.get(session_id)
        return stop is not None and stop.is_set()

    def stop(self, session_id: Any) -> bool:
        """Ask the session's job to stop after its current rollout round; false when none runs."""
        sid = v.session_id(session_id)
        with self._lock:
            stop = self._stops.get(sid)
        if stop is None:
            return False
        stop.set()
        return True


# -- the result as one line -------------------------------------------------------------------------------------------
def summary(result: dict) -> str:
    """One readable line of a job's result, beside the PRM score."""
    if "steps" in result:
        return labeled_line(result)
    if result.get("stopped"):
        return f"stopped on node {result['node_id']}: nothing was stored"
    if "first_error" in result:
        return first_error_line(result)
    score = result.get("prm_score")
    value = "-" if result["value"] is None else f"{result['value']:.2f}"
    return (f"node {result['node_id']}: rollout value {value} ({result['successes']}/{result['rollouts']} rollouts "
            f"reached the gold answer) · PRM score {'-' if score is None else f'{score:.2f}'}")


def first_error_line(result: dict) -> str:
    """The line of a "first_error" job: the wrong step found (or none), rollout values beside PRM scores."""
    path, idx = result["path"], result["index"]
    found = (f"first wrong step: {result['first_error']} (step {idx + 1} of {len(path)})" if idx >= 0
             else f"no wrong step found on the {len(path)} steps")
    measured = ", ".join(f"{n} {m['value']:.2f} ({m['successes']}/{m['rollouts']})"
                         for n, m in result["measured"].items() if m["value"] is not None)
    prm = ", ".join(f"{n} {s:.2f}" for n, s in result["prm_scores"].items() if s is not None)
    return f"{found}, {result['rounds']} rounds · rollout values: {measured or '-'} · PRM scores: {prm or '-'}"


def labeled_line(result: dict) -> str:
    """The line of a "label" job: how many steps it labeled, skipped, or (stopped) kept."""
    where = (f"session {result['session_id']}" if result["node_id"] == "0"
             else f"the subtree under node {result['node_id']} of session {result['session_id']}")
    if result["stopped"]:
        return (f"stopped: {result['labelled']} of the {result['steps']} steps of {where} labeled and stored; "
                "label again to go on (labeled steps are skipped)")
    skipped = f"; {result['skipped']} skipped, labeled before" if result["skipped"] else ""
    return (f"labeled {result['labelled']} of the {result['steps']} steps of {where} by rollouts "
            f"({result['rollouts']} rollouts){skipped}")
