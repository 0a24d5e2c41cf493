"""Decoding in fixed slots (reasoning/backends/slots.py, the GPU fast path whose steps replay as CUDA graphs): run
eagerly on CPU here, it must give the ragged loop's tokens, logprobs, child priors and node-cache entries, and the
same search tree. (The graph capture itself needs CUDA: `python -m bench.gpu` measures it on a GPU.)"""
from __future__ import annotations

import pytest
import torch

from reasoning.backends import generator, load_generator, load_scorer
from reasoning.backends.generator import SLOT_DECODERS
from reasoning.backends.slots import bucket, supports_slots
from reasoning.factors import load_catalog
from reasoning.search import SearchConfig, search
from reasoning.types import ExpansionRequest, Problem, State, Step

pytestmark = pytest.mark.model
CATALOG = load_catalog()
STATES = [State(Problem("s1", "Use 3 4 5 6 to make 24.")),
          State(Problem("s2", "What is 7 * 6?", "42")).extend(Step("The goal is 42.", "restate"))]


def _requests(temperature: float, seed: int = 0) -> list[ExpansionRequest]:
    over = tuple(CATALOG.enabled)
    return [ExpansionRequest(STATES[0], CATALOG.get("compute"), 3, temperature=temperature, seed=seed, prior_over=over),
            ExpansionRequest(STATES[1], CATALOG.get("verify"), 2, temperature=temperature, seed=seed + 1,
                             prior_over=over),
            ExpansionRequest(STATES[0], CATALOG.get("restate"), 1, temperature=temperature, seed=seed + 2,
                             prior_over=over)]


def _pair(tiny, **kw):
    slots = load_generator(tiny.qwen2_cues, slot_decode=True, batched_sampling=True, **kw)
    ragged = load_generator(tiny.qwen2_cues, slot_decode=False, batched_sampling=True, **kw)
    assert slots.slot_decode and not ragged.slot_decode
    return slots, ragged


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_slots_give_the_ragged_loops_tokens_logprobs_and_child_priors(tiny, temperature):
    slots, ragged = _pair(tiny, max_step_tokens=12)
    a, b = slots.propose_batch(_requests(temperature)), ragged.propose_batch(_requests(temperature))
    flat_a, flat_b = [s for r in a for s in r], [s for r in b for s in r]
    assert [s.meta["token_ids"] for s in flat_a] == [s.meta["token_ids"] for s in flat_b]
    assert [s.text for s in flat_a] == [s.text for s in flat_b]
    assert [s.logprob for s in flat_a] == pytest.approx([s.logprob for s in flat_b], abs=1e-4)
    priors = [(s.meta.get("next_prior"), t.meta.get("next_prior")) for s, t in zip(flat_a, flat_b, strict=True)]
    assert any(p is not None for p, _ in priors)
    for p, q in priors:
        assert (p is None) == (q is None)
        if p is not None:
            assert p == pytest.approx(q, abs=1e-5)
    # the prefilled nodes' and the children's KV went into the node cache in both, the same tensors: expanding a
    # child needs no prefill
    assert slots.kv_stats()["entries"] == ragged.kv_stats()["entries"]
    root = tuple(slots.context_ids(STATES[0], (CATALOG.get("compute"), *CATALOG.enabled)))
    a_root, b_root = slots.kv_cache.get(root), ragged.kv_cache.get(root)
    assert a_root is not None and b_root is not None and a_root.length == b_root.length == len(root)
    for (ka, va), (kb, vb) in zip(a_root.layers, b_root.layers, strict=True):
        assert torch.allclose(ka, kb, atol=1e-5) and torch.allclose(va, vb, atol=1e-5)
    child = STATES[0].extend(flat_a[0])
    before = slots.kv_stats()["prefilled_tokens"]
    again = slots.propose(child, CATALOG.get("verify"), 2, temperature=0.0)
    assert slots.kv_stats()["prefilled_tokens"] == before
    assert [s.meta["token_ids"] for s in again] == [
        s.meta["token_ids"] for s in ragged.propose(child, CATALOG.get("verify"), 2, temperature=0.0)]


def test_a_few_fixed_shape_decoders_serve_batches_of_every_size(tiny, monkeypatch):
    slots, _ = _pair(tiny, max_step_tokens=8)
    for n in (1, 2, 3, 5, 9):
        slots.propose_batch([ExpansionRequest(STATES[i % 2], CATALOG.get("compute"), 1, temperature=1.0, seed=i)
                             for i in range(n)])
    assert 1 <= len(slots._slot_decoders) <= SLOT_DECODERS
    assert all(s & (s - 1) == 0 and c & (c - 1) == 0 and c >= 256 for s, c in slots._slot_decoders)
    assert bucket(1, 5) == (1, 256) and bucket(5, 257) == (8, 512) and bucket(64, 256) == (64, 256)
    assert bucket(3, 600) == (4, 1024)
    # the pool's KV blocks stay within its byte budget beside the decoder just used
    small, _ = _pair(tiny, max_step_tokens=8, kv_cache_mb=0)
    monkeypatch.setattr(generator, "SLOT_POOL_MIN_BYTES", 1)
    for n in (1, 2, 3, 5):
        small.propose_batch([ExpansionRequest(STATES[0], CATALOG.get("compute"), 1, temperature=1.0, seed=i)
                             for i in range(n)])
        assert len(small._slot_decoders) == 1


@pytest.mark.parametrize("leaves", [1, 4])
def test_a_greedy_search_builds_the_same_tree_in_slots(tiny, leaves):
    config = SearchConfig(budget=12, candidates=2, temperatures=(0.0,), parallel_leaves=leaves, max_depth=3)
    slots, ragged = _pair(tiny, max_step_tokens=6)
    scorer = load_scorer(tiny.token_classification)
    trees = [search(Problem("s", "Use 3 4 5 6 to make 24."), g, scorer, config)[0] for g in (slots, ragged)]
    shape = [sorted((n, t.node(n)["text"], t.node(n)["visits"]) for n in t.nodes()) for t in trees]
    assert shape[0] == shape[1] and len(shape[0]) > 3


def test_slots_are_refused_for_a_model_without_prepared_masks_and_off_by_default_on_cpu(tiny):
    from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

    gpt2 = load_generator(tiny.gpt2_tags)
    assert not supports_slots(gpt2.model) and not gpt2.slot_decode
    with pytest.raises(ValueError, match="slot decoding needs"):
        load_generator(tiny.gpt2_tags, slot_decode=True)
    # Llama and Mistral pass a prepared mask to their own mask builder, which does not take it
    shape = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
             "num_key_value_heads": 1, "vocab_size": 64}
    for config, model in ((LlamaConfig, LlamaForCausalLM), (MistralConfig, MistralForCausalLM)):
        assert not supports_slots(model(config(**shape, attn_implementation="sdpa")))
    qwen = load_generator(tiny.qwen2_cues)
    assert supports_slots(qwen.model) and not qwen.slot_decode  # CPU: the ragged loop stays the default
