"""The `import` and `export` subcommands: labeled traces and problem sets in and out of the database."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reasoning.limits import MAX_DB_INT
from storage.export import FORMATS, manifest_path, write_export
from storage.importers import IMPORTERS, import_file, import_line
from storage.labels import COMBINES, NEUTRAL, SOURCES, LabelOptions, ratings_line
from storage.records import StorageError
from storage.store import Store

from .parser import bounded_int


def _add_db(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", metavar="URL", help="database URL (default: $DATABASE_URL, else SQLite in the data folder)")


def add_import_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=sorted(IMPORTERS), help="the file's record format (default: detected from "
                   "its records' fields, and said)")
    p.add_argument("file", metavar="FILE", help="JSONL file (or .parquet) to import; all of it or nothing is stored, "
                   "and traces imported before are skipped, so importing a file again adds nothing")
    _add_db(p)


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", required=True, choices=[*FORMATS, "html"],
                   help="record format to write; html: one self-contained page of one --session's tree to share")
    p.add_argument("--out", required=True, metavar="FILE", help="output file; a manifest is written beside it")
    _add_db(p)
    p.add_argument("--labels", choices=SOURCES, default="human", help="human ratings, auto labels, or both "
                   "(human first)")
    p.add_argument("--soft", action="store_true", help="soft values (TRL: in an extra 'soft_labels' field)")
    p.add_argument("--neutral", choices=list(NEUTRAL), default="drop", help="what a neutral (0) rating becomes")
    p.add_argument("--all-paths", action="store_true", help="also paths with unlabeled steps, where the format "
                   "can carry them")
    p.add_argument("--combine", choices=COMBINES, default="latest",
                   help="how several annotators' ratings of one step become its label: the latest sure one, the "
                   "majority (none on a tie), only unanimous ones, or each annotator's as their own records; an "
                   "adjudicator's decision settles a step in all four")
    p.add_argument("--annotators", nargs="+", metavar="NAME", default=(),
                   help="only these annotators' ratings (default: everyone's)")
    p.add_argument("--session", type=bounded_int(1, MAX_DB_INT), nargs="+", metavar="ID",
                   help="only these sessions (default: all)")
    p.add_argument("--parquet", action="store_true", help="write Parquet instead of JSONL")


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def run_import(args: argparse.Namespace) -> int:
    try:
        with Store(args.db) as store:
            report = import_file(store, args.file, args.format)
    except (StorageError, ValueError) as exc:
        return _fail(f"{exc} (nothing was imported)")
    print(f"{args.file}: {import_line(report)}")
    return 0


def run_export_html(args: argparse.Namespace) -> int:
    """`export --format html --session ID --out tree.html`: the tree of one session as a page that works offline."""
    from ui.share import write_share  # only here: the page is built with the UI's figure code (plotly)

    if not args.session or len(args.session) != 1:
        return _fail("--format html writes the tree of one session: give exactly one --session ID")
    try:
        with Store(args.db, create=False) as store:  # reading only: a mistyped --db must not make a database
            out = write_share(store, args.session[0], args.out)
    except (StorageError, LookupError, ValueError, OSError) as exc:
        return _fail(str(exc).strip("'\""))
    print(f"wrote session {args.session[0]}'s tree to {out} (self-contained: open it in any browser, offline)")
    return 0


def run_export(args: argparse.Namespace) -> int:
    if args.format == "html":
        return run_export_html(args)
    options = LabelOptions(args.labels, args.soft, args.neutral, args.all_paths, args.combine,
                           tuple(args.annotators))
    file_format = "parquet" if args.parquet else None
    try:
        with Store(args.db, create=False) as store:  # reading only: a mistyped --db must not make a database
            trees = store.labeled_trees(args.session)
        manifest = write_export(trees, args.format, args.out, options, file_format=file_format)
    except (StorageError, ValueError, OSError) as exc:
        return _fail(str(exc))
    c = manifest["counts"]
    n = c["records"]
    print(f"wrote {n} {args.format} records from {len(trees)} sessions ({c['steps']} steps: {c['good']} good, "
          f"{c['neutral']} neutral, {c['bad']} bad) to {args.out} (manifest: {manifest_path(Path(args.out))})")
    print(ratings_line(manifest["ratings"]))
    if n == 0:
        print("warning: no records: nothing is labeled under these options", file=sys.stderr)
    return 0
