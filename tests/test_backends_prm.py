"""PRM adapters on tiny models: reference read-outs, padding-correct batching, load errors, and full searches."""
from __future__ import annotations

import json
import shutil
import threading

import pytest
import torch
from safetensors.torch import save_file

from reasoning.backends import ADAPTERS, ModelLoadError, load_generator, load_scorer
from reasoning.domains import DOMAINS
from reasoning.domains.math import MathDomain
from reasoning.factors import load_catalog
from reasoning.problems import countdown_problem
from reasoning.search import ALGORITHMS, SearchConfig, search
from reasoning.tree import ROOT
from reasoning.types import Problem
from tiny_models import build_math_shepherd_prm

pytestmark = pytest.mark.model
PROBLEM = Problem("p1", "What is 2 + 3?", "5")
PATHS = [
    ["The goal is 5."],
    ["Let me try 2 + 3.", "Next, 2 + 3 = 5.", "So the answer is 5."],
    ["Let me break this down: add.", "So the answer is 6."],
]
QUESTION = PROBLEM.text  # the math domain's prompt is the problem text


@pytest.fixture(scope="module")
def scorers(tiny):
    return {name: load_scorer(path, trust_remote_code=name == "qwen-prm") for name, path in tiny.prms.items()}


def test_adapters_are_detected_from_the_directory(scorers):
    assert {name: type(s).adapter for name, s in scorers.items()} == {name: name for name in ADAPTERS}


@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_one_score_per_step_in_unit_range_and_padding_correct(scorers, adapter):
    scorer = scorers[adapter]
    batched = scorer.score(PROBLEM, [*PATHS, []])
    assert [len(s) for s in batched] == [1, 3, 2, 0]
    assert all(0.0 <= x <= 1.0 for s in batched for x in s)
    for path, scores in zip(PATHS, batched, strict=False):
        assert scorer.score(PROBLEM, [path])[0] == pytest.approx(scores, abs=1e-5)
    assert len({round(x, 6) for s in batched for x in s}) > 1  # the scores depend on the text


# -- reference read-outs, written the way each model family's own code reads them -------------------------
def test_token_classification_reads_trl_layout(scorers):
    from trl.experimental.prm import PRMTrainer

    scorer, steps = scorers["token-classification"], PATHS[1]
    row = PRMTrainer.tokenize_row(
        {"prompt": QUESTION, "completions": steps, "labels": [True] * len(steps)}, scorer.tokenizer, "\n",
        max_length=None, max_completion_length=None, train_on_last_step_only=False, is_eval=False,
    )
    ids, positions = scorer.encode(QUESTION, steps)
    assert ids == row["input_ids"]
    assert positions == [i for i, label in enumerate(row["labels"]) if label != -100]
    with torch.no_grad():
        probs = scorer.model(input_ids=torch.tensor([ids])).logits[0].softmax(-1)[:, 1]
    assert scorer.score(PROBLEM, [steps])[0] == pytest.approx(probs[positions].tolist(), abs=1e-5)


def test_math_shepherd_reads_p_good_at_each_tag(scorers):
    scorer, steps = scorers["math-shepherd"], PATHS[1]
    tok = scorer.tokenizer
    good, bad = tok.convert_tokens_to_ids(["+", "-"])
    tag = tok.encode("ки", add_special_tokens=False)[-1]
    ids = tok.encode(QUESTION + " " + "\n".join(f"{s} ки" for s in steps))
    with torch.no_grad():
        p_good = scorer.model(input_ids=torch.tensor([ids])).logits[0][:, [good, bad]].softmax(-1)[:, 0]
    expected = p_good[torch.tensor(ids) == tag].tolist()
    assert len(expected) == 3
    assert scorer.score(PROBLEM, [steps])[0] == pytest.approx(expected, abs=1e-5)


