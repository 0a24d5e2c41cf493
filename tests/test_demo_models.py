"""The committed demo models: they load through the backends, match their manifests, and drive a real search."""
from __future__ import annotations

import json

import pytest

from demo.manifest import verify_manifest
from demo.scaling import demo_config
from demo.traces import DEMO_FACTORS
from reasoning.backends import DEMO_GENERATOR_DIR, DEMO_PRM_DIR, load_generator, load_scorer
from reasoning.domains.countdown import parse_operation
from reasoning.factors import load_catalog
from reasoning.problems import countdown_problem
from reasoning.search import search
from reasoning.tree import ROOT
from reasoning.types import State

pytestmark = [pytest.mark.model, pytest.mark.skipif(
    not (DEMO_GENERATOR_DIR / "manifest.json").is_file() or not (DEMO_PRM_DIR / "manifest.json").is_file(),
    reason="the demo models are not built (python app.py train-demo)",
)]


@pytest.fixture(scope="module")
def generator():
    return load_generator(DEMO_GENERATOR_DIR, device="cpu")


@pytest.fixture(scope="module")
def scorer():
    return load_scorer(DEMO_PRM_DIR, device="cpu")


@pytest.mark.parametrize("model_dir", [DEMO_GENERATOR_DIR, DEMO_PRM_DIR])
def test_manifests_match_the_weights_and_say_how_they_were_made(model_dir, tmp_path):
    manifest = verify_manifest(model_dir)
    assert manifest["seed"] == 0 and manifest["steps"] > 0 and manifest["architecture"].startswith("GPT2")
    assert manifest["weights_sha256"] and "tokenizer" in manifest and "data" in manifest
    size = sum(p.stat().st_size for p in model_dir.glob("*.safetensors"))
    assert size < 10_000_000, f"{model_dir} weights are {size / 1e6:.1f} MB"
    assert not list(model_dir.glob("*.bin"))
    broken = tmp_path / "m"
    broken.mkdir()
    (broken / "manifest.json").write_text(json.dumps({"weights_sha256": {"model.safetensors": "0" * 64}}))
    (broken / "model.safetensors").write_bytes(b"x")
    with pytest.raises(ValueError, match="does not match the sha256"):
        verify_manifest(broken)


def test_manifests_record_the_recipes_in_the_code():
    """`train-demo` rebuilds what the manifests describe only if the code's recipes are the ones they record."""
    from dataclasses import asdict

    from demo.train_generator import GeneratorRecipe
    from demo.train_prm import PRMRecipe

    generator = json.loads((DEMO_GENERATOR_DIR / "manifest.json").read_text())
    expected = json.loads(json.dumps(asdict(GeneratorRecipe())))  # tuples become lists, as in the manifest
    # settings added after the committed generator was trained read as their defaults, which leave its recipe as it was
    later = {"wide_boards": 0, "wide_traces": 5, "every_dead_first": False}
    assert {k: expected[k] for k in later} == later
    assert {**later, **generator["recipe"]} == expected
    assert generator["steps"] == sum(c[0] for c in GeneratorRecipe().cycles)
    assert len(generator["loss_every_50_steps"]) >= generator["steps"] // 50
    prm = json.loads((DEMO_PRM_DIR / "manifest.json").read_text())
    later = {"solver_paths": 0, "wide_boards": 0}
    assert {k: asdict(PRMRecipe())[k] for k in later} == later
    assert {**later, **prm["recipe"]} == asdict(PRMRecipe()) and prm["steps"] == PRMRecipe().steps


def test_prm_config_names_the_token_classification_adapter(scorer):
    config = json.loads((DEMO_PRM_DIR / "prm_config.json").read_text())
    assert config == {"adapter": "token-classification", "separator": "\n"}
    assert scorer.adapter == "token-classification"


def test_generator_is_tag_trained_and_writes_operations(generator):
    assert generator.format.mode == "tags"
    catalog = load_catalog()
    factors = [catalog.get(n) for n in DEMO_FACTORS]
    state = State(countdown_problem([4, 7, 8, 8]))
    prior = dict(zip(DEMO_FACTORS, generator.factor_prior(state, factors), strict=True))
    assert max(prior, key=prior.get) == "compute"
    steps = generator.propose(state, catalog.get("compute"), 4, temperature=1.0, seed=0)
    assert sum(parse_operation(s.text) is not None for s in steps) >= 3


