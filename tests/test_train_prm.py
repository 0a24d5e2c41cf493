"""`train-prm`: a token-classification PRM trained from the stepwise export, on tiny models built from configs and
on the demo architecture; the output loads with the token-classification adapter and drives a search."""
from __future__ import annotations

import json
import random

import pytest
import torch

import app
from reasoning.backends import load_scorer
from reasoning.training.prm import (
    PathEncoder,
    TrainConfig,
    processbench_metrics,
    read_stepwise,
    soft_target_loss,
    train_prm,
)
from reasoning.types import Problem
from tiny_models import build_gpt2_lm, build_qwen2_lm

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("bases")
    return {"gpt2": build_gpt2_lm(root / "gpt2"), "qwen2": build_qwen2_lm(root / "qwen2")}


def write_export(path, n: int = 60, seed: int = 0, soft: bool = True):
    """Paths whose steps say 'so' (right) or 'the' (wrong): a pattern a tiny model can learn in a few steps."""
    rng = random.Random(seed)
    lines = []
    for k in range(n):
        steps, labels = [], []
        for i in range(rng.randint(2, 4)):
            good = rng.random() < 0.6
            steps.append(f"{'so' if good else 'the'} {i + k % 7} + {i} = {i + k % 7 + i}")
            labels.append(good)
        rec = {"prompt": f"Problem {k % 20}: add the numbers.", "completions": steps, "labels": labels}
        if soft:
            rec["soft_labels"] = [0.9 if g else 0.0 for g in labels]
        lines.append(json.dumps(rec))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_tiny_gpt2_learns_the_labels_and_loads_as_a_prm(bases, tmp_path):
    data = write_export(tmp_path / "train.jsonl")
    held = write_export(tmp_path / "eval.jsonl", n=20, seed=1)
    config = TrainConfig(steps=150, batch_size=8, lr=3e-3, seed=0)
    manifest = train_prm(data, bases["gpt2"], tmp_path / "prm", config, eval_data=held, device="cpu")
    before, after = manifest["eval_before"], manifest["eval"]
    assert after["step_accuracy"] >= 0.8 and after["step_accuracy"] >= before["step_accuracy"] + 0.15
    assert manifest["eval"]["processbench_f1"] > manifest["eval_before"]["processbench_f1"]
    assert manifest["data"]["soft_steps"] == manifest["data"]["steps"] > 0
    assert set(manifest["weights_sha256"]) == {"model.safetensors"}
    scorer = load_scorer(tmp_path / "prm", device="cpu")
    assert scorer.adapter == "token-classification"
    records = read_stepwise(held)
    encoder = PathEncoder(scorer.tokenizer, "\n", None)
    for rec in records[:5]:  # trained on exactly what the adapter reads
        assert encoder.encode(rec.prompt, rec.completions) == scorer.encode(rec.prompt, list(rec.completions))
    scores = [scorer.score(Problem("x", r.prompt), [list(r.completions)])[0] for r in records]
    hits = [(s >= 0.5) == lab for r, row in zip(records, scores, strict=True) for s, lab in zip(row, r.labels, strict=True)]
    assert round(sum(hits) / len(hits), 4) == after["step_accuracy"]  # the saved PRM reads as it was measured


def test_a_qwen2_base_trains_with_a_held_out_split(bases, tmp_path):
    data = write_export(tmp_path / "train.jsonl", soft=False)
    manifest = train_prm(data, bases["qwen2"], tmp_path / "prm", TrainConfig(steps=3, batch_size=4, eval_share=0.2),
                         device="cpu")
    assert manifest["architecture"] == "Qwen2ForTokenClassification"
    assert manifest["eval_data"]["problems"] == 4 and manifest["data"]["problems"] == 16  # 20 prompts, 20% held out
    assert load_scorer(tmp_path / "prm", device="cpu").score(Problem("x", "q"), [["so 1 + 1 = 2"]])[0][0] >= 0


def test_soft_target_loss_is_lowest_at_the_soft_value():
    target = torch.tensor([[0.7, -1.0]])

    def loss_at(p: float) -> float:
        logits = torch.tensor([[[0.0, float(torch.logit(torch.tensor(p)))], [5.0, -5.0]]])
        return soft_target_loss(logits, target).item()

    assert loss_at(0.7) < loss_at(0.6) and loss_at(0.7) < loss_at(0.8) and loss_at(0.7) < loss_at(1 - 1e-4)


def test_processbench_metrics_on_a_hand_worked_case():
    labels = [[True, False, False], [True, True], [False, True]]
    scores = [[0.9, 0.2, 0.8], [0.9, 0.1], [0.6, 0.1]]  # hit, miss (false alarm), miss (error found late)
    got = processbench_metrics(scores, labels)
    assert got["error_path_accuracy"] == 0.5 and got["correct_path_accuracy"] == 0.0 and got["processbench_f1"] == 0
    assert got["step_accuracy"] == round(3 / 7, 4) and (got["paths_with_error"], got["paths_without_error"]) == (2, 1)


def test_bad_data_is_one_line_and_writes_nothing(bases, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "q", "completions": ["a", "b"], "labels": [true]}\n', encoding="utf-8")
    out = tmp_path / "never"
    code = app.main(["train-prm", "--data", str(bad), "--base", str(bases["gpt2"]), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"error: {bad}:1: field 'labels' must be one true/false/null per completion"]
    assert not out.exists()
