"""`python app.py bench --perf [--json FILE]`: the engine's speed, as ratios measured side by side in one run.

Every figure compares settings on the same workload (the same problems, seeds and budget) in the same process, the
settings interleaved problem by problem so that the load of a shared machine falls on all of them alike; each speed
figure stands beside the solve rate it came with. Sections are plain functions registered with `@section`; another
module adds one by defining it in a `bench/perf_*.py` file (found and imported by `run_perf`), e.g. the vLLM rows.

The results go to a table in BENCHMARKS.md (between the perf markers, with the machine and the command) and, with
`--json FILE`, to a JSON file under stable keys: `nodes_per_s` and `solve_rate` (by leaves in flight),
`kv_cache_ratio`, `prior_ratio`, `prm_batch_ratio`, `prm_round_ratio`, `prm_batch_only_ratio`,
`prm_prefix_ratio` (and `vllm_vs_transformers` from the vLLM section).
"""
from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from reasoning.protocols import Generator, Scorer
from reasoning.search import SearchConfig, search
from reasoning.tree import ROOT as TREE_ROOT
from reasoning.tree import ReasoningTree
from reasoning.types import ExpansionRequest, Problem, Step

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "BENCHMARKS.md"
BEGIN, END = "<!-- perf:begin -->", "<!-- perf:end -->"
LEAVES = (1, 8, 32)


@dataclass
class PerfRun:
    """What the sections share: arguments, problems, models (loaded once per setting), figures and table rows."""

    args: argparse.Namespace
    problems: list[Problem]
    figures: dict[str, Any] = field(default_factory=dict)
    rows: list[tuple[str, str, str]] = field(default_factory=list)
    shared: dict[str, Any] = field(default_factory=dict)
    _models: dict[tuple, Any] = field(default_factory=dict)

    def generator(self, **settings: Any):
        """The transformers generator with these backend settings (the demo generator unless --generator)."""
        from reasoning.backends import DEMO_GENERATOR_DIR, load_generator

        key = ("generator", *sorted(settings.items()))
        if key not in self._models:
            self._models[key] = load_generator(self.args.generator or DEMO_GENERATOR_DIR, device="cpu", **settings)
        return self._models[key]

    def scorer(self, **settings: Any):
        from reasoning.backends import DEMO_PRM_DIR, load_scorer

        key = ("scorer", *sorted(settings.items()))
        if key not in self._models:
            self._models[key] = load_scorer(self.args.prm or DEMO_PRM_DIR, device="cpu", **settings)
        return self._models[key]

    def config(self, **changes: Any) -> SearchConfig:
        """The scaling report's MCTS settings at `--budget`, with `changes`."""
        from demo.scaling import demo_config

        return replace(demo_config("mcts", self.args.budget, self.args.seed), **changes)

    def row(self, measure: str, result: str, note: str = "") -> None:
        self.rows.append((measure, result, note))
        print(f"{measure}: {result}  {note}".rstrip(), flush=True)


SECTIONS: dict[str, Callable[[PerfRun], None]] = {}


def section(name: str) -> Callable[[Callable[[PerfRun], None]], Callable[[PerfRun], None]]:
    """Register a benchmark section under `name` (run in registration order; `--sections` picks some)."""

    def register(fn: Callable[[PerfRun], None]) -> Callable[[PerfRun], None]:
        SECTIONS[name] = fn
        return fn

    return register


class Timed:
    """A generator or scorer wrapped to add up the seconds spent in its model calls (the engine's share)."""

    def __init__(self, inner: Any):
        self.inner, self.name, self.seconds, self.calls = inner, inner.name, 0.0, 0

    def _timed(self, fn: Callable, *args: Any, **kwargs: Any):
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started
            self.calls += 1

    def factor_prior(self, state, factors):
        return self._timed(self.inner.factor_prior, state, factors)

    def propose(self, state, factor, n, *, temperature=None, seed=None) -> list[Step]:
        return self._timed(self.inner.propose, state, factor, n, temperature=temperature, seed=seed)

    def propose_batch(self, requests: list[ExpansionRequest]) -> list[list[Step]]:
        return self._timed(self.inner.propose_batch, requests)

    def score(self, problem, paths):
        return self._timed(self.inner.score, problem, paths)

    def score_last(self, problem, paths):
        return self._timed(self.inner.score_last, problem, paths)

    def provenance(self) -> dict[str, Any]:
        return self.inner.provenance()


