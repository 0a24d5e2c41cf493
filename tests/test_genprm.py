"""The generative PRM adapter on tiny causal LMs built from configs: a critique and a verdict per step, the score
P(correct) / (P(correct) + P(incorrect)) at the verdict, one verdict per step checked, critiques kept on nodes."""
from __future__ import annotations

import json
import math

import pytest
import torch

from reasoning.backends import load_generator, load_scorer
from reasoning.backends.genprm import GenerativePRM, check_one_verdict_per_step
from reasoning.search import SearchConfig, search
from reasoning.types import Problem
from tiny_models import build_gpt2_lm, build_qwen2_lm

pytestmark = pytest.mark.model
PROBLEM = Problem("p", "What is 6 times 7?", "42")


@pytest.fixture(scope="module")
def genprms(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("genprm")
    gpt2 = build_gpt2_lm(root / "gpt2", seed=7)
    (gpt2 / "prm_config.json").write_text(json.dumps({"adapter": "generative", "max_critique_tokens": 6}))
    qwen = build_qwen2_lm(root / "qwen2", seed=8)
    (qwen / "prm_config.json").write_text(json.dumps({"adapter": "generative", "style": "yesno",
                                                      "max_critique_tokens": 5}))
    return gpt2, qwen


def _by_hand(prm: GenerativePRM, context: str) -> float:
    """P(good words) and P(bad words) after `context`, each from its own forward pass."""
    ctx = prm.tokens(context, special=True)
    logs = []
    for words in (prm.good_ids, prm.bad_ids):
        ids = torch.tensor([ctx + words])
        logp = torch.log_softmax(prm.model(input_ids=ids).logits[0].float(), -1)
        logs.append(sum(float(logp[len(ctx) - 1 + k, w]) for k, w in enumerate(words)))
    return math.exp(logs[0]) / (math.exp(logs[0]) + math.exp(logs[1]))


@pytest.mark.parametrize("which", [0, 1])
def test_one_score_per_step_read_at_the_verdict(genprms, which):
    prm = load_scorer(genprms[which], device="cpu")
    assert isinstance(prm, GenerativePRM)
    steps = ["6 * 7 = 42", "so the answer is 42"]
    (scores,) = prm.score(PROBLEM, [steps])
    critiques = prm.critiques(PROBLEM, steps)
    assert len(scores) == len(critiques) == 2 and all(0.0 < s < 1.0 for s in scores)
    assert [c.verdict for c in critiques] == ["correct" if s >= 0.5 else "incorrect" for s in scores]
    context = prm.prompt(PROBLEM.text, steps) + "Step 1: " + critiques[0].critique + " " + prm.cue
    assert scores[0] == pytest.approx(_by_hand(prm, context), abs=1e-4)


def test_a_verification_without_one_verdict_per_step_is_refused():
    text = "Problem: q\n\nLet's verify step by step.\nStep 1: fine. Verdict: \\boxed{correct}\nStep 2: hmm.\n"
    with pytest.raises(ValueError, match="1 verdicts for 2 steps"):
        check_one_verdict_per_step(text, 2)
    check_one_verdict_per_step(text + "Verdict: \\boxed{incorrect}\n", 2)
    yes_no = "Let's verify step by step.\nStep 1: ok. Is the step correct (Yes/No)? Yes\n"
    check_one_verdict_per_step(yes_no, 1, "yesno")


def test_a_search_keeps_each_nodes_critique_in_its_meta(genprms, tmp_path):
    generator_dir = build_gpt2_lm(tmp_path / "gen")
    generator = load_generator(generator_dir, device="cpu", max_step_tokens=4)
    prm = load_scorer(genprms[0], device="cpu")
    tree, _ = search(PROBLEM, generator, prm, SearchConfig(algorithm="best_of_n", budget=3, max_depth=2))
    steps = [n for n in tree.nodes() if n != "0"]
    assert steps
    for nid in steps:
        meta = tree.node(nid)["meta"]
        last = prm.critiques(PROBLEM, tree.state(nid).step_texts)[-1]
        assert meta["critique"] == last.critique and meta["verdict"] == last.verdict
        assert tree.node(nid)["score"] == pytest.approx(last.p_correct)


def test_bad_style_is_refused_with_one_line(genprms):
    with pytest.raises(ValueError, match="style must be one of"):
        GenerativePRM(genprms[0], style="stars", device="cpu")
