"""Typed node attributes: `ReasoningTree.node()` returns a NodeAttrs TypedDict, so mypy rejects a misspelt key
(which at run time would be a KeyError far from the typo, or a silent None through `.get`)."""
from __future__ import annotations

from pathlib import Path
from typing import get_type_hints

import pytest

from reasoning.tree import NODE_DEFAULTS, NodeAttrs, ReasoningTree
from reasoning.types import Problem, Step

ROOT = Path(__file__).resolve().parents[1]


def test_node_attrs_declare_exactly_the_attributes_every_node_carries():
    tree = ReasoningTree(Problem("p", "What is 2 + 2?", "4"))
    child = tree.add_child("0", Step("2 + 2 = 4", "compute", tokens=5, terminal=True, answer="4"))
    declared = set(get_type_hints(NodeAttrs))
    assert declared == {*NODE_DEFAULTS, "next_child"}
    for nid in ("0", child):
        assert set(tree.node(nid)) == declared
    restored = ReasoningTree.from_dict(tree.to_dict())
    assert set(restored.node(child)) == declared


@pytest.mark.parametrize(("statement", "error"), [
    ('tree.node("0")["scroe"]', 'TypedDict "NodeAttrs" has no key "scroe"'),
    ('tree.node("0")["pruned"] = "yes"', 'Value of "pruned" has incompatible type "str"; expected "bool"'),
    ('tree.node("0")["visits"] + ""', 'Unsupported operand types for + ("int" and "str")'),
])
def test_mypy_rejects_a_misspelt_or_mistyped_node_attribute(statement, error, monkeypatch, tmp_path):
    api = pytest.importorskip("mypy.api")
    monkeypatch.chdir(ROOT)  # mypy finds `reasoning` from the working directory and caches in .mypy_cache
    code = ("from reasoning.tree import ReasoningTree\n"
            "from reasoning.types import Problem\n"
            "tree = ReasoningTree(Problem('p', 'q'))\n"
            "ok: float | None = tree.node('0')['score']\n"
            f"{statement}\n")
    snippet = tmp_path / "snippet.py"
    snippet.write_text(code, encoding="utf-8")
    out, err, status = api.run(["--config-file", str(ROOT / "pyproject.toml"), "--no-error-summary", str(snippet)])
    assert status == 1, out + err
    lines = [line for line in out.splitlines() if ": error:" in line]
    assert len(lines) == 1 and error in lines[0] and lines[0].startswith(f"{snippet}:5:"), out
