"""Inspector section for automatic labels, and the model picker's "use this PRM" switch.

"Estimate by rollouts" runs N continuations from the selected node; "Find the first error" bisects the root-to-node
path by rollouts (OmegaPRM); "Label the whole session" and "Label the selected subtree" estimate every live step
(`python app.py label` from the page). Each runs as a job (`ui/services/autolabel.py`) that the page polls for
progress and the Stop button ends between rollout rounds; the result line shows the rollout value beside the PRM
score, and the trace shows the new labels when the job ends. Each piece is one call from the page that owns the
surrounding layout (`inspector.build_page`, `explore._controls`).
"""
from __future__ import annotations

import gradio as gr

from ..service import Explorer
from ..services import autolabel
from ..wiring import Shared, guarded, require

POLL_SECONDS = 0.3


def job_name(job: autolabel.Job) -> str:
    if job.kind == "label":
        where = "" if job.node_id == "0" else f" under node {job.node_id}"
        return f"rollout labels of the steps{where} of session {job.session_id}"
    what = "rollout estimate" if job.kind == "estimate" else "first-error search"
    return f"{what} on node {job.node_id} of session {job.session_id}"


def progress_line(job: autolabel.Job, stopping: bool = False) -> str:
    unit = "rounds" if job.kind == "first_error" else "nodes"
    done = f"{job.done}/{job.total} {unit}" if job.total else "starting"
    then = "stopping after the current round…" if stopping else "(Stop ends it after the current round)"
    return f"{job_name(job)}: {done}… {then}"


def run_job(engine: Explorer, kind: str, *, whole_session: bool = False):
    """A generator handler: start the job, yield progress lines while it runs, then its result (or its error).
    `whole_session`: the job's node is the root, whatever is selected."""

    @guarded
    def run(request: gr.Request, session_id, node_id, rollouts, relabel=False):
        require(engine.access, request, "autolabel")
        if not whole_session and not node_id:
            raise ValueError("no node is selected: click a node on the tree first")
        node = "0" if whole_session else node_id
        job = engine.autojobs.start(kind, autolabel.request(session_id, node, rollouts, relabel=relabel))
        # at once, then while it runs: on a quiet machine a small job ends before the first poll, and the box would
        # otherwise go from the last result straight to the new one with no sign that anything ran
        yield progress_line(job, engine.autojobs.stopping(job.session_id))
        while not job.finished.wait(POLL_SECONDS):
            yield progress_line(job, engine.autojobs.stopping(job.session_id))
        if job.error is not None:
            raise job.error
        assert job.result is not None
        yield autolabel.summary(job.result)

    return run


def build_section(engine: Explorer, shared: Shared, trace: gr.Dataframe | None = None) -> None:
    """Automatic labels for the selected node, its subtree or the whole session: rollouts, first error, progress,
    Stop and the result line; `trace` (the inspector's) is read again when a job ends, so its auto column shows
    what the job stored."""
    with gr.Accordion("Automatic labels (rollouts to the gold answer)", open=False, elem_id="autolabel"):
        with gr.Row():
            rollouts = gr.Number(8, label="rollouts", precision=0, minimum=1, maximum=autolabel.MAX_ROLLOUTS,
                                 elem_id="autolabel-rollouts")
            estimate = gr.Button("Estimate by rollouts", elem_id="estimate-rollouts", size="sm")
            first = gr.Button("Find the first error on the path", elem_id="first-error", size="sm")
            stop = gr.Button("Stop", elem_id="stop-autolabel", variant="stop", size="sm")
        with gr.Row():
            whole = gr.Button("Label the whole session by rollouts", elem_id="label-session", size="sm")
            subtree = gr.Button("Label the selected subtree", elem_id="label-subtree", size="sm")
            relabel = gr.Checkbox(False, label="label again steps labeled before", elem_id="autolabel-relabel")
        result = gr.Textbox(label="rollout value beside the PRM score", elem_id="autolabel-result",
                            interactive=False, lines=2)
    args = [shared.session, shared.node, rollouts]
    jobs = [(estimate, run_job(engine, "estimate"), args, "model"),
            (first, run_job(engine, "first_error"), args, "model"),
            # many nodes take minutes: their own slot, so that edits and expansions do not wait behind them
            (whole, run_job(engine, "label", whole_session=True), [*args, relabel], "labeling"),
            (subtree, run_job(engine, "label"), [*args, relabel], "labeling")]
    for button, fn, inputs, slot in jobs:
        event = button.click(fn, inputs, [result], api_visibility="undocumented", concurrency_id=slot)
        if trace is not None:  # after Stop too: the rounds finished before it are stored
            event.then(reread_trace(engine), [shared.session, shared.node], [trace], api_visibility="undocumented")

    @guarded
    def do_stop(request: gr.Request, session_id):
        require(engine.access, request, "autolabel")
        # the running job's own progress line says "stopping" (a second writer to its box would race with it)
        if not engine.autojobs.stop(session_id):
            gr.Info("no automatic labeling is running on this session")

    stop.click(do_stop, [shared.session], [], api_visibility="undocumented", queue=False)


def reread_trace(engine: Explorer):
    @guarded
    def reread(session_id, node_id):
        if not session_id or not node_id:
            return gr.skip()
        return engine.inspect(session_id, node_id).trace

    return reread


def active_prm_text(engine: Explorer) -> str:
    return f"active PRM: {engine.registry.active_prm_dir or '(the loaded one)'}"


def prm_switch(engine: Explorer, prm_dir: gr.Textbox) -> gr.Textbox:
    """Under the model picker's PRM box: a button making that PRM the active one (new searches, the review queue
    and automatic labels use it, no restart) and a line saying which PRM is active."""
    use = gr.Button("Use this PRM from now on", elem_id="use-prm", size="sm")
    line = gr.Textbox(active_prm_text(engine), show_label=False, elem_id="active-prm", interactive=False, lines=1)

    @guarded
    def switch(request: gr.Request, path):
        require(engine.access, request, "models")  # it changes what every user's searches are scored by
        engine.use_prm(path)
        return active_prm_text(engine)

    use.click(switch, [prm_dir], [line], api_visibility="undocumented", concurrency_id="model")
    return line
