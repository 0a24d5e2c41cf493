"""Review queue page: steps where the PRM score, the rollout value and human ratings disagree come first; one key
rates the current step and brings up the next. Beside it, the PRM's calibration and the annotators' agreement.
"Only my assigned steps" narrows the queue, in its usual order, to the steps an admin assigned me that I have not yet
rated, skipped or flagged; "My assigned work" below it says "N of M done", shows the guideline, and skips or flags.

The ordering, bins and kappas are pure functions (`ui/services/review.py`); ratings go through `Explorer.rate`, the
inspector's path (storage, versions, undo). Model text reaches the page only through Textboxes and plain-string
Dataframe cells; the chart's hover text is escaped (`ui/calibration.py`).
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from storage.assignments import FLAG_REASONS, Work

from .. import validate as v
from ..api_work import assigned_queue, queue
from ..calibration import calibration_figure
from ..service import Explorer
from ..services import review as rv
from ..wiring import Newest, Shared, guarded, require, who

QUEUE_TYPES = ["number", "number", "str", "str", "str", "str", "str", "str", "str"]
ANY = "(any)"
NOTHING_ASSIGNED = "nothing is assigned to you: uncheck 'only my assigned steps' for the whole queue"


@dataclass
class Filters:
    """The filter controls, in the order the handlers take them."""

    session: gr.Textbox
    problem_set: gr.Dropdown
    annotator: gr.Dropdown
    skip_mine: gr.Checkbox
    adjudicate: gr.Checkbox
    assigned_only: gr.Checkbox

    def inputs(self) -> list:
        return [self.session, self.problem_set, self.annotator, self.skip_mine, self.adjudicate,
                self.assigned_only]


@dataclass(frozen=True)
class Chosen:
    """The filter controls' values, in `Filters.inputs` order."""

    session: str
    problem_set: str
    annotator: str
    skip_mine: bool
    adjudicate: bool
    assigned_only: bool = False


@dataclass
class Assigned:
    """My assigned work's controls (the accordion below the queue)."""

    box: gr.Accordion
    progress: gr.Textbox
    reason: gr.Dropdown
    skip: gr.Button
    flag: gr.Button
    guideline: gr.Textbox


def queue_filter(c: Chosen, user: str) -> rv.QueueFilter:
    """The queue's filter from the controls; adjudicating queues only the steps where annotators disagree."""
    sid = v.session_id(c.session) if (c.session or "").strip() else None
    return rv.QueueFilter(sid, "" if c.problem_set in (None, ANY) else str(c.problem_set),
                          "" if c.annotator in (None, ANY) else str(c.annotator), user if c.skip_mine else "",
                          disputed=v.flag(bool(c.adjudicate), "adjudicate"))


def detail(engine: Explorer, item: rv.ReviewItem | None, empty: str = "") -> tuple[str, str]:
    """The current step's one-line summary and its root-to-node trace (plain text for Textboxes); `empty` says why
    there is none."""
    if item is None:
        return empty or "the queue is empty: nothing left that matches the filters", ""
    tree = engine.tree(item.session_id)
    lines = []
    for i, nid in enumerate(tree.path(item.node_id)[1:], 1):
        a = tree.node(nid)
        mark = "▶ " if nid == item.node_id else "  "
        lines.append(f"{mark}{i}. [{a['factor'] or '-'}] {a['text'] or ''}")
    human = rv.human_text(item) or "none"
    rollout = f"{item.rollout:.2f} ({item.successes}/{item.rollouts})" if item.rollout is not None else "-"
    prm = "-" if item.prm is None else f"{item.prm:.2f}"
    info = (f"session {item.session_id} · node {item.node_id} · PRM {prm} · rollout {rollout} · human {human} · "
            f"disagreement {item.disagreement:.2f} · {item.problem_set}")
    return info, f"Problem: {tree.problem.text}\n" + "\n".join(lines)


def progress_line(mine: dict) -> str:
    """The accordion's "N of M done" over my assigned sessions."""
    return f"{mine['line']} in {len(mine['sessions'])} sessions" if mine["sessions"] else "nothing is assigned to you"


def queue_lines(engine: Explorer, c: Chosen, mine: dict, queued: int, items: int) -> tuple[str, str]:
    """The queue's one line and, for an empty queue, why it is empty."""
    prm = f"scores by the active PRM {engine.registry.active_prm_dir or '(the loaded one)'}"
    if not c.assigned_only:
        return f"{prm} · {queued} steps queued of {items}", ""
    if not mine["sessions"]:
        return NOTHING_ASSIGNED, NOTHING_ASSIGNED
    empty = (f"all your assigned steps are done ({mine['line']})" if mine["done"] == mine["total"] else
             "none of your assigned steps still to do matches the filters")
    return f"my assigned steps: {mine['line']}, {queued} to do here, in the queue's order · {prm}", empty


