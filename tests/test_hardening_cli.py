"""Hardening of the command line (issue 16): one-line argparse errors, whole-input validation before `solve` works,
no sessions left by a failed `solve`, reading commands that refuse a missing database, the serve exposure rule,
shared limits, and terminal-safe output."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import app
from reasoning.limits import MAX_STEP_TOKENS
from reasoning.tree import ReasoningTree
from reasoning.types import Problem, Step
from storage import Store
from tiny_models import build_gpt2_lm, build_token_classification_prm

pytestmark = pytest.mark.model
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("hardening-models")
    gen, prm = build_gpt2_lm(root / "gen"), build_token_classification_prm(root / "prm")
    return ["--generator", str(gen), "--prm", str(prm), "--max-step-tokens", "6"]


def run_app(args: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = app.main(args)
    return code, capsys.readouterr().err


def one_error_line(err: str, *needles: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err, err
    for n in needles:
        assert n.lower() in lines[0].lower(), (n, lines[0])
    return lines[0]


def write_problems(path: Path, records: list[dict | str]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


# -- case 9: argparse errors are one line --------------------------------------------------------------
@pytest.mark.parametrize("argv,needle", [
    (["import", "--format", "csv", "x.jsonl"], "invalid choice: 'csv'"),
    (["search", "4 7 8 8", "--budget", "abc"], "--budget"),
    (["search", "4 7 8 8", "--budget", "2.5"], "--budget"),
    (["export", "--format", "trl", "--out", "x.jsonl", "--session", "abc"], "--session"),
    (["export", "--format", "trl", "--out", "x.jsonl", "--session", str(2**63)], "between 1 and 2147483647"),
    (["frobnicate"], "invalid choice"),
    (["solve", "--problems", "p.jsonl"], "required"),
])
def test_argparse_errors_are_one_line_and_exit_2(argv, needle, capsys):
    with pytest.raises(SystemExit) as exc:
        app.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    line = one_error_line(err, needle)
    assert "--help" in line and "usage:" not in err


def test_a_real_process_prints_one_line_for_a_bad_choice():
    proc = subprocess.run([sys.executable, str(ROOT / "app.py"), "import", "--format", "csv", "x.jsonl"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2
    one_error_line(proc.stderr, "invalid choice: 'csv'")


# -- case 12: one set of limits; terminal-safe output ----------------------------------------------------
def test_max_step_tokens_is_bounded(capsys):
    with pytest.raises(SystemExit) as exc:
        app.main(["search", "4 7 8 8", "--max-step-tokens", "100000000"])
    assert exc.value.code == 2
    one_error_line(capsys.readouterr().err, f"between 1 and {MAX_STEP_TOKENS}")


def test_search_prints_problem_and_steps_without_bidi_overrides_or_controls():
    from cli.search import outline

    tree = ReasoningTree(Problem("p", "What is \u202eevil\u202c 2+2?\x1b[2J"))
    tree.add_child("0", Step("it is \u2066 4 \u2069\x07", factor="compute", terminal=True, answer="4\u202e"))
    text = "\n".join(outline(tree))
    for raw in ("\u202e", "\u202c", "\u2066", "\u2069", "\x1b", "\x07"):
        assert raw not in text
    assert "\\u202e" in text and "\\u001b" in text


# -- case 1: solve validates all input and its output path first, and leaves no sessions on failure -----
def test_solve_refuses_a_lone_surrogate_in_a_later_problem_before_any_work(models, tmp_path, capsys):
    db = tmp_path / "runs.db"
    problems = write_problems(tmp_path / "p.jsonl", [
        {"id": "a", "problem": "What is 2 + 2?", "answer": "4"},
        '{"id": "b", "problem": "What is \\ud800 3 + 3?", "answer": "6"}',
    ])
    out = tmp_path / "out.jsonl"
    code, err = run_app(["solve", "--problems", str(problems), "--budget", "2", "--algorithm", "greedy",
                         "--out", str(out), "--db", f"sqlite:///{db}", "--quiet", *models], capsys)
    assert code == 2
    one_error_line(err, "p.jsonl:2", "surrogate")
    assert not out.exists()
    assert not db.exists() or Store(f"sqlite:///{db}").counts()["sessions"] == 0


def test_solve_refuses_an_unwritable_out_folder_before_any_work(models, tmp_path, capsys):
    problems = write_problems(tmp_path / "p.jsonl", [{"id": "a", "problem": "What is 2 + 2?"}])
    code, err = run_app(["solve", "--problems", str(problems), "--budget", "2", "--out", "/sys/rte-out.jsonl",
                         "--quiet", *models], capsys)
    assert code == 2
    one_error_line(err, "not writable")


def test_a_solve_that_fails_at_the_end_stores_no_sessions(models, tmp_path, capsys, monkeypatch):
    import cli.search

    def broken_write(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cli.search, "atomic_write", broken_write)
    db = tmp_path / "runs.db"
    problems = write_problems(tmp_path / "p.jsonl", [{"id": "a", "problem": "What is 2 + 2?"},
                                                     {"id": "b", "problem": "What is 3 + 3?"}])
    code, err = run_app(["solve", "--problems", str(problems), "--budget", "2", "--algorithm", "greedy",
                         "--out", str(tmp_path / "out.jsonl"), "--db", f"sqlite:///{db}", "--quiet", *models], capsys)
    assert code == 2
    one_error_line(err, "no space left")
    with Store(f"sqlite:///{db}") as store:
        assert store.counts()["sessions"] == 0


def test_a_solve_with_db_stores_every_session_and_the_results(models, tmp_path, capsys):
    db = tmp_path / "runs.db"
    problems = write_problems(tmp_path / "p.jsonl", [{"id": "a", "problem": "What is 2 + 2?"},
                                                     {"id": "b", "problem": "What is 3 + 3?"}])
    out = tmp_path / "out.jsonl"
    code, err = run_app(["solve", "--problems", str(problems), "--budget", "2", "--algorithm", "greedy",
                         "--out", str(out), "--db", f"sqlite:///{db}", "--quiet", *models], capsys)
    assert code == 0, err
    assert len(out.read_text().splitlines()) == 2
    with Store(f"sqlite:///{db}") as store:
        assert sorted(s.name for s in store.list_sessions()) == ["solve: a", "solve: b"]


# -- case 8: a reading command refuses a database that does not exist ------------------------------------
def test_export_refuses_a_missing_database_and_creates_nothing(tmp_path, capsys):
    missing = tmp_path / "typo" / "explorer.db"
    code, err = run_app(["export", "--format", "trl", "--out", str(tmp_path / "x.jsonl"),
                         "--db", f"sqlite:///{missing}"], capsys)
    assert code == 2
    one_error_line(err, "no database at", str(missing))
    assert not missing.parent.exists() and not (tmp_path / "x.jsonl").exists()


# -- case 5: no login on a reachable address only when asked for ----------------------------------------
@pytest.mark.parametrize("extra,needle", [
    ([], "--auth-file"),
    (["--no-auth", "--auth-file", "a.txt"], "contradict"),
])
def test_serve_refuses_a_reachable_address_without_a_login_choice(extra, needle, capsys):
    code, err = run_app(["serve", "--host", "0.0.0.0", "--port", "7999", *extra], capsys)
    assert code == 2
    one_error_line(err, needle)


def test_loopback_addresses_need_no_login_choice():
    from cli.serve import check_exposure, is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("10.1.2.3")
    assert not is_loopback("example.org")
    check_exposure("127.0.0.1", 7860, None, False)  # no error
    check_exposure("0.0.0.0", 7860, "auth.txt", False)


def test_no_auth_warns_naming_what_it_exposes(caplog):
    from cli.serve import check_exposure

    with caplog.at_level("WARNING"):
        check_exposure("0.0.0.0", 7860, None, True)
    assert "anyone who can reach 0.0.0.0:7860" in caplog.text and "delete" in caplog.text


def test_the_docker_image_asks_for_a_login():
    cmd = [ln for ln in (ROOT / "Dockerfile").read_text().splitlines() if ln.startswith("CMD")][-1]
    assert '"0.0.0.0"' in cmd and '"--auth-file"' in cmd and "--no-auth" not in cmd
