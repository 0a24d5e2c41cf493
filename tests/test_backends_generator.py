"""The transformers generator on tiny GPT-2 (tags) and Qwen2 (cues) models: prior, sampling, stopping, load errors."""
from __future__ import annotations

import hashlib
import json
import shutil
import threading

import pytest
import torch

from reasoning.backends import ModelLoadError, device_and_dtype, load_generator, top_p_filter
from reasoning.factors import load_catalog
from reasoning.types import Problem, State, Step
from tiny_models import EOS, build_fixed_output_gpt2

pytestmark = pytest.mark.model
CATALOG = load_catalog()
STATE = State(Problem("t1", "What is 2 + 3?", "5"))
DEEPER = STATE.extend(Step("The goal is 5.", "restate")).extend(Step("Next, 2 + 3 = 5.", "compute"))


@pytest.fixture(scope="module")
def generators(tiny):
    return {
        "tags": load_generator(tiny.gpt2_tags, max_step_tokens=10),
        "cues": load_generator(tiny.qwen2_cues, max_step_tokens=10),
    }


def manual_logprob(gen, ids: list[int], start: int) -> float:
    """Sum of log p(ids[t] | ids[:t]) for t >= start, from one plain forward pass."""
    with torch.no_grad():
        logits = gen.model(input_ids=torch.tensor([ids])).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)
    return float(sum(logp[t - 1, ids[t]] for t in range(start, len(ids))))


def test_prompt_mode_follows_the_tokenizer(tiny, generators):
    assert generators["tags"].format.mode == "tags"
    assert generators["cues"].format.mode == "cues"
    assert load_generator(tiny.gpt2_tags, prompt_mode="cues").format.mode == "cues"


@pytest.mark.parametrize("mode", ["tags", "cues"])
@pytest.mark.parametrize("state", [STATE, DEEPER], ids=["root", "deeper"])
def test_factor_prior_sums_to_one_and_matches_per_factor_passes(generators, mode, state):
    gen = generators[mode]
    prior = gen.factor_prior(state, CATALOG.enabled)
    assert len(prior) == len(CATALOG.enabled) and sum(prior) == pytest.approx(1.0, abs=1e-5)
    context = gen.context_ids(state)
    scores = [manual_logprob(gen, context + gen.start_ids(f), len(context)) for f in CATALOG.enabled]
    assert prior == pytest.approx(torch.softmax(torch.tensor(scores), 0).tolist(), abs=1e-5)


def test_tags_prior_is_the_renormalised_next_token_probability_of_each_open_tag(generators):
    gen = generators["tags"]
    with torch.no_grad():
        logits = gen.model(input_ids=torch.tensor([gen.context_ids(STATE)])).logits[0, -1]
    tag_ids = [gen.tokenizer.convert_tokens_to_ids(f.open_tag) for f in CATALOG.enabled]
    probs = torch.softmax(logits, -1)[tag_ids]
    assert gen.factor_prior(STATE, CATALOG.enabled) == pytest.approx((probs / probs.sum()).tolist(), abs=1e-6)


@pytest.mark.parametrize("mode", ["tags", "cues"])
def test_propose_returns_n_scored_steps_under_the_factor(generators, mode):
    gen, factor = generators[mode], CATALOG.get("verify")
    steps = gen.propose(DEEPER, factor, 3, temperature=1.0, seed=11)
    assert len(steps) == 3
    prefix = gen.context_ids(DEEPER) + gen.start_ids(factor)
    for step in steps:
        assert step.factor == "verify" and 1 <= step.tokens <= 10
        assert step.tokens == len(step.meta["token_ids"])
        assert step.logprob == pytest.approx(manual_logprob(gen, prefix + step.meta["token_ids"], len(prefix)), abs=1e-3)
        assert step.text.startswith(factor.cue) == (mode == "cues")
        assert "<ACT_" not in step.text


@pytest.mark.parametrize("mode", ["tags", "cues"])
def test_seeds_reproduce_and_differ(generators, mode):
    gen, factor = generators[mode], CATALOG.get("compute")

    def ids(seed):
        return [s.meta["token_ids"] for s in gen.propose(STATE, factor, 4, temperature=1.0, seed=seed)]

    assert ids(5) == ids(5)
    assert ids(5) != ids(6)


def test_greedy_siblings_are_identical(generators):
    steps = generators["cues"].propose(STATE, CATALOG.get("propose"), 3, temperature=0.0)
    assert len({tuple(s.meta["token_ids"]) for s in steps}) == 1


def test_top_p_keeps_the_smallest_nucleus():
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.7, 0.2]])
    torch.testing.assert_close(top_p_filter(probs, 0.6), torch.tensor([[0.625, 0.375, 0.0], [0.0, 1.0, 0.0]]))
    torch.testing.assert_close(top_p_filter(probs, 0.8), torch.tensor([[0.625, 0.375, 0.0], [0.0, 0.7, 0.2]]) / torch.tensor([[1.0], [0.9]]))
    torch.testing.assert_close(top_p_filter(probs, 1.0), probs)


def test_top_p_sampling_never_leaves_the_nucleus(tiny):
    gen = load_generator(tiny.gpt2_tags, max_step_tokens=1, top_p=0.05)
    factor = CATALOG.get("compute")
    prefix = gen.context_ids(STATE) + gen.start_ids(factor)
    with torch.no_grad():
        probs = torch.softmax(gen.model(input_ids=torch.tensor([prefix])).logits[0, -1], -1)
    allowed = set(torch.nonzero(top_p_filter(probs[None], 0.05)[0]).flatten().tolist())
    drawn = {s.meta["token_ids"][0] for s in gen.propose(STATE, factor, 16, temperature=1.0, seed=3)}
    assert drawn <= allowed and len(allowed) < len(probs)


