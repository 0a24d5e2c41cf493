"""Benchmark: sibling generation with the shared-prefix KV cache against recomputation, measured side by side.

    python bench/bench_generation.py [--generator DIR] [--siblings 8] [--repeats 5]

Prints the time per `propose` call both ways and their ratio (the cache should win by a growing factor as the
prefix and the number of siblings grow). Runs on CUDA when available, else CPU.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reasoning.backends import DEMO_GENERATOR_DIR, load_generator  # noqa: E402
from reasoning.factors import load_catalog  # noqa: E402
from reasoning.problems import parse_problem_text  # noqa: E402
from reasoning.types import State, Step  # noqa: E402


def timed(fn, repeats: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--generator", default=str(DEMO_GENERATOR_DIR))
    p.add_argument("--siblings", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--max-step-tokens", type=int, default=24)
    args = p.parse_args()
    catalog = load_catalog()
    problem = parse_problem_text("Use 4 7 8 8 to make 24.")
    steps = (Step("8-7=1 (left: 1 4 8)", "propose"), Step("4-1=3 (left: 3 8)", "propose"))
    state = State(problem, steps)
    factor = catalog.get("propose")
    rows = []
    for kv in (True, False):
        gen = load_generator(args.generator, catalog=catalog, kv_reuse=kv, max_step_tokens=args.max_step_tokens)
        rows.append(timed(lambda g=gen: g.propose(state, factor, args.siblings, temperature=1.0, seed=0), args.repeats))
    gen = load_generator(args.generator, catalog=catalog)
    prior_batched = timed(lambda: gen.factor_prior(state, catalog.enabled), args.repeats)
    prior_each = timed(lambda: [gen.factor_prior(state, [f]) for f in catalog.enabled], args.repeats)
    print(f"generator {args.generator} on {gen.device}, {args.siblings} siblings, <= {args.max_step_tokens} tokens")
    print(f"propose with shared-prefix cache : {rows[0] * 1000:8.1f} ms")
    print(f"propose recomputing (no cache)   : {rows[1] * 1000:8.1f} ms")
    print(f"speed-up of the cache            : {rows[1] / rows[0]:8.2f}x")
    print(f"factor prior, one batched pass   : {prior_batched * 1000:8.1f} ms")
    print(f"factor prior, one pass per factor: {prior_each * 1000:8.1f} ms  ({prior_each / prior_batched:.2f}x)")


if __name__ == "__main__":
    main()
