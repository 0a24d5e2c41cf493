"""`serve`: start the web UI with the chosen models and database."""
from __future__ import annotations

import argparse
import logging

from .common import Settings, add_model_arguments, load_catalog_arg, load_models


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 inside a container)")
    p.add_argument("--port", type=int, default=7860, help="port to listen on")
    p.add_argument("--db", metavar="URL", help="database URL (default: $DATABASE_URL, else SQLite in the data folder)")
    p.add_argument("--auth-file", metavar="FILE", help="username:password lines; asks for a login when given")
    add_model_arguments(p)


def run_serve(args: argparse.Namespace) -> int:
    import ui
    from storage import Store

    if not 1 <= args.port <= 65535:
        raise ValueError(f"--port must be between 1 and 65535, got {args.port}")
    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.auth_file:
        logging.getLogger(__name__).warning(
            "serving on %s without --auth-file: anyone who can reach this port can label, prune and delete as "
            "any annotator", args.host)
    settings = Settings.from_env()
    catalog = load_catalog_arg(args)
    generator, scorer = load_models(args, catalog)
    store = Store(args.db or settings.database_url)
    ui.launch(generator=generator, scorer=scorer, store=store, catalog=catalog, host=args.host, port=args.port,
              auth_file=args.auth_file, max_budget=settings.max_budget)
    return 0
