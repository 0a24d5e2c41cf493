"""Reasoning-tree explorer: the composition root that wires settings, models, database, UI and command line.

`python app.py` starts the UI on 127.0.0.1:7860 with the demo models; `python app.py --help` lists the subcommands.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Collection

# Nothing here may reach a model hub, and model loading should not draw progress bars over one-line errors.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

# name -> (help, module, function adding the arguments, function running the command). `--help` lists the commands
# from this table alone; a command's module (and what it imports: torch, gradio) is imported only when it runs.
COMMANDS: dict[str, tuple[str, str, str, str]] = {
    "serve": ("start the web UI", "cli.serve", "add_serve_arguments", "run_serve"),
    "search": ("run one search and print the tree as an outline", "cli.search",
               "add_search_command_arguments", "run_search"),
    "solve": ("solve a problems file, one result record per problem", "cli.search", "add_solve_arguments",
              "run_solve"),
    "runs": ("runs of a problem set: list, show, compare (paired statistics, --html report), export", "cli.runs",
             "add_runs_arguments", "run_runs"),
    "import": ("import traces or problem sets into the database", "cli.data", "add_import_arguments",
               "run_import"),
    "export": ("export labeled traces as PRM training data", "cli.data", "add_export_arguments", "run_export"),
    "train-demo": ("train the demo generator and PRM from scratch", "demo", "add_train_demo_arguments",
                   "train_demo"),
    "bench": ("scaling report: solve rate against budget for every algorithm", "bench.perf", "add_bench_arguments",
              "run_bench"),
    "engine": ("the vLLM engine: install its environment, serve a local model", "cli.engine",
               "add_engine_arguments", "run_engine"),
    "label": ("label the steps of stored trees by Monte-Carlo rollouts (and first-error search)", "cli.label",
              "add_label_arguments", "run_label"),
    "train-prm": ("train a token-classification PRM from a TRL stepwise export", "cli.train_prm",
                  "add_train_prm_arguments", "run_train_prm"),
    "improve": ("self-play rounds: search, fine-tune the generator on verified trajectories, retrain the PRM, "
                "evaluate on held-out problems", "cli.improve", "add_improve_arguments", "run_improve"),
    "loop-demo": ("the labeling loop on the demo domain: weak PRM, rollout labels, train-prm, before and after",
                  "demo.loop", "add_loop_demo_arguments", "run_loop_demo"),
}


class CommandError(Exception):
    """A one-line error for the user."""


def build_parser(commands: Collection[str] = COMMANDS) -> argparse.ArgumentParser:
    """The parser of every command; only those in `commands` get their arguments, which imports their modules.
    argparse errors come out in one line, for every subcommand too (cli/parser.py)."""
    from cli.parser import OneLineArgumentParser

    parser = OneLineArgumentParser(prog="app.py", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineArgumentParser)
    for name, (help_text, module, add, run) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name not in commands:
            continue
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:  # a part not installed must not break the other commands
            p.set_defaults(func=_unavailable(name, exc))
            continue
        getattr(mod, add)(p)
        p.set_defaults(func=getattr(mod, run))
    return parser


def _unavailable(name: str, exc: ImportError):
    def run(_args: argparse.Namespace) -> int:
        raise CommandError(f"the {name!r} command cannot start: {exc}")

    return run


def _command_in(argv: list[str]) -> str | None:
    """The command `argv` names: its first word that is not an option (`--debug` is the only global one)."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first in COMMANDS else None


def with_default_command(argv: list[str]) -> list[str]:
    """`serve`'s flags work without writing `serve` (`python app.py --db URL --port 7861`, `./dev.sh app --db URL`):
    options given with no command before them are serve's. A first word that is not an option is left to argparse
    (a mistyped command gets its one-line error)."""
    rest = [a for a in argv if a != "--debug"]
    if not rest or not rest[0].startswith("-") or rest[0] in ("-h", "--help"):
        return argv
    return [*(["--debug"] if "--debug" in argv else []), "serve", *rest]


def main(argv: list[str] | None = None) -> int:
    argv = with_default_command(sys.argv[1:] if argv is None else list(argv))
    _quiet_transformers("--debug" in argv)
    command = _command_in(argv)
    args = build_parser([command] if command else []).parse_args(argv)
    if args.command is None:  # no subcommand: start the UI
        args = build_parser(["serve"]).parse_args([*argv, "serve"])
    level = logging.DEBUG if args.debug else logging.INFO if args.command == "serve" else logging.WARNING
    logging.basicConfig(level=level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # every failure is one clear line, never a traceback, unless --debug
        if args.debug:
            raise
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2


def _quiet_transformers(debug: bool) -> None:
    """transformers reads its log level from the environment when a command first imports it (app.py never does:
    see tests/test_architecture.py); progress bars are off by HF_HUB_DISABLE_PROGRESS_BARS above."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "warning" if debug else "error")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