def test_prm_tells_a_dead_end_from_a_good_step(scorer):
    problem = countdown_problem([4, 7, 8, 8])
    good, bad = scorer.score(problem, [["8-7=1 (left: 1 4 8)"], ["8+8=16 (left: 4 7 16)"]])
    assert good[0] > bad[0]


@pytest.mark.xfail(strict=True, reason="known defect of the committed demo PRM: it scores this right final 0.743 and "
                   "the wrong one 0.996 (the generator always writes '=24' in a final step, so a final that says '=11' "
                   "is out of its training data; held-out finals overall: AUC 0.945); retrain it to fix")
def test_prm_ranks_a_right_final_above_a_wrong_one(scorer):
    problem = countdown_problem([4, 7, 8, 8])
    prefix = ["8-7=1 (left: 1 4 8)", "4-1=3 (left: 3 8)"]
    right, wrong = scorer.score(problem, [[*prefix, "3*8=24 (answer: (4-(8-7))*8)"], [*prefix, "3+8=11 (answer: (4-(8-7))+8)"]])
    assert right[-1] > wrong[-1]  # answer selection ranks finals (measured: AUC 0.945 on held-out final steps)


def test_a_short_search_yields_a_valid_tree(generator, scorer):
    problem = countdown_problem([4, 7, 8, 8])
    tree, result = search(problem, generator, scorer, demo_config("mcts", 12))
    assert result.nodes_created == len(tree) - 1 == 12
    for nid in tree.nodes():
        if nid == ROOT:
            continue
        node = tree.node(nid)
        assert node["factor"] in DEMO_FACTORS and node["score"] is not None and 0.0 <= node["score"] <= 1.0
        assert node["parent"] in tree and node["depth"] == len(tree.path(nid)) - 1
    assert result.answer is None or tree.node(result.node)["terminal"]


def test_scaling_table_shows_solve_rate_nodes_tokens_and_seconds():
    from demo.scaling import summarise, table

    rows = [{"algorithm": "mcts", "budget": 4, "solved": True, "nodes": 4, "generated_tokens": 30, "seconds": 0.5},
            {"algorithm": "mcts", "budget": 4, "solved": False, "nodes": 2, "generated_tokens": 10, "seconds": 0.1}]
    text = table(summarise(rows), algorithms=("greedy", "mcts"), budgets=(4,))
    assert "| mcts | 50.0% (3 nodes, 20 tokens, 0.30 s) |" in text
    assert "| greedy | – |" in text


@pytest.mark.slow
def test_the_demo_scripts_train_both_models_from_scratch_through_the_product_code(tmp_path):
    """train-demo's path in small: a generator from scratch (the shared training loop), its paths labeled by the
    product's rollouts on the transformers backend, a PRM trained on those labels; losses fall and both models load
    through the backends. The committed models are only read."""
    from dataclasses import replace

    import torch

    from demo.label import demo_generator, label_paths
    from demo.problemsets import load_split
    from demo.traces import TRACE_RECIPE
    from demo.train_generator import GeneratorRecipe, train_generator
    from demo.train_prm import PRMRecipe, train_prm
    from reasoning.backends import TransformersGenerator

    torch.set_num_threads(1)
    gen_dir, prm_dir = tmp_path / "generator", tmp_path / "prm"
    recipe = replace(GeneratorRecipe(), traces_per_problem=1, n_layer=1, n_embd=64, n_head=2,
                     cycles=((60, 3e-3, 0.1),), batch_size=16, warmup=5)
    made = train_generator(gen_dir, recipe)
    first, last = made["loss_every_50_steps"][0], made["loss_every_50_steps"][-1]
    assert last < 0.6 * first, made["loss_every_50_steps"]
    assert verify_manifest(gen_dir)["steps"] == 60
    generator = demo_generator(gen_dir)
    assert isinstance(generator, TransformersGenerator) and generator.format.mode == "tags"

    checked = train_generator(tmp_path / "checked", replace(recipe, cycles=((30, 1e-3, 0.0),)),
                              replace(TRACE_RECIPE, check_first=1.0), base=gen_dir)  # from the weights just made
    assert checked["data"]["from"]["weights_sha256"] == verify_manifest(gen_dir)["weights_sha256"]
    assert checked["data"]["trace_recipe"]["check_first"] == 1.0 and checked["steps"] == 30
    assert checked["loss_every_50_steps"][-1] < first  # it starts from trained weights, not from scratch
    assert isinstance(demo_generator(tmp_path / "checked"), TransformersGenerator)

    problems = [countdown_problem(list(n), pid=f"t{i}") for i, n in enumerate(load_split("train")[:2])]
    records = label_paths(generator, problems, paths_per_problem=2, rollouts=2, seed=0)
    assert len(records) == 4
    for rec in records:
        n = len(rec["completions"])
        assert 1 <= n <= 8 and len(rec["labels"]) == len(rec["soft_labels"]) == len(rec["exact"]) == n
        assert all(0.0 <= v <= 1.0 for v in rec["soft_labels"]) and rec["labels"] == [v > 0 for v in rec["soft_labels"]]
        assert set(rec["factors"]) <= set(DEMO_FACTORS)
    assert label_paths(generator, problems, 2, 2, seed=0) == records  # the seed decides the labels

    trained = train_prm(prm_dir, gen_dir, records, PRMRecipe(steps=40, batch_size=4, warmup=4))
    assert trained["loss_every_50_steps"][-1] < trained["loss_every_50_steps"][0]
    assert verify_manifest(prm_dir)["prm_config"] == {"adapter": "token-classification", "separator": "\n"}
    scorer = load_scorer(prm_dir, device="cpu")
    (scores,) = scorer.score(problems[0], [records[0]["completions"]])
    assert len(scores) == len(records[0]["completions"]) and all(0.0 <= s <= 1.0 for s in scores)


