"""The command line: `solve` records checked field by field against the contract, and bad input as one-line errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import app
from tiny_models import build_gpt2_lm, build_math_shepherd_prm

pytestmark = pytest.mark.model  # commands run on the demo models or tiny ones
ROOT = Path(__file__).resolve().parents[1]
RESULT_FIELDS = {"id": str, "answer": (str, type(None)), "solved": bool, "nodes": int,
                 "generated_tokens": int, "seconds": float}


@pytest.fixture()
def problems(tmp_path):
    path = tmp_path / "problems.jsonl"
    records = [
        {"id": "cd-1", "domain": "countdown", "numbers": [4, 7, 8, 8], "target": 24},
        {"id": "m-1", "problem": "What is 6 times 7?", "answer": "42"},
        {"question": "Tom has 3 apples and buys 2 more. How many now?", "answer": "3+2=5\n#### 5"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return path


def _models(tiny) -> list[str]:
    return ["--generator", str(tiny.gpt2_tags), "--prm", str(tiny.token_classification), "--max-step-tokens", "8"]


def run_app(args: list[str], capsys) -> tuple[int, str, str]:
    capsys.readouterr()  # drop what building the models printed
    code = app.main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("algorithm", ["greedy", "best_of_n", "beam", "mcts"])
def test_solve_writes_one_contract_record_per_problem(tiny, problems, tmp_path, capsys, algorithm):
    out = tmp_path / "results.jsonl"
    code, _, err = run_app(["solve", "--problems", str(problems), "--algorithm", algorithm, "--budget", "6",
                            "--seed", "3", "--out", str(out), "--quiet", *_models(tiny)], capsys)
    assert code == 0, err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records][:2] == ["cd-1", "m-1"] and len(records) == 3
    for r in records:
        assert set(r) == set(RESULT_FIELDS)
        for field, kind in RESULT_FIELDS.items():
            assert isinstance(r[field], kind), (field, r)
        assert 1 <= r["nodes"] <= 6
        assert r["generated_tokens"] >= r["nodes"] and r["seconds"] > 0
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_solve_is_reproducible_with_a_seed_and_without_kv_reuse(tiny, problems, tmp_path, capsys):
    outs = []
    for extra in ([], [], ["--no-kv-reuse"]):
        out = tmp_path / f"r{len(outs)}.jsonl"
        code, _, err = run_app(["solve", "--problems", str(problems), "--algorithm", "greedy", "--budget", "5",
                                "--out", str(out), "--quiet", *_models(tiny), *extra], capsys)
        assert code == 0, err
        outs.append([{k: v for k, v in json.loads(line).items() if k != "seconds"}
                     for line in out.read_text().splitlines()])
    assert outs[0] == outs[1] == outs[2]  # greedy decoding is the same with and without the prefix cache


def test_search_prints_an_outline_with_factor_score_visits_and_q(tiny, capsys):
    code, out, err = run_app(["search", "4 7 8 8", "--budget", "5", *_models(tiny)], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("[0] problem: Use 4 7 8 8 to make 24.")
    children = [ln for ln in lines if ln.startswith("  [0.")]
    assert children and all("prm " in ln and "visits " in ln and "Q " in ln for ln in children)
    assert sum(1 for ln in lines if ln.lstrip().startswith("[0.")) == 5


def _bad_problems(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "problem": "x"}\n{"id": "b", "problem": \n')
    return path


@pytest.mark.parametrize("case,message", [
    ("missing-generator", "nowhere does not exist"),
    ("not-causal", "causal"),
    ("prm-without-tag", "ки"),
    ("malformed-problems", "bad.jsonl:2: invalid JSON"),
    ("budget-zero", "budget must be between 1 and"),
    ("budget-over-cap", "budget must be between 1 and 100"),
    ("out-folder-missing", "does not exist"),
])
def test_bad_input_is_one_clear_line_and_a_non_zero_exit(tiny, problems, tmp_path, capsys, monkeypatch,
                                                        case, message):
    out = tmp_path / "out.jsonl"
    args = ["solve", "--problems", str(problems), "--budget", "4", "--out", str(out), "--quiet", *_models(tiny)]
    if case == "missing-generator":
        args += ["--generator", str(tmp_path / "nowhere")]
    elif case == "not-causal":
        args += ["--generator", str(tiny.token_classification)]
    elif case == "prm-without-tag":
        args += ["--prm", str(build_math_shepherd_prm(tmp_path / "ms-no-tag", step_tag=False))]
    elif case == "malformed-problems":
        args[2] = str(_bad_problems(tmp_path))
    elif case == "budget-zero":
        args[4] = "0"
    elif case == "budget-over-cap":
        monkeypatch.setenv("REASONING_MAX_BUDGET", "100")
        args[4] = "101"
    elif case == "out-folder-missing":
        out = tmp_path / "missing" / "out.jsonl"
        args[6] = str(out)
    code, _, err = run_app(args, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message.lower() in lines[0].lower(), err
    assert "Traceback" not in err
    assert not out.exists()
    assert not out.parent.exists() or not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]


def test_a_real_process_exits_non_zero_without_a_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(ROOT / "app.py"), "search", "4 7 8 8", "--generator",
                           str(tmp_path / "nope")], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: ") and "Traceback" not in proc.stderr


def test_a_cue_prompted_generator_with_a_math_shepherd_prm_also_solves(tiny, tmp_path, problems, capsys):
    gen = build_gpt2_lm(tmp_path / "gpt2-cues", tags=False)
    out = tmp_path / "r.jsonl"
    code, _, err = run_app(["solve", "--problems", str(problems), "--algorithm", "mcts", "--budget", "6",
                            "--out", str(out), "--quiet", "--generator", str(gen), "--prm", str(tiny.math_shepherd),
                            "--max-step-tokens", "6"], capsys)
    assert code == 0, err
    assert len(out.read_text().splitlines()) == 3


@pytest.mark.parametrize("algorithm", ["mcts", "best_of_n"])
def test_unset_search_flags_take_the_demo_settings_on_the_demo_models_only(algorithm):
    from cli.common import Settings, search_config
    from demo.scaling import demo_config
    from reasoning.search.config import SearchConfig

    parser = app.build_parser()
    settings = Settings.from_env()
    on_demo = search_config(parser.parse_args(["search", "4 7 8 8", "--algorithm", algorithm]), settings)
    report = demo_config(algorithm, 64)
    tuned = ("candidates", "c_puct", "widen", "fpu_reduction", "aggregation", "answer_selection", "beam_width")
    assert {k: getattr(on_demo, k) for k in tuned} == {k: getattr(report, k) for k in tuned}

    mine = search_config(parser.parse_args(["search", "x", "--algorithm", algorithm, "--generator", "g"]), settings)
    assert {k: getattr(mine, k) for k in tuned} == {k: getattr(SearchConfig, k) for k in tuned}

    given = search_config(parser.parse_args(["search", "x", "--algorithm", algorithm, "--c-puct", "0.5",
                                             "--answer-selection", "visits"]), settings)
    assert (given.c_puct, given.answer_selection) == (0.5, "visits")


@pytest.mark.parametrize("args, why", [
    (["--check-first", "1.5"], "--check-first must be a share between 0 and 1, not 1.5"),
    (["--generator-from", "no/such/dir"], "--generator-from no/such/dir: no model there (config.json missing)"),
    (["--generator-lr", "0"], "--generator-lr must be positive, not 0.0"),
    (["--first-dead", "-0.1"], "--first-dead must be a share between 0 and 1, not -0.1"),
    (["--wide-boards", "12"], "--wide-boards must be a largest number from 14 to 30, not 12"),
    (["--prm-wide-boards", "31"], "--prm-wide-boards must be a largest number from 14 to 30, not 31"),
    (["--prm-wide-boards", "20"], "--prm-wide-boards draws solver paths over more boards: it needs --prm-solver-paths"),
    (["--prm-solver-paths", "-1"], "--prm-solver-paths must be 0 or more, not -1"),
    (["--every-dead-first"], "--every-dead-first writes checked first tries: it needs --check-first above 0"),
])
def test_train_demo_refuses_bad_fine_tuning_flags_in_one_line_before_touching_anything(args, why, tmp_path, capsys):
    out = tmp_path / "generator"
    code, _, err = run_app(["train-demo", "--generator-out", str(out), "--skip-prm", *args], capsys)
    assert code != 0 and why in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_train_demo_refuses_a_seed_whose_split_would_move_held_out_problems_into_training(tmp_path, capsys):
    from demo.problemsets import DATA_DIR

    before = {f.name: f.read_bytes() for f in DATA_DIR.glob("countdown_*.jsonl")}
    code, _, err = run_app(["train-demo", "--seed", "3", "--skip-generator", "--skip-prm"], capsys)
    assert code != 0 and "--seed's problem split differs from the one in" in err, err
    assert len(err.strip().splitlines()) == 1
    assert {f.name: f.read_bytes() for f in DATA_DIR.glob("countdown_*.jsonl")} == before


def test_train_demo_trace_seed_draws_other_traces_on_the_same_split(monkeypatch, tmp_path, capsys):
    """`--trace-seed` seeds a fine-tuning stage's traces (and batch order) without touching the problem split, which
    `--seed` also decides: a second stage of a fine-tune learns from fresh traces of the same training problems."""
    import demo.train_generator as train_generator

    seen = []
    monkeypatch.setattr(train_generator, "train_generator",
                        lambda out, recipe, traces, base=None: seen.append((recipe.seed, traces.check_first)))
    code, _, err = run_app(["train-demo", "--trace-seed", "7", "--check-first", "1", "--skip-prm",
                            "--generator-out", str(tmp_path / "g")], capsys)
    assert code == 0, err
    code, _, err = run_app(["train-demo", "--skip-prm", "--generator-out", str(tmp_path / "g")], capsys)
    assert code == 0, err
    assert seen == [(7, 1.0), (0, 0.0)]  # without the flag: --seed's (0), and the committed recipe's traces
