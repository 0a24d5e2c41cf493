"""`serve`: start the web UI with the chosen models and database."""
from __future__ import annotations

import argparse
import ipaddress
import logging
import socket
import sys

from .common import Settings, add_model_arguments, load_catalog_arg, load_models
from .parser import bounded_int

NO_AUTH_EXPOSES = ("anyone who can reach {host}:{port} can run searches on this machine's CPU/GPU, read every "
                   "session and problem, and rate, edit, prune, delete and export as any annotator")


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 inside a container)")
    p.add_argument("--port", type=bounded_int(1, 65535), default=7860, help="port to listen on")
    p.add_argument("--db", metavar="URL", help="database URL (default: $DATABASE_URL, else SQLite in the data folder)")
    p.add_argument("--auth-file", metavar="FILE", help="username:password lines; asks for a login when given "
                   "(needed to listen on any address but loopback, unless --no-auth)")
    p.add_argument("--no-auth", action="store_true", help="listen on a non-loopback address with no login: "
                   + NO_AUTH_EXPOSES.format(host="HOST", port="PORT"))
    add_model_arguments(p)


def run_serve(args: argparse.Namespace) -> int:
    # serve logs at INFO; Alembic's import would log 7 lines of plugin setup before anything, a refusal included
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    import ui
    from storage import Store

    # every refusal that needs no model comes first, before the models' 10-20 s of loading and their log lines
    check_exposure(args.host, args.port, args.auth_file, args.no_auth)
    if args.auth_file:
        ui.load_auth_file(args.auth_file)
    check_port(args.host, args.port)
    settings = Settings.from_env()
    catalog = load_catalog_arg(args)
    store = Store(args.db or settings.database_url)
    print(f"database: {shown_url(store.url)}", file=sys.stderr)
    generator, scorer = load_models(args, catalog)
    ui.launch(generator=generator, scorer=scorer, store=store, catalog=catalog, host=args.host, port=args.port,
              auth_file=args.auth_file, max_budget=settings.max_budget)
    return 0


def check_port(host: str, port: int) -> None:
    """Refuse a port another program listens on now, in one line, before any model loads (the server binds it
    again when it starts)."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host.strip("[]"), port))
        except OSError as exc:
            raise ValueError(f"cannot listen on {host}:{port}: {exc.strerror} (another server there? choose "
                             "--port)") from None


def shown_url(url: str) -> str:
    """A database URL as it may be printed: the password masked."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach: `localhost` and 127.0.0.0/8 or ::1."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:  # a host name (or 0.0.0.0-like wildcard spelled otherwise): assume it is reachable
        return False


def check_exposure(host: str, port: int, auth_file: str | None, no_auth: bool) -> None:
    """Refuse to listen beyond loopback without a login, unless `--no-auth` says so explicitly (then warn, naming
    what is exposed); checked before any model is loaded."""
    if auth_file and no_auth:
        raise ValueError("--auth-file and --no-auth contradict each other; give one")
    if is_loopback(host) or auth_file:
        return
    if not no_auth:
        raise ValueError(f"--host {host} is reachable from other machines: give --auth-file FILE (username:password "
                         "lines) or, to serve without a login, --no-auth")
    logging.getLogger(__name__).warning("serving on %s:%s with no login (--no-auth): %s", host, port,
                                        NO_AUTH_EXPOSES.format(host=host, port=port))
