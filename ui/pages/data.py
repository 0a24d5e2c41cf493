"""Export and import page: labeled traces out (TRL, PRM800K, ...) with a preview and a download; files in."""
from __future__ import annotations

import json

import gradio as gr

from storage.labels import COMBINES, ratings_line

from ..service import Explorer
from ..wiring import USER_ERRORS, Shared, guarded, require

EXPORT_FORMATS = ["trl", "prm800k", "math-shepherd", "processbench", "pairs", "sft"]
IMPORT_FORMATS = ["prm800k", "trl", "processbench", "solutions", "problems"]
DETECT = ("detect from the file", "auto")  # the import format's default: read from the records' fields


def build_page(engine: Explorer, shared: Shared) -> None:
    _export_section(engine, shared)
    _import_section(engine, shared)


def export_line(manifest: dict) -> str:
    """The export summary: records, then the steps the file holds and the labels they carry, for every format."""
    c = manifest["counts"]
    sessions = f"{c['sessions']} session{'s' * (c['sessions'] != 1)}"
    return (f"{c['records']} {manifest['format']} records from {sessions} · {c['steps']} steps: {c['good']} good, "
            f"{c['neutral']} neutral, {c['bad']} bad · sha256 {manifest['sha256'][:16]}…\n"
            + ratings_line(manifest["ratings"]))


def _export_section(engine: Explorer, shared: Shared) -> None:
    gr.Markdown("### Export labeled traces")
    with gr.Row():
        fmt = gr.Dropdown(EXPORT_FORMATS, value="trl", label="format", elem_id="export-format")
        labels = gr.Dropdown(["human", "auto", "both"], value="human", label="labels", elem_id="export-labels")
        neutral = gr.Dropdown(["drop", "good", "bad"], value="drop", label="neutral (0) ratings count as",
                              elem_id="export-neutral")
        file_format = gr.Dropdown(["jsonl", "parquet"], value="jsonl", label="file", elem_id="export-file-format")
    with gr.Row():
        scope = gr.Radio(["open session", "all sessions", "these ids"], value="open session", label="sessions",
                         elem_id="export-scope")
        ids = gr.Textbox(label="session ids (e.g. 3, 5)", elem_id="export-ids")
        soft = gr.Checkbox(label="soft labels in an extra field", elem_id="export-soft")
        all_paths = gr.Checkbox(label="include paths with unlabeled steps", elem_id="export-all-paths")
    with gr.Row():
        combine = gr.Dropdown(list(COMBINES), value="latest", label="annotators' ratings combine as",
                              info="latest sure rating · majority (a tie: none) · unanimous only · each annotator's "
                              "own records; an adjudicator's decision settles a step in all four",
                              elem_id="export-combine")
        annotators = gr.Textbox(label="only these annotators (e.g. alice, bob; blank: everyone)",
                                elem_id="export-annotators")
    export = gr.Button("Export", variant="primary", elem_id="export-button")
    summary = gr.Textbox(label="manifest", interactive=False, lines=3, elem_id="export-summary")
    preview = gr.Code(label="first records", language="json", interactive=False, elem_id="export-preview")
    download = gr.File(label="download", interactive=False, elem_id="export-file")

    @guarded
    def do_export(fmt_, labels_, neutral_, file_format_, scope_, ids_, soft_, all_paths_, combine_, annotators_,
                  session_id):
        if scope_ == "open session":
            if not session_id:
                raise gr.Error("no session is open: pick 'all sessions' or open one first")
            chosen = [session_id]
        else:
            chosen = None if scope_ == "all sessions" else ids_
            if scope_ == "these ids" and not (ids_ or "").strip():
                raise gr.Error("type the session ids to export")
        path, manifest, first = engine.export(fmt_, labels=labels_, neutral=neutral_, soft=soft_,
                                              all_paths=all_paths_, session_ids=chosen, file_format=file_format_,
                                              combine=combine_, annotators=annotators_)
        return export_line(manifest), json.dumps(first, indent=2, ensure_ascii=False), str(path)

    export.click(do_export, [fmt, labels, neutral, file_format, scope, ids, soft, all_paths, combine, annotators,
                             shared.session],
                 [summary, preview, download], api_visibility="undocumented")


def _import_section(engine: Explorer, shared: Shared) -> None:
    gr.Markdown("### Import")
    with gr.Row():
        upload = gr.File(label="file (JSONL or Parquet)", file_types=[".jsonl", ".json", ".parquet"],
                         elem_id="import-file")
        in_fmt = gr.Dropdown([DETECT, *IMPORT_FORMATS], value=DETECT[1], label="format", elem_id="import-format")
    with gr.Row():
        check = gr.Button("Validate", elem_id="import-validate")
        run = gr.Button("Import", variant="primary", elem_id="import-button")
    report = gr.Textbox(label="validation report", interactive=False, lines=4, elem_id="import-report")

    def do_check(path, fmt_):
        try:
            found = engine.validate_import(path, fmt_)
        except USER_ERRORS as exc:  # the report says what is wrong; nothing was stored
            return f"not valid, nothing imported: {exc}"
        return (f"detected format {found['format']}; " if found["detected"] else "") + "valid: " + json.dumps(found)

    def do_import(request: gr.Request, path, fmt_):
        try:
            require(engine.access, request, "import")
            report = engine.import_file(path, fmt_)
        except USER_ERRORS as exc:  # the report says what is wrong; nothing was stored
            return f"not valid, nothing imported: {exc}"
        ids = report["sessions"]
        return report["line"] + (f" (session ids {ids[0]}–{ids[-1]})" if ids else "")

    check.click(do_check, [upload, in_fmt], [report], api_visibility="undocumented")
    imported = run.click(do_import, [upload, in_fmt], [report], api_visibility="undocumented")
    if shared.problem_pick is not None:  # the Explore page lists the new problems at once, not after a restart
        imported.then(lambda: problem_pick(engine), None, [shared.problem_pick], api_visibility="undocumented")


def problem_pick(engine: Explorer) -> gr.Dropdown:
    """The Explore page's problem-set picker with every problem loaded or stored now."""
    choices = engine.problem_choices()
    return gr.Dropdown(choices=choices, visible=bool(choices))
