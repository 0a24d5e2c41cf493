"""The one-kernel sampler used on accelerators (all rows of a decode step at once, inverse CDF on draws from each
plan's own generator): it samples the softmax at each row's temperature, honours top-p and greedy rows, and a
plan's tokens for a seed do not depend on what shares the batch."""
from __future__ import annotations

import pytest
import torch

from reasoning.backends import load_generator
from reasoning.backends.generator import sample_inverse_cdf
from reasoning.factors import load_catalog
from reasoning.types import ExpansionRequest, Problem, State, Step

CATALOG = load_catalog()
LOGITS = torch.tensor([2.0, 0.5, -1.0, 1.0, 0.0])


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_draws_follow_the_softmax_at_the_rows_temperature(temperature):
    n = 40_000
    u = torch.rand(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    tokens = sample_inverse_cdf(LOGITS.expand(n, -1), [temperature] * n, u)
    freq = torch.bincount(tokens, minlength=5).double() / n
    expected = torch.softmax(LOGITS.double() / temperature, dim=0)
    assert freq.tolist() == pytest.approx(expected.tolist(), abs=0.01)


def test_top_p_never_draws_outside_the_nucleus_and_greedy_rows_take_the_argmax():
    n = 5000
    u = torch.rand(n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    probs = torch.softmax(LOGITS, dim=0)  # 0.53, 0.12, 0.03, 0.20, 0.07: the top 0.7 is tokens 0 and 3
    tokens = sample_inverse_cdf(LOGITS.expand(n, -1), [1.0] * n, u, top_p=0.7)
    assert set(tokens.tolist()) == {0, 3}
    assert (tokens == 0).double().mean().item() == pytest.approx((probs[0] / (probs[0] + probs[3])).item(), abs=0.03)
    # a zero-probability token is never drawn, even at u = 0; greedy rows ignore their draw
    mixed = sample_inverse_cdf(torch.stack([torch.tensor([-1e9, 0.0, 0.0]), torch.tensor([0.0, 3.0, 0.0])]),
                               [1.0, 0.0], torch.tensor([0.0, 0.99], dtype=torch.float64))
    assert mixed.tolist() == [1, 1]
    # a draw as close to 1 as float64 gets never lands past the last token with any probability
    tail = sample_inverse_cdf(torch.tensor([[0.0, 0.0, -1e9]]), [1.0], torch.tensor([1 - 2.0**-53], dtype=torch.float64))
    assert tail.tolist() == [1]


STATES = [State(Problem("b1", "Use 3 4 5 6 to make 24.")),
          State(Problem("b2", "What is 7 * 6?", "42")).extend(Step("The goal is 42.", "restate"))]


def _requests(seed, temperature=1.0):
    over = tuple(CATALOG.enabled)
    return [ExpansionRequest(STATES[0], CATALOG.get("compute"), 3, temperature=temperature, seed=seed, prior_over=over),
            ExpansionRequest(STATES[1], CATALOG.get("verify"), 2, temperature=temperature, seed=seed + 1,
                             prior_over=over)]


def _ids(batches):
    return [[s.meta["token_ids"] for s in steps] for steps in batches]


@pytest.mark.model
@pytest.mark.parametrize("model", ["gpt2_tags", "qwen2_cues"])
def test_a_generator_sampling_in_one_batch_is_greedy_exact_and_reproducible_per_plan(tiny, model):
    batched = load_generator(getattr(tiny, model), max_step_tokens=12, batched_sampling=True)
    per_plan = load_generator(getattr(tiny, model), max_step_tokens=12, batched_sampling=False)
    assert batched.batched_sampling and not per_plan.batched_sampling
    assert _ids(batched.propose_batch(_requests(0, 0.0))) == _ids(per_plan.propose_batch(_requests(0, 0.0)))
    together = batched.propose_batch(_requests(7))
    assert _ids(batched.propose_batch(_requests(7)[:1])) == _ids(together[:1])
    assert _ids(batched.propose_batch(_requests(7)[1:])) == _ids(together[1:])
    assert _ids(batched.propose_batch(_requests(8))) != _ids(together)
    # a step's logprob is the model's own log-probability of its tokens, as the per-plan sampler reports it
    step = together[0][0]
    prefix = batched.context_ids(STATES[0], (CATALOG.get("compute"), *CATALOG.enabled))
    prefix += batched.start_ids(CATALOG.get("compute"))
    ids = step.meta["token_ids"]
    with torch.inference_mode():
        logits = batched.model(input_ids=torch.tensor([prefix + ids])).logits[0].float()
    logp = torch.log_softmax(logits[len(prefix) - 1: len(prefix) - 1 + len(ids)], dim=-1)
    assert step.logprob == pytest.approx(logp[torch.arange(len(ids)), torch.tensor(ids)].sum().item(), abs=1e-3)


@pytest.mark.model
def test_the_default_is_per_plan_on_cpu_and_never_on_the_reference_path(tiny):
    assert not load_generator(tiny.gpt2_tags).batched_sampling
    assert not load_generator(tiny.gpt2_tags, kv_reuse=False, batched_sampling=True).batched_sampling
