"""The committed check-first generator (`models/demo-generator-check-first`): the demo generator taught to judge the
numbers its first operation leaves and to correct a dead try (README, "A policy that checks its first move")."""
from __future__ import annotations

import pytest

from demo.manifest import verify_manifest
from demo.scaling import demo_config
from reasoning.backends import DEMO_GENERATOR_DIR, DEMO_PRM_DIR, load_generator, load_scorer
from reasoning.domains.countdown import committed_first_move, keeps_solvable, replay
from reasoning.problems import read_problems
from reasoning.search import search
from reasoning.tree import ROOT

CHECK_FIRST_DIR = DEMO_GENERATOR_DIR.parent / "demo-generator-check-first"
DEV = DEMO_GENERATOR_DIR.parent.parent / "reasoning" / "data" / "countdown_dev.jsonl"

pytestmark = [pytest.mark.model, pytest.mark.skipif(not (CHECK_FIRST_DIR / "manifest.json").is_file(),
                                                    reason="the check-first generator is not in this checkout")]


def _greedy_path(generator, scorer, problem):
    tree, _ = search(problem, generator, scorer, demo_config("greedy", 16, 0))  # greedy ignores the scores
    nid = ROOT
    while tree.children(nid):
        nid = tree.children(nid)[0]
    return list(tree.state(nid).steps)


def test_its_manifest_matches_the_weights_and_records_every_stage_from_the_demo_generator():
    manifest = verify_manifest(CHECK_FIRST_DIR)
    assert manifest["parameters"] <= 10_000_000
    assert manifest["data"]["from"]["dir"] == "models/demo-generator"
    assert manifest["data"]["from"]["weights_sha256"] == verify_manifest(DEMO_GENERATOR_DIR)["weights_sha256"]
    stages = manifest["lineage"]
    assert [s["stage"] for s in stages] == [1, 2, 3, 4]
    assert stages[-1]["weights_sha256"] == manifest["weights_sha256"]  # the last stage is the committed weights
    assert all("--check-first 1" in s["command"] and "--wide-boards 20" in s["command"] for s in stages)


def test_its_greedy_path_judges_each_first_try_and_keeps_live_moves_more_often_than_the_demo_generator():
    """Each first try is followed by a verdict on the numbers the calculator says it leaves; a try called dead is
    corrected. On the first 20 dev problems (never trained on), the first operation its greedy path keeps is live
    more often than the committed demo generator's."""
    problems = read_problems(DEV)[:20]
    checker = load_generator(CHECK_FIRST_DIR, device="cpu")
    plain = load_generator(DEMO_GENERATOR_DIR, device="cpu")
    scorer = load_scorer(DEMO_PRM_DIR, device="cpu")
    kept = {"check-first": 0, "plain": 0}
    verdicts = 0
    for problem in problems:
        steps = _greedy_path(checker, scorer, problem)
        for k in range(1, len(steps)):
            if steps[k].factor == "verify" and " make 24" in steps[k].text and k < 8:
                verdicts += 1
                left = replay(problem, steps[:k]).left_text()
                assert steps[k].text.startswith(left), (steps[k - 1].text, steps[k].text)
                if "cannot" in steps[k].text and k + 1 < len(steps):
                    assert steps[k + 1].factor == "correct"
        first = committed_first_move(problem, steps)
        kept["check-first"] += first is not None and keeps_solvable(problem, first)
        steps = _greedy_path(plain, scorer, problem)
        first = committed_first_move(problem, steps)
        kept["plain"] += first is not None and keeps_solvable(problem, first)
    assert verdicts >= len(problems)
    assert kept["check-first"] > kept["plain"], kept
