"""Service functions for automatic labels, for the API endpoints and the inspector's buttons (no gradio here).

Each action is one plain function taking the store, the loaded generator and scorer, and ids; `progress(done,
total)` is called as work finishes and `stop` (a threading.Event) ends the work between rollout rounds, raising
`reasoning.labeling.Stopped` with nothing half-stored. Results are plain dicts, ready for JSON.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

from reasoning.factors import Catalog, ThoughtFactor, load_catalog
from reasoning.labeling import Estimate, RolloutConfig, Stopped
from reasoning.protocols import Generator, Scorer
from storage.autolabel import label_first_error, label_rollouts, live_steps
from storage.store import Store

__all__ = ["Stopped", "estimate_by_rollouts", "find_first_error", "label_by_rollouts", "rollout_config"]

Progress = Callable[[int, int], None]
MAX_ROLLOUTS = 256


def session_factors(store: Store, session_id: int) -> tuple[ThoughtFactor, ...]:
    """The factors the session's search had enabled (rollouts continue the way its search did)."""
    info = store.session(session_id)
    catalog = Catalog.from_dict(info.catalog) if info.catalog else load_catalog()
    return catalog.enabled


def rollout_config(store: Store, session_id: int, *, rollouts: int = 8, temperature: float = 0.7,
                   max_steps: int = 12, seed: int | None = None) -> RolloutConfig:
    """Validated rollout settings (a ValueError names the bad one); capped for a shared server."""
    if not isinstance(rollouts, int) or not 1 <= rollouts <= MAX_ROLLOUTS:
        raise ValueError(f"rollouts must be an integer in 1..{MAX_ROLLOUTS}, got {rollouts!r}")
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
    label_rollouts(store, session_id, generator, config, node_ids=[node_id], skip_labelled=False, chunk=1,
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
        report = label_rollouts(store, session_id, generator, config, node_ids=steps, skip_labelled=not relabel,
                                chunk=chunk, progress=counted, stop=stop)
    except Stopped:
        return {**out, "stopped": True, "labelled": done[0]}
    return {**out, "stopped": False, "labelled": len(report.labelled), "skipped": report.skipped,
            "rollouts": report.rollouts}
