"""Greedy output is identical with every engine optimisation on or off: siblings decoded from one shared-prefix KV
cache, many requests in one ragged batch, the node prefix cache, and the prior read from the decode; on tiny real
models and on the committed demo models."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from reasoning.backends import load_generator, load_scorer
from reasoning.backends.kvcache import Entry, PrefixKVCache
from reasoning.factors import load_catalog
from reasoning.search import SearchConfig, search
from reasoning.types import ExpansionRequest, Problem, State, Step

pytestmark = pytest.mark.model
DEMO_EVAL = Path(__file__).resolve().parents[1] / "reasoning" / "data" / "countdown_eval.jsonl"
DEMO_FACTORS = ("compute", "verify", "correct", "conclude")
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
    context, start = gen.context_ids(STATES["root"]), gen.start_ids(factor)
    assert shapes[0] == (1, len(context) + len(start))  # the node's prefix, once, for all four siblings
    # a finished row feeds its last token and what closes its step (close tag, newline) in one pass
    tail = 1 + len(gen._encode(gen.format.render_step("", factor), special=False))
    assert all(1 <= rows <= 4 and width <= tail for rows, width in shapes[1:])
    assert len(shapes) - 1 >= max(s.tokens for s in steps) - 1
    shapes.clear()
    gen.propose(STATES["root"], factor, 4, temperature=1.0, seed=10)
    assert shapes[0] == (1, len(start))  # expanded again: the prefix's KV comes from the node cache
    assert all(width <= max(len(start), tail) for _, width in shapes)


def _requests(seed: int | None = None, n: int = 2, temperature: float = 0.0) -> list[ExpansionRequest]:
    over = tuple(CATALOG.enabled)
    return [
        ExpansionRequest(STATES["root"], CATALOG.get("compute"), n, temperature=temperature, seed=seed, prior_over=over),
        ExpansionRequest(STATES["deeper"], CATALOG.get("verify"), 1, temperature=temperature, seed=seed,
                         prior_over=over),
        ExpansionRequest(STATES["root"], CATALOG.get("restate"), n + 1, temperature=temperature, seed=seed,
                         prior_over=over),
    ]


def _ids(batches):
    return [[s.meta["token_ids"] for s in steps] for steps in batches]


@pytest.mark.parametrize("model", ["gpt2_tags", "qwen2_cues"])
def test_one_ragged_batch_gives_the_tokens_of_the_reference_request_by_request(tiny, model):
    fast = load_generator(getattr(tiny, model), max_step_tokens=12)
    plain = load_generator(getattr(tiny, model), max_step_tokens=12, kv_reuse=False)
    batched = fast.propose_batch(_requests())
    alone = [plain.propose(r.state, r.factor, r.n, temperature=0.0) for r in _requests()]
    assert _ids(batched) == _ids(alone)
    assert [[s.text for s in b] for b in batched] == [[s.text for s in b] for b in alone]
    assert [s.logprob for b in batched for s in b] == pytest.approx([s.logprob for b in alone for s in b], abs=1e-3)
    # sampled rows reproduce for a seed whatever else shares the batch
    sampled = fast.propose_batch(_requests(seed=3, temperature=1.0))
    assert _ids(fast.propose_batch(_requests(seed=3, temperature=1.0)[:1])) == _ids(sampled[:1])


@pytest.mark.parametrize("model", ["gpt2_tags", "qwen2_cues"])
def test_the_prior_read_from_the_decode_is_the_childs_factor_prior(tiny, model):
    fast = load_generator(getattr(tiny, model), max_step_tokens=12)
    plain = load_generator(getattr(tiny, model), max_step_tokens=12, kv_reuse=False)
    requests = _requests(seed=4, n=4, temperature=1.0)
    assert all(s.meta.get("next_prior") is None for b in plain.propose_batch(requests) for s in b)  # left to a pass
    checked = 0
    for request, steps in zip(requests, fast.propose_batch(requests), strict=True):
        for step in steps:
            spelled = fast._text(fast.start_ids(request.factor) + step.meta["token_ids"])
            rendered = fast.format.render_step(step.text, request.factor)
            if step.meta["stop"] == "eos" or not rendered.startswith(spelled):
                assert "next_prior" not in step.meta  # stopped on another tag: the ids are not the child's prefix
                continue
            child = request.state.extend(step)
            assert step.meta["next_prior"] == pytest.approx(plain.factor_prior(child, request.prior_over), abs=1e-4)
            checked += 1
    assert checked >= 3


@pytest.mark.parametrize("model", ["gpt2_tags", "qwen2_cues"])
def test_a_child_written_in_a_batch_is_expanded_without_a_prefill(tiny, model):
    gen = load_generator(getattr(tiny, model), max_step_tokens=8)
    factor = CATALOG.get("compute")
    step = gen.propose(STATES["root"], factor, 1, temperature=0.0)[0]
    child = STATES["root"].extend(step)
    before = gen.kv_stats()["prefilled_tokens"]
    again = gen.propose(child, factor, 2, temperature=0.0)
    assert gen.kv_stats()["prefilled_tokens"] == before  # the child's prefix KV was kept from the decode
    cold = load_generator(getattr(tiny, model), max_step_tokens=8, kv_cache_mb=0)
    assert _ids([again]) == _ids([cold.propose(child, factor, 2, temperature=0.0)])
    assert cold.kv_stats()["prefilled_tokens"] == len(cold.context_ids(child))


def test_the_node_cache_evicts_the_least_recently_used_by_bytes():
    def entry(n: int) -> Entry:
        return Entry(((torch.zeros(1, 1, n, 4), torch.zeros(1, 1, n, 4)),), torch.zeros(2))

    size = entry(8).nbytes
    cache = PrefixKVCache(3 * size)
    for key in [(1,), (2,), (3,)]:
        cache.put(key, entry(8))
    assert cache.get((1,)) is not None  # (1,) is now the most recent
    cache.put((4,), entry(8))
    assert cache.get((2,)) is None and cache.get((1,)) is not None and cache.bytes <= 3 * size
    cache.put((5,), entry(100))  # larger than the whole cache: not kept, nothing evicted
    assert len(cache) == 3 and cache.get((5,)) is None


def _tree(tree):
    return sorted((n, tree.node(n)["text"], tree.node(n)["visits"]) for n in tree.nodes())


@pytest.mark.parametrize("leaves", [1, 4])
def test_a_greedy_search_builds_the_same_tree_with_every_optimisation_on_or_off(tiny, leaves):
    config = SearchConfig(budget=12, candidates=2, temperatures=(0.0,), parallel_leaves=leaves, max_depth=3)
    fast = load_generator(tiny.gpt2_tags, max_step_tokens=6)
    plain = load_generator(tiny.gpt2_tags, max_step_tokens=6, kv_reuse=False, prior_from_decode=False)
    scorer = load_scorer(tiny.token_classification)
    trees = [search(Problem("s", "Use 3 4 5 6 to make 24."), g, scorer, config)[0] for g in (fast, plain)]
    assert _tree(trees[0]) == _tree(trees[1])


def test_the_demo_models_search_the_same_tree_with_every_optimisation_on_or_off():
    from reasoning.backends import DEMO_GENERATOR_DIR, DEMO_PRM_DIR
    from reasoning.problems import read_problems

    problem = read_problems(DEMO_EVAL)[0]
    config = SearchConfig(budget=16, candidates=1, widen=0.85, temperatures=(0.0,), parallel_leaves=8,
                          factors=DEMO_FACTORS, c_puct=4.0, fpu_reduction=0.3)
    scorer = load_scorer(DEMO_PRM_DIR)
    fast = load_generator(DEMO_GENERATOR_DIR, max_step_tokens=24)
    plain = load_generator(DEMO_GENERATOR_DIR, max_step_tokens=24, kv_reuse=False, prior_from_decode=False)
    trees = [search(problem, g, scorer, config)[0] for g in (fast, plain)]
    assert _tree(trees[0]) == _tree(trees[1])
    assert fast.kv_stats()["hits"] > 0


def test_a_batch_mixing_cached_and_uncached_nodes_gives_the_reference_tokens(tiny):
    fast = load_generator(tiny.gpt2_tags, max_step_tokens=10)
    plain = load_generator(tiny.gpt2_tags, max_step_tokens=10, kv_reuse=False)
    fast.factor_prior(STATES["root"], CATALOG.enabled)  # the root's KV is cached, the deeper node's is not
    mixed = fast.propose_batch(_requests())
    assert fast.kv_stats()["hits"] >= 1
    assert _ids(mixed) == _ids([plain.propose(r.state, r.factor, r.n, temperature=0.0) for r in _requests()])


def _record_shapes(gen) -> list[tuple[int, int]]:
    shapes: list[tuple[int, int]] = []
    gen.model.register_forward_pre_hook(lambda _m, _a, kw: shapes.append(tuple(kw["input_ids"].shape)),
                                        with_kwargs=True)
    return shapes


def test_in_a_mixed_batch_only_the_missing_nodes_are_prefilled(tiny):
    """A node that hits the cache is fed only its factor's start, even when another node of the batch misses (one
    pass for both used to feed the hit its whole context again)."""
    fast = load_generator(tiny.gpt2_tags, max_step_tokens=10)
    fast.factor_prior(STATES["root"], CATALOG.enabled)
    shapes = _record_shapes(fast)
    fast.propose_batch(_requests())
    deeper = len(fast.context_ids(STATES["deeper"], CATALOG.enabled))
    assert shapes[0] == (1, deeper)  # the one miss, prefilled alone
    assert all(width <= 3 for rows, width in shapes[1:])  # then starts, sampled tokens and closing tails only


def test_without_the_node_cache_no_pass_feeds_only_closing_tokens(tiny):
    """Cache off: a finished row's closing tokens ride along while other rows still sample (its prior comes from
    that pass); once nothing samples, no pass is made for them (the prior is read when the child is expanded)."""
    short = load_generator(tiny.gpt2_tags, max_step_tokens=3, kv_cache_mb=0)
    shapes = _record_shapes(short)
    over = tuple(CATALOG.enabled)
    step = short.propose_batch([ExpansionRequest(STATES["root"], CATALOG.get("compute"), 1, temperature=1.0,
                                                 seed=1, prior_over=over)])[0][0]
    assert step.meta["stop"] == "length"  # a step with closing tokens to feed (not one ended by EOS)
    assert len(shapes) == step.tokens and "next_prior" not in step.meta  # the first pass, then one per token
    gen = load_generator(tiny.gpt2_tags, max_step_tokens=12, kv_cache_mb=0)
    plain = load_generator(tiny.gpt2_tags, max_step_tokens=12, kv_reuse=False)
    requests = _requests(seed=5, n=4, temperature=1.0)  # (a seed where a row ends its step while others sample)
    got = 0
    for request, steps in zip(requests, gen.propose_batch(requests), strict=True):
        for s in steps:
            if "next_prior" in s.meta:
                child = request.state.extend(s)
                assert s.meta["next_prior"] == pytest.approx(plain.factor_prior(child, over), abs=1e-4)
                got += 1
    assert got >= 1
