"""The ORM adapter (sequence classification, one score per whole solution) and `--answer-selection orm`."""
from __future__ import annotations

import json

import pytest
import torch

import app
from reasoning.backends import load_generator, load_scorer
from reasoning.backends.loading import ModelLoadError
from reasoning.backends.orm import load_orm
from reasoning.search import SearchConfig, search
from reasoning.types import Problem
from tiny_models import build_all, build_sequence_classification_orm

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("orm")
    tiny = build_all(tmp_path_factory.getbasetemp() / "tiny-models")
    return tiny, build_sequence_classification_orm(root / "orm1"), build_sequence_classification_orm(
        root / "orm2", num_labels=2)


def test_orm_scores_each_whole_solution_in_unit_interval(models):
    _, one, two = models
    problem = Problem("p", "What is 6 times 7?", "42")
    paths = [["6 * 7 = 42", "the answer is 42"], ["6 + 7 = 13"], []]
    for path in (one, two):
        orm = load_orm(path, device="cpu")
        got = orm.score_outcomes(problem, paths)
        assert len(got) == 3 and all(0.0 <= s <= 1.0 for s in got) and len(set(got)) == 3
        ids = torch.tensor([orm.encode(problem.text, paths[0])])
        logits = orm.model(input_ids=ids).logits[0]
        expected = torch.sigmoid(logits[0]) if logits.numel() == 1 else torch.softmax(logits, -1)[1]
        assert got[0] == pytest.approx(float(expected), abs=1e-6)


def test_orm_refuses_a_model_that_is_not_sequence_classification(models):
    tiny, _, _ = models
    with pytest.raises(ModelLoadError, match="not a sequence-classification model"):
        load_orm(tiny.token_classification)


def test_answer_selection_orm_picks_the_finished_path_the_orm_scores_highest(models):
    """Finished paths written into a tree by hand; the search's own answer choice reads them with the real ORM."""
    from reasoning.domains import get_domain
    from reasoning.factors import load_catalog
    from reasoning.search import SearchContext
    from reasoning.tree import ROOT, ReasoningTree
    from reasoning.types import Step

    tiny, orm_dir, _ = models
    generator = load_generator(tiny.gpt2_tags, device="cpu", max_step_tokens=6)
    scorer = load_scorer(tiny.token_classification, device="cpu")
    orm = load_orm(orm_dir, device="cpu")
    tree = ReasoningTree(Problem("p", "What is 6 times 7?", "42"))
    finals = []
    for k, text in enumerate(["6 * 7 = 42, the answer is 42", "6 + 7 = 13, the answer is 13",
                              "so we get 6 * 7 = 41, the answer is 41", "the answer is 7"]):
        mid = tree.add_child(ROOT, Step(f"step {k}", "compute"), score=0.9, value=0.9)
        finals.append(tree.add_child(mid, Step(text, "conclude", terminal=True, answer=text.rsplit(" ", 1)[1]),
                                     score=0.5 + 0.1 * k, value=0.5 + 0.1 * k))
    scores = {n: orm.score_outcomes(tree.problem, [tree.state(n).step_texts])[0] for n in finals}
    picks = {}
    for how in ("orm", "value"):
        ctx = SearchContext(tree, generator, scorer, get_domain("math"), load_catalog(),
                            SearchConfig(answer_selection=how, budget=1), orm=orm)
        picks[how] = ctx.choose_answer()[0]
    assert max(scores, key=scores.get) != finals[-1]  # the two rules disagree here, so the check can fail
    assert picks["orm"] == max(scores, key=scores.get) and picks["value"] == finals[-1]
    assert all(tree.node(n)["meta"]["orm_score"] == pytest.approx(scores[n]) for n in finals)


def test_answer_selection_orm_without_an_orm_is_one_line(models, tmp_path, capsys):
    problems = tmp_path / "p.jsonl"
    problems.write_text(json.dumps({"id": "m", "problem": "1+1?", "answer": "2"}) + "\n")
    code = app.main(["solve", "--problems", str(problems), "--out", str(tmp_path / "o.jsonl"), "--budget", "2",
                     "--answer-selection", "orm"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["error: --answer-selection orm needs --orm DIR (a sequence-classification reward model)"]
    with pytest.raises(ValueError, match="needs an outcome reward model"):
        tiny = models[0]
        search(Problem("p", "q", "1"), load_generator(tiny.gpt2_tags, device="cpu"),
               load_scorer(tiny.token_classification, device="cpu"), SearchConfig(answer_selection="orm", budget=2))