def queue_view(engine: Explorer, work: Work, c: Chosen, user: str, prefer=None, skip=None):
    """Everything the review page shows, from one read of the store; `prefer` keeps the current step when it is
    still queued, `skip` moves past the step just rated, skipped or flagged. With `assigned_only` the queue holds
    only my assigned steps still to do (ui/api_work.py's "done"), read from my assigned sessions."""
    flt = queue_filter(c, user)
    if c.assigned_only:
        flt, sources, mine = assigned_queue(engine, work, user, flt)
    else:
        sources, mine = engine.review.sources(flt.session_id), queue(engine, work, user)
    items = rv.review_items(sources)
    ordered = rv.review_queue(items, flt)
    keys = [[it.session_id, it.node_id] for it in ordered]
    pick = next((it for it in ordered if [it.session_id, it.node_id] == prefer), None)
    pick = pick or next((it for it in ordered if [it.session_id, it.node_id] != skip), None)
    line, empty = queue_lines(engine, c, mine, len(ordered), len(items))
    info, text = detail(engine, pick, empty)
    sets = sorted({it.problem_set for it in items})
    names = sorted({a for it in items for a in it.ratings})
    pairs = rv.calibration_pairs(items)
    fig = calibration_figure({k: rv.calibration_bins(p) for k, p in pairs.items()},
                             engine.registry.active_prm_dir)
    ratings = {(it.session_id, it.node_id): it.ratings for it in items if len(it.ratings) >= 2}
    return (line,
            gr.Dropdown(choices=[ANY, *sets], value=c.problem_set if c.problem_set in sets else ANY),
            gr.Dropdown(choices=[ANY, *names], value=c.annotator if c.annotator in names else ANY),
            info, text, rv.queue_rows(ordered), keys, None if pick is None else [pick.session_id, pick.node_id],
            fig, rv.agreement(ratings), progress_line(mine))


def build_page(engine: Explorer, shared: Shared, tab: gr.Tab | None = None) -> None:
    prm_line = gr.Textbox(label="queue", elem_id="review-prm", interactive=False, lines=1)
    with gr.Row():
        f = Filters(
            gr.Textbox("", label="session id (blank: all)", elem_id="review-session", max_lines=1, scale=1),
            gr.Dropdown([ANY], value=ANY, label="problem set", elem_id="review-set", scale=2),
            gr.Dropdown([ANY], value=ANY, label="rated by", elem_id="review-annotator", scale=1),
            gr.Checkbox(True, label="hide steps I rated", elem_id="review-skip-mine", scale=1),
            gr.Checkbox(False, label="adjudicate: only steps where annotators disagree; my rating settles them",
                        elem_id="review-adjudicate", scale=2),
            gr.Checkbox(False, label="only my assigned steps", info="not yet rated, skipped or flagged by me",
                        elem_id="review-assigned-only", scale=1),
        )
        refresh = gr.Button("Refresh queue", elem_id="review-refresh", size="sm", scale=1)
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            current_info = gr.Textbox(label="current step", elem_id="review-current", interactive=False, lines=1)
            trace = gr.Textbox(label="trace (▶ the step to rate)", elem_id="review-trace", interactive=False, lines=7)
            with gr.Row():
                bad = gr.Button("−1 bad", elem_id="review-bad", size="sm")
                neutral = gr.Button("0 neutral", elem_id="review-neutral", size="sm")
                good = gr.Button("+1 good", elem_id="review-good", size="sm")
            gr.Markdown("Keys: `g` good · `n` neutral · `b` bad — rate the current step and move to the next",
                        elem_classes="shortcut-hint")
            status = gr.Textbox(label="review status", elem_id="review-status", interactive=False, lines=1)
        with gr.Column(scale=2):
            chart = gr.Plot(show_label=False, elem_id="calibration-plot")
            kappa = gr.Dataframe(headers=rv.AGREEMENT_HEADERS, datatype=["str", "str", "number", "number"],
                                 interactive=False, label="agreement between annotators (nodes both/all rated)",
                                 elem_id="agreement-table")
    table = gr.Dataframe(headers=rv.QUEUE_HEADERS, datatype=QUEUE_TYPES, interactive=False, wrap=True,
                         label="review queue (most disagreement first; click a row to review it)",
                         elem_id="review-table", max_height=420)
    mine = _assigned_controls()
    ids = gr.State([])  # [[session, node], ...] of the table's rows, ids only
    current = gr.State(None)  # [session, node]
    work = Work(engine.store)

    outputs = [prm_line, f.problem_set, f.annotator, current_info, trace, table, ids, current, chart, kappa,
               mine.progress, status]
    newest = Newest(len(outputs))  # a slow queue answer overtaken by a newer one of the same page is not drawn

    @guarded
    @newest
    def load(request: gr.Request, annotator, *filters):
        return (*queue_view(engine, work, Chosen(*filters), who(annotator, request)), "")

    def rater(rating: int):
        @guarded
        @newest
        def rate(request: gr.Request, annotator, cur, *filters):
            if not cur:
                raise gr.Error("no step to rate: the queue is empty (refresh, or change the filters)")
            user, chosen = who(annotator, request), Chosen(*filters)
            require(engine.access, request, "adjudicate" if chosen.adjudicate else "rate")
            engine.rate(cur[0], cur[1], rating, annotator=user, adjudicated=chosen.adjudicate)
            out = queue_view(engine, work, chosen, user, skip=list(cur))
            how = "settled" if chosen.adjudicate else "rated"
            return (*out, f"{how} session {cur[0]} node {cur[1]} {rating:+d} as {user}{moved(out)}")
        return rate

    @guarded
    @newest
    def choose(evt: gr.SelectData, request: gr.Request, annotator, keys, *filters):
        row = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
        if not isinstance(row, int) or not 0 <= row < len(keys):
            return (gr.skip(),) * len(outputs)
        return (*queue_view(engine, work, Chosen(*filters), who(annotator, request), prefer=list(keys[row])), "")

    inputs = [shared.annotator, *f.inputs()]
    refresh.click(load, inputs, outputs, api_visibility="undocumented")
    for button, rating in ((bad, -1), (neutral, 0), (good, 1)):
        button.click(rater(rating), [shared.annotator, current, *f.inputs()], outputs, api_visibility="undocumented")
    table.select(choose, [shared.annotator, ids, *f.inputs()], outputs, api_visibility="undocumented")
    for control in (f.problem_set, f.annotator, f.skip_mine, f.adjudicate, f.assigned_only):
        control.input(load, inputs, outputs, api_visibility="undocumented")
    # skip and flag sit in My assigned work: open it when the queue turns to my assigned steps
    f.assigned_only.input(lambda on: gr.Accordion(open=True) if on else gr.skip(), f.assigned_only, mine.box,
                          api_visibility="undocumented")
    f.session.submit(load, inputs, outputs, api_visibility="undocumented")
    if tab is not None:  # the queue loads when the tab is opened, not for every visitor of the app
        tab.select(load, inputs, outputs, api_visibility="undocumented")
    _wire_assigned(engine, work, mine, [shared.annotator, current, mine.reason, *f.inputs()], outputs, tab,
                   newest)