def test_qwen_prm_reads_class_one_at_each_separator(scorers):
    scorer, steps = scorers["qwen-prm"], PATHS[1]
    messages = [
        {"role": "system", "content": "Please reason step by step, and put your final answer within \\boxed{}."},
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": "<extra_0>".join(steps) + "<extra_0>"},
    ]
    text = scorer.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    ids = torch.tensor([scorer.tokenizer.encode(text)])
    with torch.no_grad():
        probs = scorer.model(input_ids=ids)[0][0].softmax(-1)[:, 1]
    sep = scorer.tokenizer.encode("<extra_0>", add_special_tokens=False)[0]
    assert scorer.score(PROBLEM, [steps])[0] == pytest.approx(probs[ids[0] == sep].tolist(), abs=1e-5)


def test_value_head_reads_sigmoid_at_each_step_end(tiny, scorers):
    from safetensors.torch import load_file

    scorer, steps = scorers["value-head"], PATHS[1]
    head = load_file(str(tiny.value_head / "value_head.safetensors"))
    tok = scorer.tokenizer
    ids, ends = tok.encode(QUESTION + "\n"), []
    for s in steps:
        ids += tok.encode(s)
        ends.append(len(ids) - 1)
        ids += tok.encode("\n")
    with torch.no_grad():
        hidden = scorer.model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[-1][0]
    expected = torch.sigmoid(hidden @ head["weight"].T + head["bias"])[ends, 0].tolist()
    assert scorer.score(PROBLEM, [steps])[0] == pytest.approx(expected, abs=1e-5)


def test_provenance_names_adapter_and_weights(scorers):
    prov = scorers["math-shepherd"].provenance()
    assert (prov["adapter"], prov["step_tag"], prov["good_token"], prov["bad_token"]) == ("math-shepherd", "ки", "+", "-")
    assert len(prov["weights_sha256"]["model.safetensors"]) == 64


# -- load errors: one line each -----------------------------------------------------------------------------
def _copy(src, dst, **files):
    shutil.copytree(src, dst)
    for name, content in files.items():
        (dst / name.replace("__", ".")).write_text(content)
    return dst


def _bad_head(tiny, tmp):
    d = _copy(tiny.value_head, tmp / "m")
    save_file({"weight": torch.zeros(1, 8), "bias": torch.zeros(1)}, str(d / "value_head.safetensors"))
    return d


PRM_ERRORS = {
    "missing directory": (lambda t, tmp: tmp / "none", {}, "does not exist"),
    "step tag not a token": (lambda t, tmp: build_math_shepherd_prm(tmp / "m", step_tag=False), {},
                             "no single token for its step tag 'ки'"),
    "remote code without the flag": (lambda t, tmp: t.qwen_prm, {}, "trust_remote_code=True"),
    "unknown adapter": (lambda t, tmp: t.token_classification, {"adapter": "nope"}, "unknown PRM adapter 'nope'"),
    "wrong family": (lambda t, tmp: t.gpt2_tags, {"adapter": "token-classification"},
                     "is not a token-classification model"),
    "not a causal LM": (lambda t, tmp: t.token_classification, {"adapter": "math-shepherd"},
                        "is not a causal language model"),
    "adapter unknown from files": (lambda t, tmp: t.gpt2_tags, {}, "cannot tell which PRM adapter"),
    "broken prm_config": (lambda t, tmp: _copy(t.math_shepherd, tmp / "m", prm_config__json="{"), {}, "cannot read"),
    "unknown option": (
        lambda t, tmp: _copy(t.math_shepherd, tmp / "m", prm_config__json=json.dumps(
            {"adapter": "math-shepherd", "tag": "x"})), {}, r"has no option\(s\) \['tag'\]"),
    "value head shape": (_bad_head, {}, r"has shape \(1, 8\), expected \(1, 64\)"),
}


@pytest.mark.parametrize("case", list(PRM_ERRORS))
def test_prm_load_errors_are_one_line(tiny, tmp_path, case):
    make, kwargs, expected = PRM_ERRORS[case]
    path = make(tiny, tmp_path)
    with pytest.raises(ModelLoadError, match=expected) as err:
        load_scorer(path, **kwargs)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


# -- whole searches on the tiny models ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def generators(tiny):
    return {"gpt2": load_generator(tiny.gpt2_tags, max_step_tokens=6),
            "qwen2": load_generator(tiny.qwen2_cues, max_step_tokens=6)}


