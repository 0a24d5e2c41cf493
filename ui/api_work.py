"""Assigned work as named endpoints: an admin assigns sessions to annotators with an overlap (`/assign`) and writes
the guideline (`/set_guideline`); each annotator reads her queue of assigned steps with "N of M done"
(`/my_queue`), and skips or flags steps (`/mark_step`); `/guideline` is read by everyone. Registered by
`ui.api.register`; the roles are checked by `ui.wiring.require` (ui/roles.py)."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import gradio as gr

from storage.assignments import Work

from . import validate as v
from .service import Explorer
from .services import review as rv
from .wiring import guarded, require, who

MAX_GUIDELINE = 20_000


def queue(engine: Explorer, work: Work, annotator: str) -> dict[str, Any]:
    """The annotator's assigned steps (live, not the root) in session and node order: done (rated by her, skipped or
    flagged) and still to do, with the line "N of M done"."""
    sessions = work.assigned(annotator)
    marks = work.marks(annotator, sessions)
    todo, total, done = [], 0, 0
    for sid in sessions:
        tree = engine.tree(sid)
        rated = {a.node_id for a in engine.store.annotations(sid) if a.annotator == annotator}
        for nid in tree.nodes(include_pruned=False):
            if nid == "0" or not tree.is_live(nid):
                continue
            total += 1
            if nid in rated or (sid, nid) in marks:
                done += 1
            else:
                todo.append({"session_id": sid, "node_id": nid, "text": tree.node(nid)["text"]})
    flagged = [{"session_id": s, "node_id": n, "reason": r} for (s, n), (k, r) in sorted(marks.items()) if k == "flag"]
    return {"annotator": annotator, "sessions": sessions, "done": done, "total": total,
            "line": f"{done} of {total} done", "todo": todo, "flagged": flagged}


def assigned_queue(engine: Explorer, work: Work, annotator: str,
                   flt: rv.QueueFilter) -> tuple[rv.QueueFilter, list[rv.ReviewSource], dict[str, Any]]:
    """The review queue narrowed to the annotator's assigned steps still to do (the same "done" as `queue`): the
    filter keeping only those steps, the sources of her assigned sessions (read however old they are), and her
    queue ("N of M done")."""
    mine = queue(engine, work, annotator)
    todo = frozenset((t["session_id"], t["node_id"]) for t in mine["todo"])
    return replace(flt, only=todo), engine.review.sources(flt.session_id, among=mine["sessions"]), mine


class WorkEndpoints:
    def __init__(self, engine: Explorer):
        self.engine = engine
        self.work = Work(engine.store)

    def assign(self, session_ids: list[int], annotators: list[str], overlap: int = 1, annotator: str = "",
               request: gr.Request = None) -> dict:
        """Assign sessions to annotators, each session to `overlap` of them (round robin), so that agreement can be
        measured; returns how many assignments are new. Admins only where the app has roles."""
        require(self.engine.access, request, "assign")
        if not isinstance(session_ids, list) or not isinstance(annotators, list):
            raise gr.Error("session_ids and annotators must be lists")
        ids = [v.session_id(s) for s in session_ids]
        names = [v.annotator(a) for a in annotators]
        overlap = v.integer(overlap, "overlap", 1, max(1, len(names)))
        new = self.work.assign(ids, names, overlap, who(annotator, request))
        return {"new": new, "assignees": {str(k): val for k, val in self.work.assignees().items() if k in ids}}

    def set_guideline(self, text: str, annotator: str = "", request: gr.Request = None) -> dict:
        """Write the labeling guideline shown beside every annotator's queue. Admins only where the app has roles."""
        require(self.engine.access, request, "assign")
        self.work.set_guideline(v.text(text, "guideline", limit=MAX_GUIDELINE, allow_empty=True),
                                who(annotator, request))
        return self.guideline()

    def guideline(self) -> dict:
        """The current guideline and who wrote it."""
        text, author = self.work.guideline()
        return {"text": text, "author": author}

    def my_queue(self, annotator: str = "", request: gr.Request = None) -> dict:
        """The logged-in annotator's assigned steps: "N of M done" (rated, skipped or flagged), the steps still to
        do, her flags, and the guideline."""
        return {**queue(self.engine, self.work, who(annotator, request)), "guideline": self.guideline()}

    def mark_step(self, session_id: int, node_id: str, mark: str, reason: str = "", annotator: str = "",
                  request: gr.Request = None) -> dict:
        """Skip a step of your queue (`mark` skip) or flag it (`mark` flag, `reason` "badly split step" or
        "unsure"); it then counts as done. Returns your queue's line."""
        require(self.engine.access, request, "rate")
        sid, nid = v.session_id(session_id), v.node_id(node_id)
        v.need(nid in self.engine.tree(sid), f"no node {nid} in session {sid}")
        user = who(annotator, request)
        self.work.mark(sid, nid, user, str(mark), str(reason or ""))
        return {"line": queue(self.engine, self.work, user)["line"]}

    def names(self) -> tuple[str, ...]:
        return ("assign", "set_guideline", "guideline", "my_queue", "mark_step")


def register_work(engine: Explorer) -> None:
    api = WorkEndpoints(engine)
    for name in api.names():
        gr.api(guarded(getattr(api, name)), api_name=name)

