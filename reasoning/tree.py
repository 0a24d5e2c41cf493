"""The reasoning tree: an nx.DiGraph with dotted node ids ("0", "0.2", "0.2.1") and typed node attributes."""
from __future__ import annotations

import copy
import threading
from collections.abc import Iterator, Mapping
from typing import Any, TypedDict

import networkx as nx

from .aggregation import aggregate
from .types import Problem, State, Step, StepMeta

ROOT = "0"
ORIGINS = ("root", "generated", "edited", "human", "imported")


class NodeAttrs(TypedDict):
    """A node's attributes, as `ReasoningTree.node()` returns them: a misspelt key is a type error (mypy), not a
    silent None. The dict is the graph's own (networkx keeps attributes in a plain dict), so writes go to the tree."""

    parent: str | None
    depth: int
    factor: str | None
    text: str
    origin: str  # one of ORIGINS
    prior: float | None  # P(S, a) of this node's factor at its parent
    visits: int
    value_sum: float
    score: float | None  # PRM score of this step (read on the root-to-node path)
    value: float | None  # aggregated PRM value of the root-to-node path
    terminal: bool
    answer: str | None
    pruned: bool
    tokens: int
    created: int  # creation order within the tree
    iteration: int  # search iteration that created it
    factor_prior: dict[str, float] | None  # {factor: P(S, a)} computed when this node was expanded
    provenance: dict[str, Any] | None  # model ids, sampling params, seed
    meta: StepMeta | None  # what the step's meta carries (reasoning.types.StepMeta)
    next_child: int  # the next child's index: ids are never reused, even after pruning


# Every node carries these attributes (NodeAttrs, less next_child; ARCHITECTURE.md, "Contracts", node attributes);
# storage and export rely on the names.
NODE_DEFAULTS: dict[str, Any] = {
    "parent": None,
    "depth": 0,
    "factor": None,
    "text": "",
    "origin": "generated",
    "prior": None,  # P(S, a) of this node's factor at its parent
    "visits": 0,
    "value_sum": 0.0,
    "score": None,  # PRM score of this step (read on the root-to-node path)
    "value": None,  # aggregated PRM value of the root-to-node path
    "terminal": False,
    "answer": None,
    "pruned": False,
    "tokens": 0,
    "created": 0,  # creation order within the tree
    "iteration": 0,  # search iteration that created it
    "factor_prior": None,  # {factor: P(S, a)} computed when this node was expanded
    "provenance": None,  # model ids, sampling params, seed
    "meta": None,
}


def samples(attrs: Mapping[str, Any]) -> int:
    """How many times the generator wrote a node's step at its parent: 1, plus the identical samples a search merged
    into it (`meta["samples"]`)."""
    return int((attrs.get("meta") or {}).get("samples", 1))