@pytest.mark.parametrize(
    ("token", "tags", "factor", "stop", "tokens", "text"),
    [
        ("</ACT_verify>", True, "verify", "stop", 1, ""),
        ("</ACT_compute>", True, "verify", "stop", 1, ""),  # any tag ends a step in tags mode
        (EOS, True, "verify", "eos", 1, ""),
        ("\n", False, "verify", "stop", 2, "Let me check: "),  # the "\n\n" delimiter spans two tokens
    ],
)
def test_each_row_stops_at_the_stop_string_or_eos(tmp_path, token, tags, factor, stop, tokens, text):
    gen = load_generator(build_fixed_output_gpt2(tmp_path / "fixed", token, tags=tags), max_step_tokens=8)
    for step in gen.propose(STATE, CATALOG.get(factor), 2, temperature=1.0, seed=1):
        assert (step.meta["stop"], step.tokens, step.text) == (stop, tokens, text)


def test_rows_stop_at_max_step_tokens(generators):
    for step in generators["tags"].propose(STATE, CATALOG.get("compute"), 4, temperature=1.0, seed=2):
        assert step.tokens <= 10
        assert step.meta["stop"] in {"stop", "eos"} or (step.tokens == 10 and step.meta["stop"] == "length")


def test_generation_stops_at_the_model_context(tiny):
    gen = load_generator(tiny.gpt2_short, max_step_tokens=64)  # 48 positions
    state = State(Problem("long", "Use the numbers 3 4 and 5 to make the goal then check the answer."))
    room = 48 - len(gen.context_ids(state) + gen.start_ids(CATALOG.get("compute")))
    assert 0 < room < 64
    steps = gen.propose(state, CATALOG.get("compute"), 2, temperature=1.0, seed=4)
    assert all(s.tokens <= room for s in steps)
    assert any(s.meta["stop"] == "context" and s.terminal for s in steps if s.tokens == room)
    full = State(Problem("full", "check the answer " * 20))
    assert [s.tokens for s in gen.propose(full, CATALOG.get("compute"), 2)] == [0, 0]


def test_concurrent_calls_match_sequential_ones(generators):
    gen, factor = generators["cues"], CATALOG.get("verify")
    expected = {seed: [s.meta["token_ids"] for s in gen.propose(STATE, factor, 3, seed=seed)] for seed in (1, 2)}
    got: dict[int, list] = {}

    def run(seed):
        for _ in range(3):
            got[seed] = [s.meta["token_ids"] for s in gen.propose(STATE, factor, 3, seed=seed)]

    threads = [threading.Thread(target=run, args=(seed,)) for seed in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == expected


def test_provenance_names_weights_and_sampling(tiny, generators):
    prov = generators["tags"].provenance()
    digest = hashlib.sha256((tiny.gpt2_tags / "model.safetensors").read_bytes()).hexdigest()
    assert prov["weights_sha256"] == {"model.safetensors": digest}
    assert (prov["model_type"], prov["prompt_mode"], prov["max_step_tokens"], prov["dtype"]) == (
        "gpt2", "tags", 10, "float32")


def test_device_and_dtype_defaults():
    dev, dtype = device_and_dtype()
    assert (dev.type, dtype) == (("cuda", torch.bfloat16) if torch.cuda.is_available() else ("cpu", torch.float32))
    assert device_and_dtype("cpu", "bfloat16") == (torch.device("cpu"), torch.bfloat16)
    with pytest.raises(ValueError, match="unknown dtype"):
        device_and_dtype("cpu", "float8")


# -- load errors: one line each, naming what is wrong ----------------------------------------------------
def _copy_without_weights(src, dst):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.safetensors"))
    return dst


def _edit_config(path, **changes):
    cfg = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**cfg, **changes}))
    return path


LOAD_ERRORS = {
    "missing directory": (lambda t, tmp: tmp / "nowhere", "does not exist"),
    "no config": (lambda t, tmp: tmp, "has no config.json"),
    "broken config": (
        lambda t, tmp: (shutil.copytree(t.gpt2_tags, tmp / "m"), (tmp / "m" / "config.json").write_text("{oops"))[0],
        "not valid JSON: line 1",
    ),
    "not causal": (lambda t, tmp: t.token_classification, "is not a causal language model"),
    "pickled weights only": (
        lambda t, tmp: (
            d := _copy_without_weights(t.gpt2_tags, tmp / "m"), (d / "pytorch_model.bin").write_bytes(b"x"))[0],
        "found only pytorch_model.bin",
    ),
    "remote code": (
        lambda t, tmp: _edit_config(
            shutil.copytree(t.gpt2_tags, tmp / "m"), architectures=["TinyRemoteForCausalLM"],
            auto_map={"AutoModelForCausalLM": "modeling_remote.TinyRemoteForCausalLM"},
        ),
        "trust_remote_code=True",
    ),
}


@pytest.mark.parametrize("case", list(LOAD_ERRORS))
def test_load_errors_are_one_line(tiny, tmp_path, case):
    make, expected = LOAD_ERRORS[case]
    path = make(tiny, tmp_path)
    with pytest.raises(ModelLoadError, match=expected) as err:
        load_generator(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