@dataclass
class Tally:
    """Nodes, seconds and solved problems of one setting over the workload."""

    nodes: int = 0
    seconds: float = 0.0
    model_seconds: float = 0.0
    solved: int = 0
    problems: int = 0
    trees: list[ReasoningTree] = field(default_factory=list)

    @property
    def nodes_per_s(self) -> float:
        return self.nodes / self.seconds if self.seconds else 0.0

    @property
    def solve_rate(self) -> float:
        return self.solved / self.problems if self.problems else 0.0


def run_side_by_side(run: PerfRun, settings: dict[str, tuple[Generator, Scorer, SearchConfig]],
                     problems: list[Problem], keep_trees: bool = False) -> dict[str, Tally]:
    """Each problem searched under every setting in turn (interleaved, the order reversed on every other problem so
    that a load that drifts during a problem falls on both sides alike), timing the whole search and the model calls."""
    from reasoning.domains import get_domain

    tallies = {name: Tally() for name in settings}
    for index, problem in enumerate(problems):
        order = list(settings.items())
        for name, (generator, scorer, config) in (order if index % 2 == 0 else order[::-1]):
            gen, prm = Timed(generator), Timed(scorer)
            started = time.perf_counter()
            tree, result = search(problem, gen, prm, config)
            t = tallies[name]
            t.seconds += time.perf_counter() - started
            t.model_seconds += gen.seconds
            t.nodes += result.nodes_created
            t.solved += bool(get_domain(problem.domain).check(problem, result.answer))
            t.problems += 1
            if keep_trees:
                t.trees.append(tree)
    return tallies


@section("leaves")
def leaves_in_flight(run: PerfRun) -> None:
    """MCTS nodes/s at 1, 8 and 32 leaves in flight on the held-out problems, with the solve rate of each."""
    gen, prm = run.generator(), run.scorer()
    settings = {str(n): (gen, prm, run.config(parallel_leaves=n)) for n in LEAVES}
    tallies = run_side_by_side(run, settings, run.problems, keep_trees=True)
    run.figures["nodes_per_s"] = {k: round(t.nodes_per_s, 2) for k, t in tallies.items()}
    run.figures["solve_rate"] = {k: round(t.solve_rate, 4) for k, t in tallies.items()}
    base = tallies["1"].nodes_per_s
    for k, t in tallies.items():
        run.row(f"MCTS@{run.args.budget}, {k} leaves in flight",
                f"{t.nodes_per_s:.1f} nodes/s ({t.nodes_per_s / base:.2f}x of 1 leaf)",
                f"solve rate {100 * t.solve_rate:.1f}% on {t.problems} problems")
    run.shared["trees"] = tallies["8"].trees


@section("kv_cache")
def kv_cache(run: PerfRun) -> None:
    """Expansion time with and without the node KV cache (MCTS, 8 leaves in flight, the first `--side-problems`)."""
    problems = run.problems[: run.args.side_problems]
    prm, config = run.scorer(), run.config(parallel_leaves=8)
    settings = {"cache": (run.generator(), prm, config), "none": (run.generator(kv_cache_mb=0), prm, config)}
    t = run_side_by_side(run, settings, problems)
    ratio = t["none"].model_seconds / t["cache"].model_seconds
    run.figures["kv_cache_ratio"] = round(ratio, 3)
    run.row("node KV cache, expansion (generator) time", f"{ratio:.2f}x faster with it",
            f"{t['cache'].model_seconds:.1f} s vs {t['none'].model_seconds:.1f} s on {len(problems)} problems; "
            f"solve rate {100 * t['cache'].solve_rate:.0f}% vs {100 * t['none'].solve_rate:.0f}%")


@section("prior")
def prior_from_decode(run: PerfRun) -> None:
    """A new child's factor prior read from the decode vs a separate pass (node cache off on both sides, so the
    separate pass is a real prefill as it was before the cache)."""
    problems = run.problems[: run.args.side_problems]
    prm, config = run.scorer(), run.config(parallel_leaves=8)
    settings = {"decode": (run.generator(kv_cache_mb=0), prm, config),
                "pass": (run.generator(kv_cache_mb=0, prior_from_decode=False), prm, config)}
    t = run_side_by_side(run, settings, problems)
    ratio = t["pass"].model_seconds / t["decode"].model_seconds
    run.figures["prior_ratio"] = round(ratio, 3)
    run.row("factor prior from the decode vs a separate pass", f"{ratio:.2f}x faster",
            f"generator {t['decode'].model_seconds:.1f} s vs {t['pass'].model_seconds:.1f} s (node cache off); "
            f"solve rate {100 * t['decode'].solve_rate:.0f}% vs {100 * t['pass'].solve_rate:.0f}%")


