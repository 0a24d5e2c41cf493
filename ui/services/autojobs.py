"""Automatic-label jobs for the inspector's buttons and the API: one at a time per session, stoppable, with progress.

`ui/autolabel.py` has the service functions (rollouts and first-error search, stored as auto labels); this module
validates what a request sends, picks the session's generator and the active PRM, and keeps a stop Event per session
so the page's Stop button (and `/stop_autolabel`) can end a job between rollout rounds, nothing half-stored.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from storage.store import Store

from .. import autolabel
from .. import validate as v
from .models import ModelRegistry

KINDS = ("estimate", "first_error", "label")  # one node; its path; every step under a node (the root: the session)
NODE_KINDS = ("estimate", "first_error")
MAX_ROLLOUTS = 64  # per request from the web (the command line allows more)
MAX_STEPS = 64


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

    def run(self, kind: str, req: JobRequest, progress: Callable[[int, int], None] | None = None) -> dict:
        """Do the job now (blocking); raises UserError when one already runs on the session, and returns
        `{"stopped": true}` when stopped."""
        v.choice(kind, "kind", KINDS)
        info = self.store.session(req.session_id)
        tree = self.store.load_tree(req.session_id)
        if kind in NODE_KINDS:
            v.need(req.node_id in tree and req.node_id != "0", f"no step {req.node_id} in session {req.session_id} "
                                                                 "(the root has no label)")
        else:
            v.need(req.node_id in tree, f"no node {req.node_id} in session {req.session_id}")
        v.need(tree.problem.answer is not None or tree.problem.domain == "countdown",
               f"session {req.session_id}'s problem has no gold answer: rollouts need one to count successes")
        stop = threading.Event()
        with self._lock:
            v.need(req.session_id not in self._stops, f"automatic labelling already runs on session {req.session_id}; "
                                                      "stop it or wait for it")
            self._stops[req.session_id] = stop
        try:
            generator, scorer = self.registry.pair((info.provenance or {}).get("generator_dir"), None)
            if kind == "label":
                return autolabel.label_by_rollouts(self.store, generator, scorer, req.session_id, req.node_id,
                                                   rollouts=req.rollouts, max_steps=req.max_steps, seed=req.seed,
                                                   relabel=req.relabel, progress=progress, stop=stop)
            fn = autolabel.estimate_by_rollouts if kind == "estimate" else autolabel.find_first_error
            out = fn(self.store, generator, scorer, req.session_id, req.node_id, rollouts=req.rollouts,
                     max_steps=req.max_steps, seed=req.seed, progress=progress, stop=stop)
            return {"stopped": False, **out}
        except autolabel.Stopped:
            return {"stopped": True, "session_id": req.session_id, "node_id": req.node_id}
        finally:
            with self._lock:
                self._stops.pop(req.session_id, None)

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


def summary(result: dict) -> str:
    """One readable line of a job's result, beside the PRM score."""
    if "steps" in result:
        return labelled_line(result)
    if result.get("stopped"):
        return f"stopped on node {result['node_id']}: nothing was stored"
    if "first_error" in result:
        path, idx = result["path"], result["index"]
        found = (f"first wrong step: {result['first_error']} (step {idx + 1} of {len(path)})" if idx >= 0
                 else f"no wrong step found on the {len(path)} steps")
        measured = ", ".join(f"{n} {m['value']:.2f} ({m['successes']}/{m['rollouts']})"
                             for n, m in result["measured"].items() if m["value"] is not None)
        prm = ", ".join(f"{n} {s:.2f}" for n, s in result["prm_scores"].items() if s is not None)
        return f"{found}, {result['rounds']} rounds · rollout values: {measured or '-'} · PRM scores: {prm or '-'}"
    score = result.get("prm_score")
    value = "-" if result["value"] is None else f"{result['value']:.2f}"
    return (f"node {result['node_id']}: rollout value {value} ({result['successes']}/{result['rollouts']} rollouts "
            f"reached the gold answer) · PRM score {'-' if score is None else f'{score:.2f}'}")


def labelled_line(result: dict) -> str:
    """The line of a "label" job: how many steps it labelled, skipped, or (stopped) kept."""
    where = (f"session {result['session_id']}" if result["node_id"] == "0"
             else f"the subtree under node {result['node_id']} of session {result['session_id']}")
    if result["stopped"]:
        return (f"stopped: {result['labelled']} of the {result['steps']} steps of {where} labelled and stored; "
                "label again to go on (labelled steps are skipped)")
    skipped = f"; {result['skipped']} skipped, labelled before" if result["skipped"] else ""
    return (f"labelled {result['labelled']} of the {result['steps']} steps of {where} by rollouts "
            f"({result['rollouts']} rollouts){skipped}")
