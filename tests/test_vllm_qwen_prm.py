"""A Qwen2.5-Math-PRM-style model (`Qwen2ForProcessRewardModel`: chat template, `<extra_0>` step separators, a
two-class head) served by the real vLLM engine over `/pooling`, against the transformers `qwen-prm` adapter on the
same weights (the tiny stand-in of tests/tiny_models.py, whose head has the real model's layout).

vLLM reads such a model's scores only at its step tag, and its default tag is Qwen2.5's id 151651: `engine serve
--pooling` passes the model's own separator id, without which this test got no scores at all (0.5 everywhere)."""
from __future__ import annotations

import os

import pytest

from engine.env import ensure_engine_env
from engine.server import EngineServer, ServerSpec
from reasoning.backends import load_scorer
from reasoning.http_client import free_port
from reasoning.types import Problem

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

PROBLEM = Problem("p1", "What is 2 + 3?", "5")
PATHS = [["The goal is 5."], ["Let me try 2 + 3.", "Next, 2 + 3 = 5.", "So the answer is 5."],
         ["Let me break this down: add.", "So the answer is 6."], []]


@pytest.fixture(scope="module")
def served_qwen_prm(tiny, tmp_path_factory):
    if os.environ.get("REASONING_SKIP_VLLM"):
        pytest.skip("REASONING_SKIP_VLLM is set")
    ensure_engine_env()
    log = tmp_path_factory.mktemp("vllm-qwen-prm") / "server.log"
    server = EngineServer(ServerSpec(model=tiny.prms["qwen-prm"], port=free_port(), pooling=True, cores="0"),
                          log_file=log)
    try:
        server.start()
        yield server.url
    finally:
        server.stop()


def test_a_served_qwen_prm_scores_every_step_as_the_transformers_adapter_does(tiny, served_qwen_prm):
    served = load_scorer(served_qwen_prm, adapter="qwen-prm")
    local = load_scorer(tiny.prms["qwen-prm"], trust_remote_code=True)
    got, want = served.score(PROBLEM, PATHS), local.score(PROBLEM, PATHS)
    assert [len(g) for g in got] == [1, 3, 2, 0]
    for g, w in zip(got, want, strict=True):
        assert g == pytest.approx(w, abs=1e-3)
    assert len({round(v, 3) for g in got for v in g}) > 2  # real, differing scores (not the neutral 0.5)
    assert served.score_last(PROBLEM, PATHS[:3]) == pytest.approx([w[-1] for w in want[:3]], abs=1e-3)