def _config(algorithm: str, seed: int = 0) -> SearchConfig:
    return SearchConfig(algorithm=algorithm, budget=6, candidates=2, beam_width=2, max_depth=3, seed=seed,
                        temperatures=(0.7, 1.0))


def assert_valid_tree(tree, result, budget: int) -> None:
    names = set(load_catalog().names)
    assert 2 <= len(tree) <= budget + 1
    assert result.nodes_created == len(tree) - 1
    for nid in tree.nodes():
        if nid == ROOT:
            continue
        attrs = tree.node(nid)
        assert attrs["parent"] in tree and nid.startswith(attrs["parent"] + ".")
        assert attrs["factor"] in names and attrs["tokens"] >= 0
        assert attrs["score"] is not None and 0.0 <= attrs["score"] <= 1.0


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize(("generator", "adapter"), [("gpt2", a) for a in ADAPTERS] + [("qwen2", "token-classification")])
def test_every_algorithm_builds_a_valid_tree(generators, scorers, generator, adapter, algorithm):
    tree, result = search(PROBLEM, generators[generator], scorers[adapter], _config(algorithm))
    assert_valid_tree(tree, result, budget=6)
    assert result.algorithm == algorithm


def test_countdown_search_builds_a_valid_tree(generators, scorers):
    tree, result = search(countdown_problem([4, 7, 8, 8]), generators["gpt2"], scorers["value-head"], _config("mcts"))
    assert_valid_tree(tree, result, budget=6)


class _QuotedDomain(MathDomain):
    """A domain whose prompt differs from the problem text, to see which one the PRM reads."""

    name = "quoted"

    def prompt(self, problem):
        return f"Question: {problem.text}"


def test_every_prm_reads_the_domain_prompt(scorers, monkeypatch):
    monkeypatch.setitem(DOMAINS, "quoted", _QuotedDomain())
    quoted, spelled_out = Problem("q", PROBLEM.text, domain="quoted"), Problem("s", f"Question: {PROBLEM.text}")
    for scorer in scorers.values():
        assert scorer.score(quoted, PATHS) == scorer.score(spelled_out, PATHS) != scorer.score(PROBLEM, PATHS)


