"""Decoding siblings from one shared-prefix KV cache gives the same greedy tokens as recomputing without a cache."""
from __future__ import annotations

import pytest

from reasoning.backends import load_generator
from reasoning.factors import load_catalog
from reasoning.types import Problem, State, Step

pytestmark = pytest.mark.model
CATALOG = load_catalog()
STATES = {
    "root": State(Problem("k1", "Use 3 4 5 6 to make 24.")),
    "deeper": State(Problem("k2", "What is 7 * 6?", "42")).extend(Step("The goal is 42.", "restate")),
}


@pytest.mark.parametrize("model", ["gpt2_tags", "qwen2_cues"])
@pytest.mark.parametrize(("state", "factor"), [("root", "compute"), ("deeper", "verify")])
def test_greedy_tokens_match_with_and_without_the_cache(tiny, model, state, factor):
    cached = load_generator(getattr(tiny, model), max_step_tokens=24, kv_reuse=True)
    plain = load_generator(getattr(tiny, model), max_step_tokens=24, kv_reuse=False)
    a = cached.propose(STATES[state], CATALOG.get(factor), 3, temperature=0.0)
    b = plain.propose(STATES[state], CATALOG.get(factor), 3, temperature=0.0)
    assert [s.meta["token_ids"] for s in a] == [s.meta["token_ids"] for s in b]
    assert [s.text for s in a] == [s.text for s in b]
    assert [s.logprob for s in a] == pytest.approx([s.logprob for s in b], abs=1e-3)
    assert a[0].tokens > 0


@pytest.mark.parametrize("model", ["gpt2_tags", "qwen2_cues"])
def test_the_prefix_is_prefilled_once_then_rows_decode_one_token_each(tiny, model):
    gen = load_generator(getattr(tiny, model), max_step_tokens=6, kv_reuse=True)
    shapes = []
    gen.model.register_forward_pre_hook(lambda _m, _a, kw: shapes.append(tuple(kw["input_ids"].shape)),
                                        with_kwargs=True)
    factor = CATALOG.get("compute")
    steps = gen.propose(STATES["root"], factor, 4, temperature=1.0, seed=9)
    prefix = len(gen.context_ids(STATES["root"]) + gen.start_ids(factor))
    assert shapes[0] == (1, prefix)
    assert all(width == 1 and 1 <= rows <= 4 for rows, width in shapes[1:])
    assert len(shapes) == max(s.tokens for s in steps)