def moved(out: tuple) -> str:
    """The end of a status line after a rating, skip or flag: the step that came up next, if any."""
    nxt = out[7]
    return f"; next: session {nxt[0]} node {nxt[1]}" if nxt else "; the queue is empty"


def _assigned_controls() -> Assigned:
    """My assigned work (ui/api_work.py): "N of M done" over the steps an admin assigned me, the guideline (plain
    text), and skip / flag of the current step, which then counts as done."""
    with gr.Accordion("My assigned work", open=False, elem_id="assigned-work") as box:
        with gr.Row():
            progress = gr.Textbox(label="assigned to me", elem_id="assigned-progress", interactive=False, lines=1,
                                  scale=2)
            reason = gr.Dropdown(list(FLAG_REASONS), value=FLAG_REASONS[0], label="flag reason",
                                 elem_id="flag-reason", scale=1)
            skip = gr.Button("Skip this step", elem_id="review-skip", size="sm", scale=1)
            flag = gr.Button("Flag this step", elem_id="review-flag", size="sm", scale=1)
        guideline = gr.Textbox(label="guideline", elem_id="guideline", interactive=False, lines=4)
    return Assigned(box, progress, reason, skip, flag, guideline)


def _wire_assigned(engine: Explorer, work: Work, mine: Assigned, inputs: list, outputs: list,
                   tab: gr.Tab | None, newest: Newest) -> None:
    """Skip or flag the current step (it then counts as done, and the queue moves past it), and the guideline."""

    def marker(kind: str):
        @guarded
        @newest
        def mark(request: gr.Request, annotator, cur, why, *filters):
            require(engine.access, request, "rate")
            if not cur:
                raise gr.Error("no step to mark: the queue is empty")
            user = who(annotator, request)
            work.mark(int(cur[0]), str(cur[1]), user, kind, why if kind == "flag" else "")
            out = queue_view(engine, work, Chosen(*filters), user, skip=list(cur))
            done = "skipped" if kind == "skip" else f"flagged ({why})"
            return (*out, f"{done} session {cur[0]} node {cur[1]} as {user}{moved(out)}")
        return mark

    def guideline():
        text, author = work.guideline()
        return f"{text}\n— {author}" if text else "no guideline written yet"

    mine.skip.click(marker("skip"), inputs, outputs, api_visibility="undocumented")
    mine.flag.click(marker("flag"), inputs, outputs, api_visibility="undocumented")
    if tab is not None:
        tab.select(guarded(guideline), None, mine.guideline, api_visibility="undocumented")
