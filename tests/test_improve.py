"""Self-play rounds: verified trajectories and step values read from literal trees, the lineage folder's guards, and
a whole round on the demo models (search run, fine-tuned generator, retrained PRM, held-out runs, manifest),
resumed after a kill in the middle of a stage."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.improve import (
    ImproveError,
    Improver,
    Recipe,
    improve,
    open_lineage,
    step_values,
    verified_trajectories,
)
from reasoning.problems import read_problems
from reasoning.tree import ReasoningTree
from reasoning.types import Problem, Step
from storage.runs import Runs

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "reasoning" / "data"


def countdown_tree() -> ReasoningTree:
    """Two answers under one first step (one right, one wrong) and a wrong answer under the other."""
    t = ReasoningTree(read_problems(DATA / "countdown_eval.jsonl")[0])
    a = t.add_child("0", Step("first", "compute"))
    t.add_child(a, Step("right", "conclude", terminal=True, answer="RIGHT"))
    t.add_child(a, Step("wrong", "conclude", terminal=True, answer="1+1"))
    b = t.add_child("0", Step("other", "compute"))
    t.add_child(b, Step("wrong too", "conclude", terminal=True, answer="2+2"))
    return t


def test_trajectories_and_step_values_follow_the_gold_checker(monkeypatch):
    t = countdown_tree()
    from reasoning.domains import get_domain

    domain = get_domain("countdown")
    monkeypatch.setattr(type(domain), "check", lambda self, problem, answer: answer == "RIGHT")
    assert verified_trajectories(t, 4) == [(Step("first", "compute"), Step("right", "conclude"))]
    recs = {tuple(r["completions"]): (r["labels"], r["soft_labels"]) for r in step_values(t)}
    assert recs[("first", "right")] == ([True, True], [0.5, 1.0])
    assert recs[("first", "wrong")] == ([True, False], [0.5, 0.0])
    assert recs[("other", "wrong too")] == ([False, False], [0.0, 0.0])


def test_a_lineage_folder_refuses_another_lineage(tmp_path):
    probs = [Problem("a", "1+1?", "2"), Problem("b", "2+2?", "4")]
    open_lineage(tmp_path / "lin", "g", "p", probs[:1], probs[1:], Recipe())
    again = open_lineage(tmp_path / "lin", "g", "p", probs[:1], probs[1:], Recipe())
    assert again.generator == "g"
    with pytest.raises(ImproveError, match="another lineage"):
        open_lineage(tmp_path / "lin", "g", "p", probs[:1], probs[1:], Recipe(budget=8))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x").write_text("x")
    with pytest.raises(ImproveError, match="not empty"):
        open_lineage(tmp_path / "other", "g", "p", probs[:1], probs[1:], Recipe())


@pytest.mark.slow
def test_a_round_on_the_demo_models_resumes_after_a_kill(tmp_path, store, demo_models):
    from reasoning.backends import DEMO_GENERATOR_DIR, DEMO_PRM_DIR, load_generator, load_scorer
    from reasoning.factors import load_catalog

    if not store.url.startswith("sqlite"):
        pytest.skip("one database is enough for the round itself")
    train = read_problems(DATA / "countdown_train.jsonl")[:8]
    held = read_problems(DATA / "countdown_eval.jsonl")[:4]
    recipe = Recipe(budget=12, eval_budgets=(4, 8), min_trajectories=2, sft_epochs=1.0, prm_epochs=1.0,
                    eval_algorithms=("greedy", "mcts"))
    out = tmp_path / "lin"
    gen_dir, prm_dir = str(Path(DEMO_GENERATOR_DIR).resolve()), str(Path(DEMO_PRM_DIR).resolve())
    loaded: list[str] = []

    def load(g: str, p: str):
        loaded.append(g)
        if (g, p) == (gen_dir, prm_dir):
            return demo_models
        return load_generator(g, catalog=load_catalog()), load_scorer(p)

    def improver() -> Improver:
        return Improver(out, Runs(store), train, held, recipe, open_lineage(out, gen_dir, prm_dir, train, held,
                                                                             recipe), load)

    class Killed(Exception):
        pass

    first = improver()
    real_data = first.data

    def killed_after_search(k, run_id):  # a kill between the training search and the data stage
        raise Killed

    first.data = killed_after_search  # type: ignore[method-assign]
    with pytest.raises(Killed):
        improve(first, 1)
    assert (out / "round-1" / "search.json").exists() and not (out / "round-1" / "data.json").exists()
    search_run = json.loads((out / "round-1" / "search.json").read_text())["run"]
    del real_data
    lineage = improve(improver(), 1)  # resumes: the search is not run again
    items = Runs(store).results(search_run)
    assert len(items) == 8 and len({r.problem_id for r in items}) == 8 and all(r.status == "done" for r in items)
    m = json.loads((out / "round-1" / "manifest.json").read_text())
    assert m["parent_round"] == 0 and m["data"]["trajectories"] >= 2 and m["training_run"] == search_run
    assert set(m["metrics"]) == {"greedy@16", "mcts@4", "mcts@8"}
    assert all(v["problems"] == 4 for v in m["metrics"].values())
    greedy = m["metrics"]["greedy@16"]  # the policy's first move: as written, and the one its path keeps
    assert greedy["first_moves"] == 4
    assert {greedy["first_move_solvable"] * 4, greedy["committed_first_move_solvable"] * 4} <= {0, 1, 2, 3, 4}
    gen = json.loads((out / "round-1" / "generator" / "manifest.json").read_text())
    assert gen["lineage"] == {"lineage": lineage.id, "round": 1, "parent_round": 0}
    assert gen["recommended_search"] and gen["weights_sha256"]
    assert lineage.best_round in (0, 1) and [r["round"] for r in lineage.rounds] == [0, 1]
    names = {r.name for r in Runs(store).all()}
    assert f"improve {lineage.id} round 1: mcts@8 (held out)" in names  # the Runs page compares round with round


WORD_TRAIN = [
    ("w1", "Tom has 2 apples and buys 3 more. How many apples does he have?", "5", "2 + 3 = 5, so \\boxed{5}"),
    ("w2", "A box holds 4 pens. How many pens are in 2 boxes?", "8", "4 * 2 = 8, so \\boxed{8}"),
    ("w3", "Sara had 9 stickers and gave away 4. How many are left?", "5", "9 - 4 = 5, so \\boxed{5}"),
    ("w4", "Ben reads 6 pages a day. How many pages in 2 days?", "12", "6 * 2 = 12, so \\boxed{12}"),
]
WORD_HELD = [("h1", "Ann has 3 cats and gets 4 more. How many cats now?", "7"),
             ("h2", "A bag has 10 nuts and 6 are eaten. How many are left?", "4")]


@pytest.mark.slow
@pytest.mark.model
def test_a_round_with_a_tiny_qwen2_on_word_problems(tmp_path, tiny):
    """A whole round for a causal LM that is not the demo's: a tiny Qwen2 (first taught the training solutions, so
    that its searches find some) on word problems, answers checked by math-verify against the gold answers, the
    generator fine-tuned on the verified trajectories, the tiny PRM retrained, both evaluated on held-out problems."""
    from reasoning.backends import load_generator, load_scorer
    from reasoning.domains.math import answers_match
    from reasoning.factors import load_catalog
    from reasoning.training.sft import Demonstration, SFTConfig, finetune
    from storage.store import Store

    catalog = load_catalog().with_enabled(["conclude"])
    train = [Problem(pid, text, ans, "math") for pid, text, ans, _ in WORD_TRAIN]
    held = [Problem(pid, text, ans, "math") for pid, text, ans in WORD_HELD]
    start = tmp_path / "qwen2-taught"
    finetune(tiny.qwen2_cues, [Demonstration(p, (Step(sol, "conclude"),)) for p, (*_, sol) in zip(train, WORD_TRAIN,
                                                                                                 strict=True)],
             start, SFTConfig(steps=150, batch_size=4, lr=3e-3), catalog=catalog)
    recipe = Recipe(algorithm="best_of_n", budget=4, eval_budgets=(2, 4), min_trajectories=1, sft_epochs=1.0,
                    prm_epochs=1.0, eval_algorithms=("greedy", "best_of_n"))
    out = tmp_path / "lin"

    def load(g: str, p: str):
        return load_generator(g, catalog=catalog, max_step_tokens=16), load_scorer(p)

    with Store(f"sqlite:///{tmp_path / 'runs.db'}") as store:
        lineage = open_lineage(out, str(start), str(tiny.token_classification), train, held, recipe)
        done = improve(Improver(out, Runs(store), train, held, recipe, lineage, load, catalog=catalog), 1)
        m = json.loads((out / "round-1" / "manifest.json").read_text())
        assert [r["round"] for r in done.rounds] == [0, 1]
        assert m["data"]["problems_with_one"] >= 2 and m["data"]["prm_paths"] >= m["data"]["trajectories"]
        for line in (out / "round-1" / "sft.jsonl").read_text().splitlines():  # only verified answers are taught
            demo = Demonstration.from_json(json.loads(line))
            assert demo.problem.id in {p.id for p in train}
            assert answers_match(get_domain_answer(demo.steps[-1].text), demo.problem.answer)
        assert set(m["metrics"]) == {"greedy@16", "best_of_n@4"}
        assert all(v["problems"] == 2 for v in m["metrics"].values())
        assert "first_move_solvable" not in m["metrics"]["greedy@16"]  # a Countdown figure only
        assert load_generator(str(out / "round-1" / "generator"), catalog=catalog) is not None


def get_domain_answer(text: str) -> str | None:
    from reasoning.domains.math import extract_answer

    return extract_answer(text)


@pytest.mark.model
def test_lora_fine_tuning_trains_adapters_only_and_saves_a_plain_model(tmp_path, tiny):
    """`--lora-rank`: LoRA adapters (peft) on the linear layers are trained and merged: the saved model has the base's
    tensors (no adapter keys, loadable without peft), only linear weights moved, and the demonstrations' loss fell."""
    pytest.importorskip("peft")
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from reasoning.backends import load_generator
    from reasoning.backends.loading import load_tokenizer
    from reasoning.factors import load_catalog
    from reasoning.prompting import PromptFormat
    from reasoning.training.sft import Demonstration, SFTConfig, encode, finetune, next_token_loss, render

    catalog = load_catalog().with_enabled(["conclude"])
    demos = [Demonstration(Problem(pid, text, ans, "math"), (Step(sol, "conclude"),))
             for pid, text, ans, sol in WORD_TRAIN]
    out = tmp_path / "lora"
    m = finetune(tiny.qwen2_cues, demos, out, SFTConfig(steps=40, batch_size=4, lr=5e-3, lora_rank=4),
                 catalog=catalog)
    assert m["recipe"]["lora_rank"] == 4 and m["recipe"]["kind"].startswith("LoRA rank 4, merged")
    base, tuned = load_file(tiny.qwen2_cues / "model.safetensors"), load_file(out / "model.safetensors")
    assert set(base) == set(tuned)  # merged: no lora_A / lora_B tensors left
    moved = [k for k in base if not torch.equal(base[k], tuned[k])]
    assert moved and all(k.endswith("proj.weight") for k in moved)  # embeddings, norms and biases untouched

    tokenizer = load_tokenizer(out, False)
    fmt = PromptFormat(mode="cues")
    data = [encode(tokenizer, render(d, fmt, catalog), 512) for d in demos]

    def loss(path) -> float:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, use_safetensors=True)
        with torch.no_grad():
            return float(next_token_loss(model, data, tokenizer.pad_token_id or 0))

    assert loss(out) < 0.5 * loss(tiny.qwen2_cues)
    assert load_generator(str(out), catalog=catalog) is not None