class ReasoningTree:
    """A tree of reasoning steps for one problem. Not shared between concurrent searches."""

    def __init__(self, problem: Problem, graph: nx.DiGraph | None = None):
        self.problem = problem
        self.lock = threading.RLock()
        if graph is None:
            graph = nx.DiGraph()
            graph.add_node(ROOT, **{**NODE_DEFAULTS, "text": problem.text, "origin": "root", "next_child": 0})
        self.graph = graph

    # -- reading -------------------------------------------------------------------------------
    def __contains__(self, nid: str) -> bool:
        return nid in self.graph

    def __len__(self) -> int:
        return self.graph.number_of_nodes()

    def node(self, nid: str) -> NodeAttrs:
        try:
            return self.graph.nodes[nid]
        except KeyError:
            raise KeyError(f"no node {nid!r} in this tree") from None

    def children(self, nid: str, include_pruned: bool = False) -> list[str]:
        kids = sorted(self.graph.successors(nid), key=lambda c: self.graph.nodes[c]["created"])
        return kids if include_pruned else [c for c in kids if not self.graph.nodes[c]["pruned"]]

    def parent(self, nid: str) -> str | None:
        return self.node(nid)["parent"]

    def path(self, nid: str) -> list[str]:
        """Node ids from the root down to `nid`, both included."""
        out = [nid]
        while (p := self.node(out[-1])["parent"]) is not None:
            out.append(p)
        return out[::-1]

    def step(self, nid: str) -> Step:
        """The node as a Step; the generator's token ids ride along (when it wrote them) so that a backend can
        rebuild the prefix from the ids it wrote instead of re-tokenising the text."""
        a = self.node(nid)
        ids = (a["meta"] or {}).get("token_ids")
        meta: StepMeta = {"token_ids": list(ids)} if ids is not None else {}
        return Step(a["text"], a["factor"], a["tokens"], None, a["terminal"], a["answer"], meta)

    def state(self, nid: str) -> State:
        return State(self.problem, tuple(self.step(n) for n in self.path(nid)[1:]))

    def q(self, nid: str) -> float:
        a = self.node(nid)
        return a["value_sum"] / a["visits"] if a["visits"] else 0.0

    def invalid(self, nid: str) -> str | None:
        """Why the domain flagged node `nid`'s step invalid (Countdown: an operand not among the numbers left, a wrong
        result), or None."""
        why = (self.node(nid)["meta"] or {}).get("invalid")
        return str(why) if why else None

    def path_scores(self, nid: str) -> list[float]:
        return [s for n in self.path(nid)[1:] if (s := self.node(n)["score"]) is not None]

    def subtree(self, nid: str) -> list[str]:
        return [nid, *nx.descendants(self.graph, nid)]

    def nodes(self, include_pruned: bool = True) -> Iterator[str]:
        for n, a in self.graph.nodes(data=True):
            if include_pruned or not a["pruned"]:
                yield n

    def is_live(self, nid: str) -> bool:
        """A node is live when neither it nor an ancestor is pruned."""
        return not any(self.node(n)["pruned"] for n in self.path(nid))

    def terminals(self) -> list[str]:
        return [n for n in self.nodes(include_pruned=False) if self.node(n)["terminal"] and self.is_live(n)]

    def best_path(self, aggregation: str = "min") -> list[str]:
        """The root-to-node path of the best live answer by model-side value, else the most visited chain. An answer
        reached through a step the domain flagged invalid (Countdown's calculator rejected it) is never the best."""
        finals = [n for n in self.terminals() if self.node(n)["answer"] is not None
                  and not any(self.invalid(m) for m in self.path(n))]
        if finals:
            best = max(finals, key=lambda n: (aggregate(self.path_scores(n), aggregation), -self.node(n)["created"]))
            return self.path(best)
        chain = [ROOT]
        while kids := self.children(chain[-1]):
            chain.append(max(kids, key=lambda c: (self.node(c)["visits"], self.node(c)["value"] or 0.0)))
        return chain

    # -- writing -------------------------------------------------------------------------------
    def add_child(self, parent: str, step: Step, *, origin: str = "generated", **attrs: Any) -> str:
        """Add a step under `parent` and return its new id; ids are never reused, even after pruning."""
        if origin not in ORIGINS or origin == "root":
            raise ValueError(f"origin must be one of {ORIGINS[1:]}, not {origin!r}")
        unknown = set(attrs) - set(NODE_DEFAULTS)
        if unknown:
            raise ValueError(f"unknown node attributes {sorted(unknown)}")
        with self.lock:
            pa = self.node(parent)
            nid = f"{parent}.{pa['next_child']}"
            pa["next_child"] += 1
            node = {
                **NODE_DEFAULTS,
                "parent": parent,
                "depth": pa["depth"] + 1,
                "factor": step.factor,
                "text": step.text,
                "origin": origin,
                "terminal": step.terminal,
                "answer": step.answer,
                "tokens": step.tokens,
                "created": self.graph.number_of_nodes(),
                "next_child": 0,
                **attrs,
            }
            self.graph.add_node(nid, **node)
            self.graph.add_edge(parent, nid, factor=step.factor)
        return nid

    def set_pruned(self, nid: str, pruned: bool = True) -> None:
        if nid == ROOT:
            raise ValueError("the root cannot be pruned")
        with self.lock:
            self.node(nid)["pruned"] = pruned

    def backup(self, nid: str, value: float) -> list[str]:
        """Add one visit of `value` to `nid` and every ancestor; returns the updated ids."""
        with self.lock:
            touched = self.path(nid)
            for n in touched:
                a = self.graph.nodes[n]
                a["visits"] += 1
                a["value_sum"] += value
        return touched

    # -- copying -------------------------------------------------------------------------------
    def snapshot(self) -> ReasoningTree:
        """A deep copy, safe to read while the search goes on."""
        with self.lock:
            return ReasoningTree(self.problem, copy.deepcopy(self.graph))

    def to_dict(self) -> dict[str, Any]:
        with self.lock:
            nodes = [{"id": n, **copy.deepcopy(a)} for n, a in self.graph.nodes(data=True)]
        nodes.sort(key=lambda d: d["created"])
        p = self.problem
        problem = {"id": p.id, "text": p.text, "answer": p.answer, "domain": p.domain, "meta": p.meta}
        return {"problem": problem, "nodes": nodes}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReasoningTree:
        p = data["problem"]
        problem = Problem(str(p["id"]), p["text"], p.get("answer"), p.get("domain", "math"), p.get("meta") or {})
        g = nx.DiGraph()
        for raw in sorted(data["nodes"], key=lambda d: d.get("created", 0)):
            attrs = {**NODE_DEFAULTS, "next_child": 0, **{k: v for k, v in raw.items() if k != "id"}}
            g.add_node(raw["id"], **attrs)
            if attrs["parent"] is not None:
                g.add_edge(attrs["parent"], raw["id"], factor=attrs["factor"])
        for nid in g.nodes:  # keep ids unique even when next_child was not stored
            kids = [int(c.rsplit(".", 1)[1]) for c in g.successors(nid)]
            g.nodes[nid]["next_child"] = max([g.nodes[nid]["next_child"], *(k + 1 for k in kids)])
        if ROOT not in g:
            raise ValueError("a tree needs a root node '0'")
        return cls(problem, g)
