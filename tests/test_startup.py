"""`python app.py --help` starts light: it lists the commands from app.py's static table and imports none of the
heavy packages (torch, transformers, gradio), which take seconds to import; a command's own `--help` still works."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import app

ROOT = Path(__file__).resolve().parents[1]
HEAVY = {"torch", "transformers", "gradio"}


def run_app(*args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run `python -X importtime app.py ARGS` and return the process and the top-level packages it imported."""
    env = {**os.environ, "PYTHONPATH": ""}
    proc = subprocess.run([sys.executable, "-X", "importtime", "app.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    imported = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in proc.stderr.splitlines()
                if line.startswith("import time:") and "|" in line}
    return proc, imported


def test_help_lists_every_command_without_importing_heavy_packages():
    proc, imported = run_app("--help")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {"argparse", "os"} <= imported  # the import log was read (an empty one would pass the next line)
    assert not imported & HEAVY, f"`app.py --help` imported {sorted(imported & HEAVY)}"
    for name in app.COMMANDS:
        assert name in proc.stdout


def test_a_commands_help_still_shows_its_arguments():
    proc, _ = run_app("search", "--help")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--budget" in proc.stdout and "--algorithm" in proc.stdout


def test_only_the_named_command_module_is_imported_to_parse():
    """build_parser(["search"]) gives `search` its arguments and leaves every other command bare."""
    parser = app.build_parser(["search"])
    args = parser.parse_args(["search", "4 7 8 8", "--budget", "8"])
    assert (args.command, args.budget) == ("search", 8)
    bare = app.build_parser([])
    assert not hasattr(bare.parse_args(["export"]), "func")


def test_serve_flags_work_without_writing_serve():
    """`./dev.sh app --db URL` once read `--db` as `--debug`: options with no command before them are serve's."""
    from app import build_parser, with_default_command

    assert with_default_command(["--db", "sqlite:///x.db", "--port", "7861"]) == [
        "serve", "--db", "sqlite:///x.db", "--port", "7861"]
    assert with_default_command(["--debug", "--port", "7861"]) == ["--debug", "serve", "--port", "7861"]
    for unchanged in ([], ["--debug"], ["--help"], ["search", "--budget", "4", "x"], ["serch"]):
        assert with_default_command(unchanged) == unchanged
    args = build_parser(["serve"]).parse_args(with_default_command(["--db", "sqlite:///x.db"]))
    assert args.command == "serve" and args.db == "sqlite:///x.db" and not args.debug


def test_solve_validates_its_settings_before_importing_torch(tmp_path):
    """A bad setting is refused in one line before any model code loads: reading the generator's recommended
    settings (a manifest, or a server URL's model root) must not import the backends package, which imports torch."""
    problems = tmp_path / "p.jsonl"
    problems.write_text((ROOT / "reasoning" / "data" / "countdown_eval.jsonl").read_text().splitlines()[0] + "\n")
    proc, imported = run_app("solve", "--problems", str(problems), "--out", str(tmp_path / "o.jsonl"), "--budget", "0")
    assert proc.returncode == 2 and "budget must be between" in proc.stderr, proc.stderr[-2000:]
    assert "argparse" in imported
    assert "torch" not in imported and "transformers" not in imported