def test_a_lineage_begun_before_a_recipe_setting_existed_still_resumes(tmp_path):
    probs = read_problems(DATA / "countdown_eval.jsonl")[:3]
    first = open_lineage(tmp_path / "lin", "g", "p", probs[:1], probs[1:], Recipe())
    stored = json.loads((tmp_path / "lin" / "lineage.json").read_text())
    del stored["recipe"]["lora_rank"]  # as written before --lora-rank existed
    (tmp_path / "lin" / "lineage.json").write_text(json.dumps(stored))
    assert open_lineage(tmp_path / "lin", "g", "p", probs[:1], probs[1:], Recipe()).id == first.id
    with pytest.raises(ImproveError, match="recipe differ"):
        open_lineage(tmp_path / "lin", "g", "p", probs[:1], probs[1:], Recipe(lora_rank=8))


def test_fine_tuning_targets_the_close_tag_where_the_generator_writes_it():
    """A tag-trained generator ends a step by writing its close tag right after its own words; the calculator then
    adds its bookkeeping before the tag. Self-play's fine-tuning data must put the close-tag target there, exactly as
    the demo generator was trained (labels identical), not at the tag's place after the bookkeeping, a position the
    model never occupies at search time: there its loss on its own kind of trace was 1.52, not 0.20."""
    import random

    import torch
    from transformers import AutoModelForCausalLM

    from demo.traces import TraceRecipe, make_trace
    from demo.traces import render as demo_render
    from reasoning.backends.loading import load_tokenizer
    from reasoning.factors import load_catalog
    from reasoning.problems import countdown_problem
    from reasoning.prompting import PromptFormat
    from reasoning.training.sft import IGNORE, Demonstration, encode, next_token_loss, prompt_mode, render

    gen_dir = ROOT / "models" / "demo-generator"
    catalog, tokenizer = load_catalog(), load_tokenizer(gen_dir, False)
    fmt = PromptFormat(mode=prompt_mode(tokenizer, catalog))
    assert fmt.mode == "tags"
    rng, clean = random.Random(0), TraceRecipe(dead_end=0.0, slip=0.0, check_good=0.0)
    ours, theirs = [], []
    for numbers in ([2, 7, 12, 13], [1, 3, 4, 6], [3, 3, 8, 8], [4, 4, 10, 10]):
        problem = countdown_problem(numbers)
        trace = make_trace(problem, rng, clean)
        ours.append(encode(tokenizer, render(Demonstration(problem, tuple(t.step for t in trace)), fmt, catalog)))
        theirs.append(encode(tokenizer, demo_render(problem, trace, catalog), strict=True))
    assert ours == theirs
    ids, labels = ours[0]
    close = tokenizer.convert_tokens_to_ids("</ACT_compute>")
    at = labels.index(close)
    assert ids[at] != close and tokenizer.decode([ids[at]]).strip().startswith("(")  # the bookkeeping's first token
    assert labels[ids.index(close)] == IGNORE  # the tag's own place, after the bookkeeping, is context

    model = AutoModelForCausalLM.from_pretrained(gen_dir, dtype=torch.float32, use_safetensors=True).eval()
    with torch.no_grad():
        loss = float(next_token_loss(model, ours, tokenizer.pad_token_id or 0))
    assert loss < 0.5
