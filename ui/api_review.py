"""Named API endpoints of the labeling loop: automatic labels, the review queue, calibration, agreement and the
active PRM. Registered by `ui.api.register`; every parameter is checked on the server (`ui.validate`)."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

import gradio as gr

from storage.assignments import Work

from . import validate as v
from .api_work import assigned_queue
from .service import Explorer
from .services import autolabel as autojobs
from .services import review as rv
from .wiring import guarded, require, who

MAX_QUEUE = 500


def _filter(session_id: Any, problem_set: Any, annotator: Any, skip_rated_by: Any,
            disputed: Any = False) -> rv.QueueFilter:
    sid = None if session_id in (None, "", 0) else v.session_id(session_id)
    return rv.QueueFilter(sid, v.text(problem_set or "", "problem_set", limit=400, allow_empty=True),
                          v.annotator(annotator) if annotator else "",
                          v.annotator(skip_rated_by) if skip_rated_by else "", v.flag(disputed, "disputed"))


class LoopEndpoints:
    """One method per endpoint; `names` lists them, `MODEL_CALLS` those that run a model (one at a time)."""

    MODEL_CALLS = ("estimate_rollouts", "first_error", "use_prm")
    LABELING_CALLS = ("label_rollouts",)  # many nodes, minutes: their own slot, so model calls do not wait

    def __init__(self, engine: Explorer):
        self.engine = engine
        self.work = Work(engine.store)

    def estimate_rollouts(self, session_id: int, node_id: str, rollouts: int = 8, max_steps: int = 12,
                          seed: int | None = None, request: gr.Request = None) -> dict:
        """Estimate a step by rollouts (Math-Shepherd): `rollouts` continuations with the session's generator;
        stored as the node's `rollout` auto label and returned with successes, value and the PRM score."""
        require(self.engine.access, request, "autolabel")
        return self.engine.autojobs.run("estimate", autojobs.request(session_id, node_id, rollouts, max_steps, seed))

    def first_error(self, session_id: int, node_id: str, rollouts: int = 8, max_steps: int = 12,
                    seed: int | None = None, request: gr.Request = None) -> dict:
        """Find the first wrong step on the root-to-node path by binary search over rollout values (OmegaPRM);
        every step of the path gets a `first_error` auto label. `first_error` is null when none was found."""
        require(self.engine.access, request, "autolabel")
        return self.engine.autojobs.run("first_error",
                                        autojobs.request(session_id, node_id, rollouts, max_steps, seed))

    def label_rollouts(self, session_id: int, node_id: str = "0", rollouts: int = 8, max_steps: int = 12,
                       seed: int | None = None, relabel: bool = False, request: gr.Request = None) -> dict:
        """Label every live step of the session (`node_id` "0") or of the subtree under `node_id` by rollouts, as
        `python app.py label` does, each batch stored as it ends; steps with a rollout label are skipped unless
        `relabel`. `/stop_autolabel` ends it, keeping the finished batches; returns steps, labeled, skipped."""
        require(self.engine.access, request, "autolabel")
        return self.engine.autojobs.run("label", autojobs.request(session_id, node_id or "0", rollouts, max_steps,
                                                                  seed, relabel))

    def stop_autolabel(self, session_id: int, request: gr.Request = None) -> bool:
        """Stop the session's automatic-label job after its current rollout round; false when none runs."""
        require(self.engine.access, request, "autolabel")
        return self.engine.autojobs.stop(session_id)

    def review_queue(self, session_id: int | None = None, problem_set: str = "", annotator: str = "",
                     skip_rated_by: str = "", limit: int = 50, disputed: bool = False, assigned_only: bool = False,
                     assignee: str = "", request: gr.Request = None) -> list[dict]:
        """Steps ordered by how much the active PRM's score, the rollout value and human ratings disagree, then by
        PRM uncertainty; filters: session, problem set, steps rated by `annotator`, steps not rated by
        `skip_rated_by`, (`disputed`) only steps where annotators disagree and no adjudicator has decided, and
        (`assigned_only`) only the steps assigned to the logged-in user (`assignee` in an app without a login)
        that she has not yet rated, skipped or flagged, as `/my_queue` counts them (empty when nothing is
        assigned; `/my_queue` says which)."""
        limit = v.integer(limit, "limit", 1, MAX_QUEUE)
        flt = _filter(session_id, problem_set, annotator, skip_rated_by, disputed)
        if v.flag(assigned_only, "assigned_only"):
            flt, sources, _ = assigned_queue(self.engine, self.work, who(assignee, request), flt)
        else:
            sources = self.engine.review.sources(flt.session_id)
        queue = rv.review_queue(rv.review_items(sources), flt)
        return [{"session_id": it.session_id, "node_id": it.node_id, "problem_set": it.problem_set,
                 "prm": it.prm, "rollout": it.rollout, "successes": it.successes, "rollouts": it.rollouts,
                 "ratings": dict(it.ratings), "disagreement": it.disagreement, "uncertainty": it.uncertainty,
                 "adjudication": None if it.adjudication is None else
                 {"annotator": it.adjudication[0], "rating": it.adjudication[1]},
                 "text": it.text} for it in queue[:limit]]

    def calibration(self, session_id: int | None = None, bins: int = 10) -> dict:
        """The active PRM's calibration: score bins with counts and mean rollout value / mean human label."""
        bins = v.integer(bins, "bins", 1, 50)
        sid = None if session_id in (None, "", 0) else v.session_id(session_id)
        pairs = rv.calibration_pairs(rv.review_items(self.engine.review.sources(sid)))
        return {"prm": self.engine.registry.active_prm_dir,
                **{k: [asdict(b) for b in rv.calibration_bins(p, bins)] for k, p in pairs.items()}}

    def agreement(self, session_id: int | None = None) -> list[dict]:
        """Cohen's kappa for each pair of annotators and Fleiss' kappa for larger groups, over the steps they all
        rated (`nodes`)."""
        sid = None if session_id in (None, "", 0) else v.session_id(session_id)
        items = rv.review_items(self.engine.review.sources(sid))
        rows = rv.agreement({(it.session_id, it.node_id): it.ratings for it in items if len(it.ratings) >= 2})
        return [dict(zip(rv.AGREEMENT_HEADERS, row, strict=True)) for row in rows]

    def use_prm(self, prm_dir: str = "", request: gr.Request = None) -> dict:
        """Make an offered PRM folder (or server) the active one for new searches, the review queue and automatic
        labels, without a restart; blank goes back to the PRM the app started with. Admins only where the app has
        roles (it changes what every user's searches are scored by)."""
        require(self.engine.access, request, "models")
        return {"active_prm": self.engine.use_prm(prm_dir)}

    def names(self) -> tuple[str, ...]:
        return ("estimate_rollouts", "first_error", "label_rollouts", "stop_autolabel", "review_queue", "calibration",
                "agreement", "use_prm")


def register_loop(engine: Explorer) -> None:
    """Declare the loop's endpoints inside the current gr.Blocks (model calls share the `model` queue)."""
    api = LoopEndpoints(engine)
    for name in api.names():
        slot = "model" if name in api.MODEL_CALLS else "labeling" if name in api.LABELING_CALLS else None
        gr.api(guarded(getattr(api, name)), api_name=name, concurrency_id=slot, concurrency_limit=1 if slot else None)