def test_two_searches_share_the_models_from_two_threads(generators, scorers):
    results = {}

    def run(seed):
        results[seed] = search(PROBLEM, generators["qwen2"], scorers["math-shepherd"], _config("mcts", seed))

    threads = [threading.Thread(target=run, args=(seed,)) for seed in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for tree, result in results.values():
        assert_valid_tree(tree, result, budget=6)
    alone = search(PROBLEM, generators["qwen2"], scorers["math-shepherd"], _config("mcts", 1))[0]
    assert [alone.node(n)["text"] for n in alone.nodes()] == [results[1][0].node(n)["text"] for n in alone.nodes()]


@pytest.mark.parametrize("adapter", ["token-classification", "math-shepherd", "qwen-prm", "value-head"])
def test_score_last_is_the_last_step_of_score_in_token_capped_batches(tiny, scorers, adapter):
    paths = [*PATHS, ["one step only"], [f"step {i}" for i in range(6)]]
    full = scorers[adapter].score(PROBLEM, paths)
    assert scorers[adapter].score_last(PROBLEM, paths) == pytest.approx([s[-1] for s in full], abs=1e-5)
    small = load_scorer(tiny.prms[adapter], trust_remote_code=adapter == "qwen-prm", batch_tokens=1,
                        kv_cache_mb=0)  # whole paths: the prefix cache's own passes are tested below
    calls = []
    small.model.register_forward_pre_hook(lambda _m, _a: calls.append(1))
    assert small.score_last(PROBLEM, paths) == pytest.approx([s[-1] for s in full], abs=1e-5)
    assert len(calls) == len(paths)  # a cap below any path: one path per pass


def test_the_cli_defaults_of_the_engine_settings_are_the_backends():
    from cli import common
    from reasoning.backends import generator, prm

    assert common.DEFAULT_KV_CACHE_MB == generator.DEFAULT_KV_CACHE_MB
    assert common.DEFAULT_BATCH_TOKENS == prm.DEFAULT_BATCH_TOKENS
    assert common.DEFAULT_PRM_KV_CACHE_MB == prm.DEFAULT_KV_CACHE_MB


def test_the_token_cap_defaults_to_a_small_one_on_a_cpu(tiny):
    """A CPU pass is compute-bound: the default cap keeps batches small there (16384 was slower than one path per
    call on the demo PRM); a cap given explicitly is kept, and the CLI leaves the choice to the backend."""
    from cli import common
    from reasoning.backends import prm

    path = tiny.prms["token-classification"]
    assert load_scorer(path, device="cpu").batch_tokens == prm.CPU_BATCH_TOKENS < prm.DEFAULT_BATCH_TOKENS
    assert load_scorer(path, device="cpu", batch_tokens=4096).batch_tokens == 4096
    assert prm.default_batch_tokens("cuda:0") == prm.DEFAULT_BATCH_TOKENS
    parser = __import__("argparse").ArgumentParser()
    common.add_model_arguments(parser)
    assert parser.parse_args([]).prm_batch_tokens is None


def _fed_tokens(scorer) -> list[int]:
    """Record the input ids fed to each forward pass of `scorer`'s model (real tokens, padding excluded)."""
    fed: list[int] = []
    scorer.model.register_forward_pre_hook(
        lambda _m, args, kwargs: fed.append(int(kwargs["attention_mask"][:, -kwargs["input_ids"].shape[1]:].sum())),
        with_kwargs=True)
    return fed


@pytest.mark.parametrize("adapter", ["token-classification", "math-shepherd", "value-head", "qwen-prm"])
def test_a_new_node_is_scored_on_its_parents_kv_with_the_whole_paths_score(tiny, adapter):
    """The search scores each node once, then its children: a child's path is fed only its own step on top of the
    parent's KV kept in the PRM's prefix cache, and reads the same score as the whole path. A model whose forward
    ignores the cache (the tiny Qwen-PRM's remote code does) is caught at load and scores whole paths."""
    trust = adapter == "qwen-prm"
    reusing = load_scorer(tiny.prms[adapter], trust_remote_code=trust)
    whole = load_scorer(tiny.prms[adapter], trust_remote_code=trust, kv_cache_mb=0)
    assert reusing.reuses_prefix is (adapter != "qwen-prm") and whole.reuses_prefix is False
    parents = [["Let me try 2 + 3."], ["Let me break this down: add."]]
    children = [p + [s] for p in parents for s in ("Next, 2 + 3 = 5.", "So the answer is 6.")]
    grandchildren = [c + ["So the answer is 5."] for c in children]
    root = reusing.encode(QUESTION, [])[0]  # the question: kept once, where every path starts with its ids
    rooted = reusing.reuses_prefix and all(reusing.encode(QUESTION, p)[0][: len(root)] == root for p in parents)
    fed = _fed_tokens(reusing)
    for generation in (parents, children, grandchildren):
        fed.clear()
        got = reusing.score_last(PROBLEM, generation)
        assert got == pytest.approx(whole.score_last(PROBLEM, generation), abs=1e-5)
        assert got == pytest.approx([s[-1] for s in whole.score(PROBLEM, generation)], abs=1e-5)
        full = sum(len(reusing.encode(QUESTION, p)[0]) for p in generation)
        if not reusing.reuses_prefix:
            assert sum(fed) == full
        elif generation is parents:  # the question once, then each first step on its KV (a shorter row of a
            # pass is fed some of its cached ids instead of padding, so the count is at most the whole paths')
            assert (len(fed), sum(fed) < full) == ((2, True) if rooted else (1, False))
        else:  # only the new steps (and what the encoding puts after them) were fed
            assert 0 < sum(fed) < full - len(generation) * len(reusing.encode(QUESTION, parents[0])[0]) // 2
    if reusing.reuses_prefix:  # one hit per path whose parent (or question) was kept
        assert reusing.kv_cache.hits == len(children) + len(grandchildren) + rooted * len(parents)
    # a whole tree in one call (rescoring a stored tree): depth by depth, each child on its parent's KV from the
    # wave before
    together = load_scorer(tiny.prms[adapter], trust_remote_code=trust)
    fed = _fed_tokens(together)
    tree = grandchildren + children + parents
    assert together.score_last(PROBLEM, tree) == pytest.approx(whole.score_last(PROBLEM, tree), abs=1e-5)
    if together.reuses_prefix:
        assert together.kv_cache.hits == len(children) + len(grandchildren) + rooted * len(parents)
        assert len(fed) == 3 + rooted  # (the question,) first steps, second steps, third steps
        assert sum(fed) < sum(len(together.encode(QUESTION, p)[0]) for p in tree)


def test_a_bidirectional_prm_is_never_scored_on_a_cached_prefix(tiny, tmp_path):
    """An encoder reads tokens after a position too, so a parent's KV cannot stand for its prefix: the load-time
    check finds a different score and the scorer reads whole paths."""
    from transformers import BertConfig, BertForTokenClassification

    path = tmp_path / "bert-prm"
    shutil.copytree(tiny.prms["token-classification"], path)
    for f in path.glob("*.safetensors"):
        f.unlink()
    vocab = json.loads((path / "config.json").read_text(encoding="utf-8"))["vocab_size"]
    torch.manual_seed(0)
    config = BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=256, num_labels=2,
                        initializer_range=0.5)  # weights large enough that a token's output depends on its context
    BertForTokenClassification(config).save_pretrained(path, safe_serialization=True)
    scorer = load_scorer(path, adapter="token-classification")
    assert scorer.reuses_prefix is False
    paths = [["Let me try 2 + 3."], ["Let me try 2 + 3.", "Next, 2 + 3 = 5."]]
    scorer.score_last(PROBLEM, paths[:1])
    assert scorer.score_last(PROBLEM, paths[1:]) == pytest.approx([scorer.score(PROBLEM, paths[1:])[0][-1]], abs=1e-5)