def test_prm_step_targets_follow_the_recipe_label():
    from demo.train_prm import stepwise

    rec = {"prompt": "q", "completions": ["a", "b", "c"], "labels": [True, True, False], "soft_labels": [0.75, 0.25, 0.0],
           "exact": [False, True, False]}
    assert stepwise(rec, "hard").labels == (True, True, False)
    assert stepwise(rec, "majority").labels == (True, False, False)
    assert stepwise(rec, "exact").labels == (False, True, False)
    with pytest.raises(ValueError, match="one of hard, majority, exact, not 'soft'"):
        stepwise(rec, "soft")


@pytest.mark.parametrize("native", [False, True])
def test_demo_training_uses_bfloat16_only_where_the_cpu_computes_it_natively(monkeypatch, native):
    """On a CPU without AVX512-BF16 or AMX, bfloat16 autocast is emulated: a 32-trace batch of the demo generator took
    30.5 s under it against 1.4 s in float32, so `train-demo` would have run for days there."""
    import torch

    from reasoning.training.prm import bf16_autocast

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    with bf16_autocast(torch.device("cpu")):
        product = torch.ones(4, 4) @ torch.ones(4, 4)
    assert product.dtype == (torch.bfloat16 if native else torch.float32)


def test_solver_paths_read_like_the_generators_steps_and_carry_the_solvers_labels():
    """`train-demo --prm-solver-paths`: each path re-books step by step through the calculator into the same texts,
    its labels are the solver's verdicts (numbers left can still make 24; the answer is right), and with every step
    live where it can be, each path ends on 24."""
    from demo.label import solver_paths
    from demo.traces import DOMAIN
    from reasoning.domains.countdown import keeps_solvable, strip_bookkeeping
    from reasoning.types import Step

    problems = [countdown_problem(n, pid=f"p{i}") for i, n in enumerate(([3, 5, 6, 10], [4, 4, 4, 6], [1, 2, 7, 9]))]
    records = solver_paths(problems, 6, seed=1)
    assert len(records) == 18 and records == solver_paths(problems, 6, seed=1) != solver_paths(problems, 6, seed=2)
    for rec in records:
        problem = countdown_problem(rec["numbers"])
        state, verdicts = State(problem), []
        for text, factor in zip(rec["completions"], rec["factors"], strict=True):
            step = DOMAIN.observe(state, Step(strip_bookkeeping(text), factor))
            assert step.text == text
            state = state.extend(step)
            verdicts.append(DOMAIN.check(problem, step.answer) if step.terminal else keeps_solvable(problem, state.steps))
        assert state.steps[-1].terminal and len(state.steps) == 3
        assert rec["exact"] == rec["labels"] == verdicts
    assert 0 < sum(r["exact"][-1] for r in records) < len(records)  # some paths die, some reach 24
    assert all(r["exact"] == [True, True, True] for r in solver_paths(problems, 4, seed=0, live_share=1.0))
