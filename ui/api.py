"""Named API endpoints (`gradio_client`): every explorer action as a typed function returning plain JSON.

The page's own events call the same `Explorer` methods; these endpoints are the stable surface for scripts.
"""
from __future__ import annotations

from typing import Any

import gradio as gr

from .analytics import factor_depth_stats
from .service import TRACE_HEADERS, Explorer
from .wiring import guarded, who


def register(engine: Explorer) -> None:
    """Declare the endpoints inside the current gr.Blocks."""

    def search(problem: str, algorithm: str = "mcts", budget: int = 32, seed: int = 0, candidates: int = 3,
               temperature: float = 1.0, c_puct: float = 1.5, beam_width: int = 4, max_depth: int = 12,
               aggregation: str = "min", annotator: str = "", widen: float = 0.0, fpu_reduction: float = 0.0,
               answer_selection: str = "value", merge_duplicates: bool = True,
               request: gr.Request = None) -> dict:
        """Run a search to the end on a new session; returns the session id, node count and answer."""
        config = engine.config(algorithm, budget, seed, candidates, temperature, c_puct, beam_width, max_depth,
                               aggregation, widen=widen, fpu_reduction=fpu_reduction,
                               answer_selection=answer_selection, merge_duplicates=merge_duplicates)
        last = _last(engine.run_search(problem, config, annotator=who(annotator, request)))
        r = last.result
        return {"session_id": last.session_id, "nodes": len(last.tree), "answer": r.answer if r else None,
                "node": r.node if r else None, "value": r.value if r else None, "status": last.status}

    def stop(session_id: int) -> bool:
        """Stop a running search after its current step; false when none runs on that session."""
        return engine.stop(session_id)

    def tree(session_id: int) -> dict:
        """The whole tree of a session: problem and nodes with every attribute."""
        return engine.tree(session_id).to_dict()

    def trace(session_id: int, node_id: str) -> list[dict]:
        """The root-to-node trace, one step per row (factor, PRM score, value, Q, visits, prior, human labels)."""
        return [dict(zip(TRACE_HEADERS, row, strict=True)) for row in engine.inspect(session_id, node_id).trace]

    def rate(session_id: int, node_id: str, rating: int, unsure: bool = False, note: str = "",
             annotator: str = "", action_id: str = "", expected_version: int | None = None,
             request: gr.Request = None) -> dict:
        """Rate a step -1 / 0 / +1 (PRM800K) with an optional unsure flag and note.

        `action_id` makes a retry idempotent; `expected_version` (the version of your own rating you last saw,
        0 for none) turns a concurrent change into an explicit conflict error instead of an overwrite."""
        ann = engine.rate(session_id, node_id, rating, annotator=who(annotator, request), unsure=unsure, note=note,
                          action_id=action_id, expected_version=expected_version)
        return ann.to_json()

    def rate_children(session_id: int, node_id: str, ratings: dict[str, int], annotator: str = "",
                      request: gr.Request = None) -> int:
        """Rate several children of a node at once: `{child id: rating}`; returns how many were saved."""
        if not isinstance(ratings, dict):
            raise gr.Error("ratings must be an object {child id: -1 | 0 | 1}")
        rows = [[child, value] for child, value in ratings.items()]
        return engine.rate_children(session_id, node_id, rows, annotator=who(annotator, request))

    def edit_step(session_id: int, node_id: str, text: str, annotator: str = "", request: gr.Request = None) -> str:
        """Save an edited version of a step as its sibling (origin `edited`, re-scored); returns the new id."""
        return engine.edit(session_id, node_id, text, annotator=who(annotator, request))

    def human_step(session_id: int, node_id: str, text: str, factor: str = "", annotator: str = "",
                   request: gr.Request = None) -> str:
        """Add a step written by a person under a node (origin `human`, scored); returns the new id."""
        return engine.add_human_step(session_id, node_id, text, factor or None, annotator=who(annotator, request))

    def expand(session_id: int, node_id: str, factor: str, n: int = 3, annotator: str = "",
               request: gr.Request = None) -> list[str]:
        """Sample n children under a node with one thought factor; returns their ids."""
        return engine.expand(session_id, node_id, factor, n, annotator=who(annotator, request))

    def resume(session_id: int, node_id: str, budget: int = 16) -> dict:
        """Continue the session's search from a node with a new budget; returns node count and answer."""
        last = _last(engine.resume(session_id, node_id, budget))
        r = last.result
        return {"session_id": last.session_id, "nodes": len(last.tree), "answer": r.answer if r else None,
                "status": last.status}

    def prune(session_id: int, node_id: str, annotator: str = "", action_id: str = "",
              expected_version: int | None = None, request: gr.Request = None) -> dict:
        """Prune a node's subtree (recorded, undoable); `action_id` and `expected_version` as in `rate`."""
        st = engine.prune(session_id, node_id, annotator=who(annotator, request), action_id=action_id,
                          expected_version=expected_version)
        return {"session_id": st.session_id, "node_id": st.node_id, "pruned": st.pruned, "version": st.version}

    def undo(session_id: int, annotator: str = "", request: gr.Request = None) -> dict:
        """Undo the annotator's latest action in a session; `undid` is null when there was none."""
        done = engine.undo(session_id, annotator=who(annotator, request))
        return {"undid": None if done is None else {"kind": done.kind, "node_id": done.node_id,
                                                    "action_id": done.action_id}}

    def summarize(session_id: int, node_id: str) -> str:
        """A short summary of the root-to-node trace, written by the generator."""
        return engine.summarize(session_id, node_id)

    def sessions(query: str = "", include_deleted: bool = False) -> list[dict]:
        """Sessions, newest first, filtered by name or problem text."""
        keys = ["id", "name", "problem", "nodes", "annotations", "updated", "deleted"]
        return [dict(zip(keys, row, strict=True)) for row in engine.sessions(query, include_deleted)]

    def _info(info) -> dict:
        return {"id": info.id, "name": info.name, "deleted": info.deleted, "version": info.version}

    def rename_session(session_id: int, name: str, annotator: str = "", request: gr.Request = None) -> dict:
        """Rename a session."""
        return _info(engine.rename(session_id, name, annotator=who(annotator, request)))

    def delete_session(session_id: int, annotator: str = "", request: gr.Request = None) -> dict:
        """Delete a session (recoverable with restore_session)."""
        return _info(engine.delete(session_id, annotator=who(annotator, request)))

    def restore_session(session_id: int, annotator: str = "", request: gr.Request = None) -> dict:
        """Restore a deleted session."""
        return _info(engine.restore(session_id, annotator=who(annotator, request)))

    def analytics(session_id: int) -> list[dict]:
        """Nodes, visits and mean value per (thought factor, depth) of a session's live steps."""
        stats = factor_depth_stats(engine.tree(session_id))
        return [{"factor": f, "depth": d, **{k: (None if x != x else x) for k, x in s.items()}}
                for (f, d), s in sorted(stats.items())]

    def export(fmt: str = "trl", labels: str = "human", neutral: str = "drop", soft: bool = False,
               all_paths: bool = False, session_ids: list[int] | None = None, preview: int = 5) -> dict:
        """Export labeled traces; returns the manifest and the first `preview` records (0-50)."""
        if not isinstance(preview, int) or not 0 <= preview <= 50:
            raise gr.Error("preview must be an integer between 0 and 50")
        _, manifest, first = engine.export(fmt, labels=labels, neutral=neutral, soft=soft, all_paths=all_paths,
                                           session_ids=session_ids, preview=preview)
        return {"manifest": manifest, "records": first}

    endpoints: dict[str, Any] = {
        "search": search, "stop": stop, "tree": tree, "trace": trace, "rate": rate, "rate_children": rate_children,
        "edit_step": edit_step, "human_step": human_step, "expand": expand, "resume": resume, "prune": prune,
        "undo": undo, "summarize": summarize, "sessions": sessions, "rename_session": rename_session,
        "delete_session": delete_session, "restore_session": restore_session, "analytics": analytics,
        "export": export,
    }
    model_calls = {"search", "expand", "resume", "summarize", "edit_step", "human_step"}
    for name, fn in endpoints.items():
        gr.api(guarded(fn), api_name=name, concurrency_id="model" if name in model_calls else None,
               concurrency_limit=1 if name in model_calls else None)


def _last(updates):
    """Drain a search's updates and return the final one."""
    final = None
    for final in updates:  # noqa: B007 - only the last update matters
        pass
    return final
