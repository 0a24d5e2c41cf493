"""The command line's issue-22 defects (item 14): torch's thread count chosen for the loaded models and said, one
reading of a Countdown problem's text for `search` and `solve`, progress lines while solve and label run, and the
database `serve` opened."""
from __future__ import annotations

import io
import json
import re
from types import SimpleNamespace

import pytest
import torch

import app
from cli.progress import LineProgress, clock
from reasoning.backends import loading
from reasoning.http_client import free_port
from reasoning.problems import parse_problem_text, problem_from_record, read_problems


# -- threads ---------------------------------------------------------------------------------------------------------
def _model(params_in: int, params_out: int, device: str = "cpu"):
    """A loaded model as the backends hold one (`.model`, `.device`); on torch's meta device, so no memory."""
    return SimpleNamespace(model=torch.nn.Linear(params_in, params_out, bias=False, device="meta"), device=device)


def test_one_thread_for_small_models_on_the_cpu_and_torchs_default_otherwise(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(loading, "TORCH_DEFAULT_THREADS", 16)
    small, big = _model(1000, 3000), _model(10_000, 6000)  # 3M and 60M parameters
    assert loading.choose_threads([small, small])[0] == 1
    assert loading.choose_threads([small, big]) == (16, "torch's default for a 60M-parameter model on the CPU")
    assert loading.choose_threads([small, _model(10_000, 6000, "cuda")])[0] == 1  # only the CPU's models count
    assert loading.choose_threads([SimpleNamespace(url="http://x")]) == (16, "no model runs on the CPU")
    assert loading.choose_threads([small], requested=3) == (3, "--threads")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert loading.choose_threads([small]) == (16, "OMP_NUM_THREADS")


def test_search_sets_and_says_the_thread_count_and_takes_a_threads_flag(monkeypatch, capsys):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert app.main(["search", "Use 4 7 8 8 to make 24.", "--budget", "3"]) == 0
        assert torch.get_num_threads() == 1
        err = capsys.readouterr().err
        assert re.search(r"torch: 1 CPU thread \(the fastest for models of [\d.]+M parameters on the CPU; "
                         r"--threads N to change\)", err), err
        assert app.main(["search", "Use 4 7 8 8 to make 24.", "--budget", "3", "--threads", "2"]) == 0
        assert torch.get_num_threads() == 2 and "torch: 2 CPU threads (--threads" in capsys.readouterr().err
        with pytest.raises(SystemExit, match="2"):
            app.main(["search", "x", "--threads", "0"])
        assert "argument --threads: must be between 1 and 1024" in capsys.readouterr().err
    finally:
        torch.set_num_threads(before)


# -- one reading of a problem's text ---------------------------------------------------------------------------------
def test_a_problem_record_in_words_is_countdown_as_search_reads_it(tmp_path):
    typed = parse_problem_text("Use 4 7 8 8 to make 24.")
    rec = problem_from_record({"problem": "Use 4 7 8 8 to make 24."})
    assert (rec.domain, rec.meta, rec.id) == ("countdown", {"numbers": [4, 7, 8, 8], "target": 24}, typed.id)
    named = problem_from_record({"id": "q1", "problem": "Use 1 2 3 4 to make 10"})
    assert (named.id, named.domain, named.meta["target"]) == ("q1", "countdown", 10)
    word = problem_from_record({"id": "w", "problem": "Tom has 4 apples and eats 1. How many?", "answer": "3"})
    assert (word.domain, word.answer) != ("countdown", None)


def test_solve_solves_a_countdown_record_and_prints_a_progress_line_per_problem(tmp_path, capsys):
    problems = tmp_path / "p.jsonl"
    problems.write_text('{"id": "a", "problem": "Use 4 7 8 8 to make 24."}\n{"id": "b", "numbers": [1, 2, 3, 4]}\n')
    out = tmp_path / "out.jsonl"
    assert app.main(["solve", "--problems", str(problems), "--out", str(out), "--budget", "8"]) == 0
    first = json.loads(out.read_text().splitlines()[0])
    assert read_problems(problems)[0].domain == "countdown"
    assert first["answer"] and re.fullmatch(r"[\d+\-*/() ]+", first["answer"]), first  # an expression, not prose
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("mcts@8:")]
    assert len(lines) == 2 and lines[0].startswith("mcts@8: 1/2 problems (50%)") and "ETA" in lines[0], lines
    assert lines[1].startswith("mcts@8: 2/2 problems (100%)") and "solved=" in lines[1]


# -- progress lines --------------------------------------------------------------------------------------------------
def test_line_progress_prints_counts_rate_and_eta_and_its_last_count():
    out = io.StringIO()
    bar = LineProgress(10, "label", "node", every=3600, stream=out)
    bar.update(1)  # the first update prints; the next ones wait for `every`
    bar.update(3)
    bar.set_postfix(session=7)
    bar.close()  # the last count was not printed: close prints it
    lines = out.getvalue().splitlines()
    assert [ln.split(",")[0] for ln in lines] == ["label: 1/10 nodes (10%)", "label: 4/10 nodes (40%)"]
    assert "ETA" in lines[0] and lines[1].endswith("session=7")
    assert (clock(5), clock(185), clock(7440)) == ("5s", "3m05s", "2h04m")


def test_label_prints_progress_lines_while_it_runs(tmp_path, capsys):
    from reasoning.problems import countdown_problem
    from reasoning.tree import ReasoningTree
    from reasoning.types import Step
    from storage import Store

    url = f"sqlite:///{tmp_path / 'l.db'}"
    with Store(url) as store:
        tree = ReasoningTree(countdown_problem([4, 7, 8, 8]))
        a = tree.add_child("0", Step("8+7=15 (left: 4 8 15)", "compute"))
        tree.add_child(a, Step("15-8=7 (left: 4 7)", "compute"))
        sid = store.create_session(tree, name="t")
    assert app.main(["label", "--session", str(sid), "--rollouts", "1", "--max-steps", "2", "--db", url]) == 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("label:")]
    assert lines and lines[-1].startswith("label: 2/2 nodes (100%)") and "session=" in lines[-1], lines


# -- serve names its database ----------------------------------------------------------------------------------------
def test_serve_says_which_database_it_opened_without_its_password(tmp_path, monkeypatch, capsys):
    import ui
    from cli.serve import shown_url

    monkeypatch.setattr(ui, "launch", lambda **kw: None)
    db = tmp_path / "served.db"
    port = free_port()  # the default one may be serving another app on this machine
    assert app.main(["serve", "--db", f"sqlite:///{db}", "--port", str(port)]) == 0
    assert f"database: sqlite:///{db}" in capsys.readouterr().err
    assert shown_url("postgresql+psycopg://alice:s3cret@db:5432/x") == "postgresql+psycopg://alice:***@db:5432/x"