def test_the_prm_prefix_cache_is_bounded_and_its_size_checked(tiny):
    with pytest.raises(ModelLoadError, match="kv_cache_mb must be between 0 and 1048576, got -1"):
        load_scorer(tiny.prms["token-classification"], kv_cache_mb=-1)
    small = load_scorer(tiny.prms["token-classification"], kv_cache_mb=0.001)  # ~1 KB: a few tokens' KV at most
    small.score_last(PROBLEM, PATHS)
    assert small.kv_cache.bytes <= small.kv_cache.max_bytes
    parser = __import__("argparse").ArgumentParser()
    from cli import common

    common.add_model_arguments(parser)
    assert parser.parse_args(["--prm-kv-cache-mb", "0"]).prm_kv_cache_mb == 0


def test_the_kv_caches_default_to_a_share_of_the_gpus_memory_and_to_a_few_hundred_mb_on_a_cpu(tiny, monkeypatch):
    """A fixed few hundred MB holds a handful of a 7B model's node prefixes (57 KB of KV a token): on CUDA the
    generator's node cache defaults to a tenth of the GPU's memory and the PRM's to a twentieth; given sizes win."""
    import argparse
    from types import SimpleNamespace

    from cli import common
    from reasoning.backends import generator, prm
    from reasoning.backends.loading import kv_cache_budget_mb

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda _d: SimpleNamespace(total_memory=80 * 2**30))
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert kv_cache_budget_mb(None, cuda, generator.DEFAULT_KV_CACHE_MB, generator.GPU_KV_CACHE_SHARE) == 8192
    assert kv_cache_budget_mb(None, cuda, prm.DEFAULT_KV_CACHE_MB, prm.GPU_KV_CACHE_SHARE) == 4096
    assert kv_cache_budget_mb(None, cpu, generator.DEFAULT_KV_CACHE_MB, generator.GPU_KV_CACHE_SHARE) == 256
    assert kv_cache_budget_mb(0, cuda, 256, 0.1) == 0 and kv_cache_budget_mb(64, cuda, 256, 0.1) == 64
    # the loaders and the CLI leave the choice to the device
    assert load_generator(tiny.gpt2_tags).kv_cache.max_bytes == 256 * 2**20
    assert load_scorer(tiny.token_classification).kv_cache.max_bytes == 128 * 2**20
    parser = argparse.ArgumentParser()
    common.add_model_arguments(parser)
    args = parser.parse_args([])
    assert args.kv_cache_mb is None and args.prm_kv_cache_mb is None