@section("prm_batch")
def prm_batch(run: PerfRun) -> None:
    """The PRM on the nodes of finished MCTS trees (8 leaves in flight), each way interleaved with one whole path
    per call (the engine before batched scoring), scores checked equal. `prm_batch_ratio`: all nodes of a tree in one
    `score_last` call (token-capped batches, depth by depth, each path fed on top of its parent's KV) vs one whole
    path per call; `prm_round_ratio`: round by round as the search sends them (each round's new nodes in one call,
    parents' KV from earlier rounds) vs one per call; `prm_batch_only_ratio` and `prm_prefix_ratio` split the
    rounds' gain into batching alone (whole paths) and the prefix cache alone."""
    trees = run.shared.get("trees") or run_side_by_side(
        run, {"8": (run.generator(), run.scorer(), run.config(parallel_leaves=8))},
        run.problems[: run.args.side_problems], keep_trees=True)["8"].trees
    cached, whole = run.scorer(), run.scorer(kv_cache_mb=0)
    at_once, rounds, hits = Split(), Split(), 0
    for tree in trees:
        by_iteration: dict[int, list[list[str]]] = {}
        for nid in tree.nodes():
            if nid != TREE_ROOT:
                by_iteration.setdefault(tree.node(nid)["iteration"], []).append(tree.state(nid).step_texts)
        cached.kv_cache.clear()
        at_once.measure({"tree": cached, "whole": whole}, whole, tree.problem,
                        [p for group in by_iteration.values() for p in group])
        cached.kv_cache.clear()
        before = cached.kv_cache.hits
        for iteration in sorted(by_iteration):
            rounds.measure({"search": cached, "round": whole}, whole, tree.problem, by_iteration[iteration])
        hits += cached.kv_cache.hits - before
    tree_ratio, round_ratio = at_once.ratio("tree"), rounds.ratio("search")
    batch_only, prefix = rounds.ratio("round"), rounds.seconds["round"] / max(rounds.seconds["search"], 1e-9)
    run.figures.update(prm_batch_ratio=round(tree_ratio, 3), prm_round_ratio=round(round_ratio, 3),
                       prm_batch_only_ratio=round(batch_only, 3), prm_prefix_ratio=round(prefix, 3))
    run.row("PRM, all nodes of a tree in one call (token-capped batches, depth by depth on parents' KV) vs one "
            "whole path per call", f"{tree_ratio:.2f}x faster",
            f"{at_once.paths} paths of {len(trees)} MCTS trees (8 leaves), cap {cached.batch_tokens} tokens; "
            f"{at_once.seconds['tree']:.1f} s vs {at_once.seconds['alone']:.1f} s (whole paths, one call per tree: "
            f"{at_once.ratio('whole'):.2f}x)")
    run.row("PRM, each search round's new nodes in one call (parents' KV from earlier rounds) vs one whole path "
            "per call", f"{round_ratio:.2f}x faster",
            f"{rounds.calls} rounds of {rounds.paths / max(1, rounds.calls):.1f} paths on average; "
            f"{rounds.seconds['search']:.1f} s vs {rounds.seconds['alone']:.1f} s; the parent's KV (the question's, "
            f"for a first step) found for {hits} of {rounds.paths} paths")
    run.row("PRM rounds: batching alone (whole paths) / the prefix cache alone", f"{batch_only:.2f}x / {prefix:.2f}x",
            "every way's scores equal one path per call's to 1e-3")


@dataclass
class Split:
    """Seconds to score groups of paths by each named scorer, one call per group, vs one call per path by the
    reference scorer (`alone`); every way's scores must agree with the reference to 1e-3."""

    seconds: dict[str, float] = field(default_factory=lambda: {"alone": 0.0})
    paths: int = 0
    calls: int = 0

    def measure(self, ways: dict[str, Scorer], reference: Scorer, problem: Problem, paths: list[list[str]]) -> None:
        got: dict[str, list[float]] = {}
        for name, scorer in [*ways.items(), ("alone", reference)][:: 1 if self.calls % 2 == 0 else -1]:
            started = time.perf_counter()
            if name == "alone":
                got[name] = [reference.score_last(problem, [path])[0] for path in paths]
            else:
                got[name] = scorer.score_last(problem, paths)
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
        for name, scores in got.items():
            if any(abs(a - b) > 1e-3 for a, b in zip(scores, got["alone"], strict=True)):
                raise RuntimeError(f"{reference.name}: PRM scores scored {name!r} differ from one path per call")
        self.paths += len(paths)
        self.calls += 1

    def ratio(self, name: str) -> float:
        return self.seconds["alone"] / self.seconds[name] if self.seconds.get(name) else 0.0


