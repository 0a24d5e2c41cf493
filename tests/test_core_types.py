"""Tests of the tree's serialisation, the thought-factor catalog and problem parsing."""
from __future__ import annotations

import json

import pytest

from reasoning.factors import Catalog, load_catalog
from reasoning.problems import ProblemFormatError, parse_problem_text, problem_from_record, read_problems
from reasoning.prompting import PromptFormat
from reasoning.tree import ROOT, ReasoningTree
from reasoning.types import Problem, State, Step


def test_default_catalog_has_the_seed_designs_factors_with_tags():
    catalog = load_catalog()
    assert catalog.names == ["restate", "decompose", "propose", "compute", "verify", "correct", "conclude"]
    assert all(f.cue and f.tags and f.tags[0].startswith("<ACT_") for f in catalog)
    assert catalog.get("conclude").terminal


def test_catalog_enable_and_cue_edits_are_validated(tmp_path):
    catalog = load_catalog().with_enabled(["propose", "verify"]).with_cue("verify", "Check: ")
    assert [f.name for f in catalog.enabled] == ["propose", "verify"]
    assert catalog.get("verify").cue == "Check: "
    with pytest.raises(ValueError, match="unknown thought factors"):
        catalog.with_enabled(["dream"])
    path = tmp_path / "c.yaml"
    path.write_text("name: tiny\nfactors:\n  - {name: a, cue: 'A: '}\n  - {name: a, cue: 'B: '}\n")
    with pytest.raises(ValueError, match="duplicate thought factor names"):
        load_catalog(path)
    path.write_text("name: tiny\nfactors:\n  - {name: a, cue: 'A: '}\n")
    assert load_catalog(path).names == ["a"]
    assert Catalog.from_dict(catalog.to_dict()) == catalog
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(ValueError, match="not valid JSON: line 1"):
        load_catalog(bad)


def test_tree_round_trips_through_a_dict():
    tree = ReasoningTree(Problem("p", "2+2?", "4"))
    a = tree.add_child(ROOT, Step("Let me try 2+2=4", "propose"), prior=0.3, score=0.9, value=0.9)
    b = tree.add_child(a, Step("So the answer is 4", "conclude", terminal=True, answer="4"), score=0.8)
    tree.backup(b, 0.8)
    tree.set_pruned(a)
    again = ReasoningTree.from_dict(json.loads(json.dumps(tree.to_dict())))
    assert again.problem == tree.problem
    assert {n: again.node(n) for n in again.nodes()} == {n: tree.node(n) for n in tree.nodes()}
    assert again.add_child(ROOT, Step("x", "verify")) == "0.1"  # ids keep counting after a reload


def test_state_and_prompt_formats():
    factors = {f.name: f for f in load_catalog()}
    state = State(Problem("p", "Q?"), (Step("a", "propose"), Step("b", "verify")))
    assert PromptFormat(mode="tags").prefix(state, factors) == "Q?\n<ACT_propose>a</ACT_propose>\n<ACT_verify>b</ACT_verify>\n"
    assert PromptFormat(mode="cues").prefix(state, factors) == "Q?\na\n\nb\n\n"
    assert PromptFormat(mode="tags").step_start(factors["verify"]) == "<ACT_verify>"
    assert PromptFormat(mode="cues").stop_string(factors["verify"]) == "\n\n"


@pytest.mark.parametrize("text,numbers,target", [
    ("Use 4 7 8 8 to make 24.", [4, 7, 8, 8], 24),
    ("4 7 8 8", [4, 7, 8, 8], 24),
    ("3, 3, 8, 8 make 24", [3, 3, 8, 8], 24),
    ("use 2 5 10 to reach 20", [2, 5, 10], 20),
])
def test_free_text_countdown_problems_are_recognised(text, numbers, target):
    p = parse_problem_text(text)
    assert p.domain == "countdown" and p.meta == {"numbers": numbers, "target": target}


def test_other_free_text_is_a_math_problem():
    p = parse_problem_text("Natalia sold 48 clips. How many?")
    assert p.domain == "math" and p.text.startswith("Natalia")
    with pytest.raises(ProblemFormatError, match="empty"):
        parse_problem_text("   ")


def test_problem_records_in_every_shape(tmp_path):
    gsm = problem_from_record({"question": "How many?", "answer": "2+2=4\n#### 4"})
    assert gsm.text == "How many?" and gsm.answer.endswith("#### 4")
    cd = problem_from_record({"id": "c1", "domain": "countdown", "numbers": [1, 2, 3, 4], "target": 24})
    assert cd.id == "c1" and cd.meta["numbers"] == [1, 2, 3, 4]
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "a", "problem": "x"}\n\n{"id": "b", "numbers": [1, "two"]}\n')
    with pytest.raises(ProblemFormatError, match=r"p.jsonl:3: field 'numbers'"):
        read_problems(path)
    path.write_text('{"id": "a", "problem": "x"}\n{"id": "b", "problem": \n')
    with pytest.raises(ProblemFormatError, match=r"p.jsonl:2: invalid JSON"):
        read_problems(path)


def test_gsm8k_file_reads_as_problems():
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k_test.jsonl"
    if not path.exists():
        pytest.skip(f"{path} is not present (shared data sits beside the checkout)")
    problems = read_problems(path)
    assert len(problems) == 1319 and all(p.answer and "####" in p.answer for p in problems)
    from reasoning.domains.math import answers_match

    assert answers_match("18", problems[0].answer)
