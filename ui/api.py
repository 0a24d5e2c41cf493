"""Named API endpoints (`gradio_client`): every explorer action as a typed function returning plain JSON.

The page's own events call the same `Explorer` methods; these endpoints are the stable surface for scripts. The
search settings of `/search` are generated from their one declaration (`reasoning.search.config.SETTINGS`): every
setting is a parameter after `problem`, in declaration order (`algorithm`, `budget`, ...), and one left out takes
the model's recommended value, as the UI's untouched controls and the command line's unset flags do.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

import gradio as gr

from reasoning.search.config import SETTINGS, Setting

from .analytics import factor_depth_stats
from .api_review import register_loop
from .api_work import register_work
from .service import TRACE_HEADERS, Explorer, RunUpdate
from .wiring import guarded, require, who

# Model work runs one at a time per slot, so it never floods the cores: whole searches in the "search" slot, and the
# short model calls (a re-scored edit, a sampled expansion) in the "model" slot, so that an edit never waits for a
# whole search to finish (the backends are thread-safe: a search's worker thread and an edit share them).
SEARCH_CALLS = {"search", "resume"}
MODEL_CALLS = {"expand", "summarize", "edit_step", "human_step"}
SESSION_KEYS = ["id", "name", "problem", "nodes", "annotations", "updated", "deleted", "search"]
_API_TYPES: dict[str, Any] = {"int": int | None, "float": float | None, "choice": str | None, "bool": bool | None,
                              "floats": list[float] | float | str | None, "names": list[str] | str | None}


def setting_parameters() -> list[inspect.Parameter]:
    """One keyword parameter per declared search setting that is a control, default None (the model's value)."""
    return [inspect.Parameter(s.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                              annotation=_API_TYPES[s.kind])
            for s in api_settings()]


def api_settings() -> list[Setting]:
    return [s for s in SETTINGS if s.control or s.name == "factors"]


class Endpoints:
    """The endpoints, one method each; `register` declares them in the current gr.Blocks."""

    def __init__(self, engine: Explorer):
        self.engine = engine

    def search(self, problem: str, annotator: str = "", request: gr.Request = None, **settings: Any) -> dict:
        """Run a search to the end on a new session; returns the session id, node count and answer. Every search
        setting (algorithm, budget, seed, candidates, temperatures, c_puct, ...) may be given; those left out take
        the loaded model's recommended settings."""
        require(self.engine.access, request, "search")
        config = self.engine.config({k: val for k, val in settings.items() if val is not None})
        last = _last(self.engine.run_search(problem, config, annotator=who(annotator, request)))
        r = last.result
        return {"session_id": last.session_id, "nodes": len(last.tree), "answer": r.answer if r else None,
                "node": r.node if r else None, "value": r.value if r else None, "status": last.status,
                "config": config.to_dict()}

    def stop(self, session_id: int, request: gr.Request = None) -> bool:
        """Stop a running search after its current step; false when none runs on that session."""
        require(self.engine.access, request, "stop")
        return self.engine.stop(session_id)

    def tree(self, session_id: int) -> dict:
        """The whole tree of a session: problem and nodes with every attribute."""
        return self.engine.tree(session_id).to_dict()

    def trace(self, session_id: int, node_id: str) -> list[dict]:
        """The root-to-node trace, one step per row (factor, PRM score, value, Q, visits, prior, human labels)."""
        return [dict(zip(TRACE_HEADERS, row, strict=True)) for row in self.engine.inspect(session_id, node_id).trace]

    def rate(self, session_id: int, node_id: str, rating: int, unsure: bool = False, note: str = "",
             annotator: str = "", action_id: str = "", expected_version: int | None = None,
             adjudicated: bool = False, request: gr.Request = None) -> dict:
        """Rate a step -1 / 0 / +1 (PRM800K) with an optional unsure flag and note.

        `action_id` makes a retry idempotent; `expected_version` (the version of your own rating you last saw,
        0 for none) turns a concurrent change into an explicit conflict error instead of an overwrite;
        `adjudicated` stores the rating as an adjudicator's decision, which settles the step in every export."""
        require(self.engine.access, request, "adjudicate" if adjudicated else "rate")
        ann = self.engine.rate(session_id, node_id, rating, annotator=who(annotator, request), unsure=unsure,
                               note=note, action_id=action_id, expected_version=expected_version,
                               adjudicated=adjudicated)
        return ann.to_json()

    def rate_children(self, session_id: int, node_id: str, ratings: dict[str, int], annotator: str = "",
                      request: gr.Request = None) -> int:
        """Rate several children of a node at once: `{child id: rating}`; returns how many were saved."""
        require(self.engine.access, request, "rate")
        if not isinstance(ratings, dict):
            raise gr.Error("ratings must be an object {child id: -1 | 0 | 1}")
        rows = [[child, value] for child, value in ratings.items()]
        return self.engine.rate_children(session_id, node_id, rows, annotator=who(annotator, request))

    def edit_step(self, session_id: int, node_id: str, text: str, annotator: str = "",
                  request: gr.Request = None) -> str:
        """Save an edited version of a step as its sibling (origin `edited`, re-scored); returns the new id."""
        require(self.engine.access, request, "edit")
        return self.engine.edit(session_id, node_id, text, annotator=who(annotator, request))

    def human_step(self, session_id: int, node_id: str, text: str, factor: str = "", annotator: str = "",
                   request: gr.Request = None) -> str:
        """Add a step written by a person under a node (origin `human`, scored); returns the new id. `factor` is one
        of the session's thought factors; left out, the one most of the node's children have (else `compute`)."""
        require(self.engine.access, request, "human_step")
        return self.engine.add_human_step(session_id, node_id, text, factor or None,
                                          annotator=who(annotator, request))

    def expand(self, session_id: int, node_id: str, factor: str, n: int = 3, annotator: str = "",
               request: gr.Request = None) -> list[str]:
        """Sample n children under a node with one thought factor; returns their ids."""
        require(self.engine.access, request, "expand")
        return self.engine.expand(session_id, node_id, factor, n, annotator=who(annotator, request))

    def resume(self, session_id: int, node_id: str, budget: int = 16, request: gr.Request = None) -> dict:
        """Continue the session's search from a node with a new budget; returns node count and answer."""
        require(self.engine.access, request, "search")
        last = _last(self.engine.resume(session_id, node_id, budget))
        r = last.result
        return {"session_id": last.session_id, "nodes": len(last.tree), "answer": r.answer if r else None,
                "status": last.status}

    def prune(self, session_id: int, node_id: str, annotator: str = "", action_id: str = "",
              expected_version: int | None = None, request: gr.Request = None) -> dict:
        """Prune a node's subtree (recorded, undoable); `action_id` and `expected_version` as in `rate`."""
        require(self.engine.access, request, "prune")
        st = self.engine.prune(session_id, node_id, annotator=who(annotator, request), action_id=action_id,
                               expected_version=expected_version)
        return {"session_id": st.session_id, "node_id": st.node_id, "pruned": st.pruned, "version": st.version}

    def undo(self, session_id: int, annotator: str = "", request: gr.Request = None) -> dict:
        """Undo the annotator's latest action in a session; `undid` is null when there was none."""
        require(self.engine.access, request, "undo")
        done = self.engine.undo(session_id, annotator=who(annotator, request))
        return {"undid": None if done is None else {"kind": done.kind, "node_id": done.node_id,
                                                    "action_id": done.action_id,
                                                    "removed": done.payload.get("removed", [])}}

    def summarize(self, session_id: int, node_id: str, request: gr.Request = None) -> str:
        """A short summary of the root-to-node trace, written by the generator."""
        require(self.engine.access, request, "summarize")
        return self.engine.summarize(session_id, node_id)

    def sessions(self, query: str = "", include_deleted: bool = False) -> list[dict]:
        """Sessions, newest first, filtered by name or problem text."""
        return [dict(zip(SESSION_KEYS, row, strict=True)) for row in self.engine.sessions(query, include_deleted)]

    def rename_session(self, session_id: int, name: str, annotator: str = "", request: gr.Request = None) -> dict:
        """Rename a session."""
        require(self.engine.access, request, "rename")
        return _info(self.engine.rename(session_id, name, annotator=who(annotator, request)))

    def delete_session(self, session_id: int, annotator: str = "", request: gr.Request = None) -> dict:
        """Delete a session (recoverable with restore_session); admins only where the app has roles."""
        require(self.engine.access, request, "delete")
        return _info(self.engine.delete(session_id, annotator=who(annotator, request)))

    def restore_session(self, session_id: int, annotator: str = "", request: gr.Request = None) -> dict:
        """Restore a deleted session; admins only where the app has roles."""
        require(self.engine.access, request, "restore")
        return _info(self.engine.restore(session_id, annotator=who(annotator, request)))

    def analytics(self, session_id: int) -> list[dict]:
        """Nodes, visits and mean value per (thought factor, depth) of a session's live steps."""
        stats = factor_depth_stats(self.engine.tree(session_id))
        return [{"factor": f, "depth": d, **{k: (None if x != x else x) for k, x in s.items()}}
                for (f, d), s in sorted(stats.items())]

    def export(self, fmt: str = "trl", labels: str = "human", neutral: str = "drop", soft: bool = False,
               all_paths: bool = False, session_ids: list[int] | None = None, preview: int = 5,
               combine: str = "latest", annotators: list[str] | None = None) -> dict:
        """Export labeled traces; returns the manifest (with every stored rating accounted for) and the first
        `preview` records (0-50). `combine`: latest, majority, unanimous or each; `annotators`: only theirs."""
        if not isinstance(preview, int) or not 0 <= preview <= 50:
            raise gr.Error("preview must be an integer between 0 and 50")
        _, manifest, first = self.engine.export(fmt, labels=labels, neutral=neutral, soft=soft, all_paths=all_paths,
                                                session_ids=session_ids, preview=preview, combine=combine,
                                                annotators=annotators)
        return {"manifest": manifest, "records": first}

    def names(self) -> Iterable[str]:
        return ("search", "stop", "tree", "trace", "rate", "rate_children", "edit_step", "human_step", "expand",
                "resume", "prune", "undo", "summarize", "sessions", "rename_session", "delete_session",
                "restore_session", "analytics", "export")


def with_search_signature(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn(problem, annotator, request, **settings)` as an endpoint whose signature lists every search setting
    (what gradio_client shows and binds positional arguments by): problem, the settings, annotator, request."""
    params = [inspect.Parameter("problem", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str),
              *setting_parameters(),
              inspect.Parameter("annotator", inspect.Parameter.POSITIONAL_OR_KEYWORD, default="", annotation=str),
              inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                                annotation=gr.Request)]
    signature = inspect.Signature(params, return_annotation=dict)

    def endpoint(*args: Any, **kwargs: Any) -> dict:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
        return fn(values.pop("problem"), values.pop("annotator"), values.pop("request"), **values)

    endpoint.__signature__ = signature  # type: ignore[attr-defined]
    endpoint.__annotations__ = {p.name: p.annotation for p in params} | {"return": dict}
    endpoint.__doc__ = fn.__doc__
    endpoint.__name__ = "search"
    return endpoint


def name_missing_inputs(demo: gr.Blocks) -> gr.Blocks:
    """A call with fewer inputs than its endpoint takes (a raw REST call: gradio_client fills in the defaults itself)
    is refused in one line naming what is missing; Gradio's own refusal is 9 lines that a served app hides, so the
    caller read `{"error": null}`."""
    check = demo.validate_inputs

    def validate(block_fn: Any, inputs: list[Any]) -> None:
        if len(inputs) < len(block_fn.inputs):
            names = _input_names(block_fn.fn) or [f"#{i + 1}" for i in range(len(block_fn.inputs))]
            missing = names[len(inputs):len(block_fn.inputs)]
            shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
            raise gr.Error(f"{block_fn.api_name or block_fn.name} takes {len(block_fn.inputs)} inputs in order, got "
                           f"{len(inputs)}: missing {shown} (give null for a setting to take its default)",
                           print_exception=False)
        check(block_fn, inputs)

    demo.validate_inputs = validate  # type: ignore[method-assign]
    return demo


def _input_names(fn: Any) -> list[str]:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.name != "request" and p.kind is not inspect.Parameter.VAR_KEYWORD]


def register(engine: Explorer) -> None:
    """Declare the endpoints inside the current gr.Blocks."""
    api = Endpoints(engine)
    for name in api.names():
        fn = getattr(api, name)
        if name == "search":
            fn = with_search_signature(fn)
        slot = "search" if name in SEARCH_CALLS else "model" if name in MODEL_CALLS else None
        gr.api(guarded(fn), api_name=name, concurrency_id=slot, concurrency_limit=1 if slot else None)
    register_loop(engine)  # automatic labels, review queue, calibration, agreement, active PRM (ui/api_review.py)
    register_work(engine)  # assigned work: assign, guideline, my queue, skip and flag (ui/api_work.py)


def _info(info: Any) -> dict:
    return {"id": info.id, "name": info.name, "deleted": info.deleted, "version": info.version}


def _last(updates: Iterable[RunUpdate]) -> RunUpdate:
    """Drain a search's updates and return the final one."""
    final = None
    for final in updates:  # noqa: B007 - only the last update matters
        pass
    assert final is not None, "a search always reports at least its end"
    return final