def discover_sections() -> None:
    """Import every `bench/perf_*.py` module so that its `@section` functions register themselves."""
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if info.name.startswith("perf_"):
            importlib.import_module(f"bench.{info.name}")


def machine() -> str:
    import os

    import torch

    load = f", load average {os.getloadavg()[0]:.1f} when written" if hasattr(os, "getloadavg") else ""
    return (f"{platform.processor() or platform.machine()}, {_cores()} cores visible{load}, torch "
            f"{torch.__version__} ({torch.get_num_threads()} thread), Python {platform.python_version()}")


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def table(run: PerfRun) -> str:
    lines = ["| measure | result | beside it |", "|---|---|---|"]
    lines += [f"| {m} | {r} | {n} |" for m, r, n in run.rows]
    return "\n".join(lines)


def write_benchmarks(run: PerfRun, command: str, seconds: float, path: Path = BENCHMARKS) -> None:
    """Replace the perf block of BENCHMARKS.md (keeping everything else) with this run's table."""
    block = "\n".join([
        BEGIN,
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()}, in {seconds / 60:.1f} min by `{command}`: MCTS with "
        f"the scaling report's settings at budget {run.args.budget}, seed {run.args.seed}, on {len(run.problems)} "
        "held-out problems (side sections on the first "
        f"{min(run.args.side_problems, len(run.problems))}).",
        "",
        table(run),
        "",
        "```json",
        json.dumps(run.figures, indent=2, sort_keys=True),
        "```",
        END,
    ])
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n\n" + BEGIN + "\n" + END + "\n"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")


def add_perf_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--perf", action="store_true", help="engine speed: ratios measured side by side in one run")
    parser.add_argument("--json", metavar="FILE", default=None, help="(--perf) also write the figures as JSON here")
    parser.add_argument("--budget", type=int, default=64, help="(--perf) MCTS budget per problem")
    parser.add_argument("--side-problems", type=int, default=20,
                        help="(--perf) problems for the KV-cache, prior and PRM sections")
    parser.add_argument("--sections", nargs="+", default=None, help="(--perf) only these sections")
    parser.add_argument("--benchmarks", default=str(BENCHMARKS), help="(--perf) the Markdown file to update")


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """`bench`: the demo's scaling report (`demo.cli`), or with `--perf` the engine's speed (bench imports demo, never
    the other way round)."""
    from demo.cli import add_scaling_arguments

    add_scaling_arguments(parser)
    add_perf_arguments(parser)


def run_bench(args: argparse.Namespace) -> None:
    """`bench --perf` runs the engine benchmark; plain `bench` the demo's scaling report."""
    if args.perf:
        run_perf(args)
        return
    from demo.cli import run_scaling

    run_scaling(args)


def run_perf(args: argparse.Namespace) -> dict[str, Any]:
    """Run the chosen sections on one thread and write BENCHMARKS.md (and --json)."""
    import torch

    from reasoning.problems import read_problems

    torch.set_num_threads(1)
    discover_sections()
    unknown = set(args.sections or ()) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown --sections {sorted(unknown)}; choose from {sorted(SECTIONS)}")
    if args.budget < 1:
        raise ValueError(f"--budget must be at least 1, got {args.budget}")
    problems = read_problems(args.problems)[: args.limit]
    run = PerfRun(args, problems)
    started = time.time()
    command = "python app.py bench --perf" + "".join(
        f" --{flag} {value}" for flag, value, default in (
            ("limit", args.limit, None), ("budget", args.budget, 64), ("side-problems", args.side_problems, 20))
        if value != default)
    for name, fn in SECTIONS.items():
        if args.sections is None or name in args.sections:
            fn(run)
            # written after every section, so a long run stopped part-way keeps what it measured
            write_benchmarks(run, command, time.time() - started, Path(args.benchmarks))
            if args.json:
                Path(args.json).write_text(json.dumps(run.figures, indent=2, sort_keys=True) + "\n",
                                           encoding="utf-8")
    print(f"wrote {args.benchmarks}" + (f" and {args.json}" if args.json else ""))
    return run.figures
