"""The vLLM rows of `bench --perf`: the transformers backend against vLLM servers on the same models, one generator
server against two, each speed beside its solve rate (JSON key `vllm_vs_transformers`).

Threads are matched: the transformers side runs on one torch thread in the benchmark's process; each vLLM server
is pinned to one core (`VLLM_CPU_OMP_THREADS_BIND`): the generator on core 0, the PRM (and the second generator) on
core 1. The servers are started here from the engine environment (made on first use), or reused when
`REASONING_VLLM_BENCH_URLS=GEN_URL,PRM_URL[,GEN2_URL]` names running ones.
"""
from __future__ import annotations

import os
from contextlib import ExitStack

from bench.perf import PerfRun, run_side_by_side, section

LEAVES_IN_FLIGHT = 8


def _start_servers(stack: ExitStack) -> tuple[str, str, str]:
    """Two demo-generator servers and one demo-PRM server on free loopback ports, started side by side."""
    from engine.env import ensure_engine_env
    from engine.server import EngineServer, ServerSpec, start_all
    from reasoning.backends import DEMO_GENERATOR_DIR, DEMO_PRM_DIR
    from reasoning.http_client import free_port

    ensure_engine_env()
    one = str(1 % (os.cpu_count() or 1))
    servers = [
        EngineServer(ServerSpec(model=DEMO_GENERATOR_DIR, port=free_port(), cores="0")),
        EngineServer(ServerSpec(model=DEMO_PRM_DIR, port=free_port(), pooling=True, cores=one)),
        EngineServer(ServerSpec(model=DEMO_GENERATOR_DIR, port=free_port(), cores=one)),
    ]
    for s in servers:
        stack.callback(s.stop)
    start_all(servers)
    return servers[0].url, servers[1].url, servers[2].url


@section("vllm")
def vllm_vs_transformers(run: PerfRun) -> None:
    """MCTS nodes/s with the transformers backend vs the vLLM servers, and one generator server vs two."""
    from reasoning.backends import load_generator, load_scorer

    problems = run.problems[: run.args.side_problems]
    with ExitStack() as stack:
        running = os.environ.get("REASONING_VLLM_BENCH_URLS")
        if running:
            urls = running.split(",")
            gen_a, prm_url, gen_b = urls[0], urls[1], (urls[2] if len(urls) > 2 else None)
        else:
            gen_a, prm_url, gen_b = _start_servers(stack)
        config = run.config(parallel_leaves=LEAVES_IN_FLIGHT)
        served_prm = load_scorer(prm_url)
        settings = {
            "transformers": (run.generator(), run.scorer(), config),
            "vllm": (load_generator(gen_a), served_prm, config),
        }
        if gen_b:
            settings["vllm_two_servers"] = (load_generator(f"{gen_a},{gen_b}"), served_prm, config)
        t = run_side_by_side(run, settings, problems)
    base, served = t["transformers"], t["vllm"]
    figures = {
        "leaves_in_flight": LEAVES_IN_FLIGHT, "problems": len(problems), "threads_per_engine": 1,
        "nodes_per_s": {k: round(v.nodes_per_s, 2) for k, v in t.items()},
        "solve_rate": {k: round(v.solve_rate, 4) for k, v in t.items()},
        "generator_seconds": {k: round(v.model_seconds, 2) for k, v in t.items()},
        "ratio": round(served.nodes_per_s / base.nodes_per_s, 3),
    }
    run.row(f"vLLM servers vs transformers (MCTS@{run.args.budget}, {LEAVES_IN_FLIGHT} leaves, 1 thread each)",
            f"{figures['ratio']:.2f}x the nodes/s ({served.nodes_per_s:.1f} vs {base.nodes_per_s:.1f})",
            f"solve rate {100 * served.solve_rate:.0f}% vs {100 * base.solve_rate:.0f}% on {len(problems)} problems; "
            f"generator time {served.model_seconds:.1f} s vs {base.model_seconds:.1f} s")
    if "vllm_two_servers" in t:
        two = t["vllm_two_servers"]
        figures["two_vs_one_server"] = round(two.nodes_per_s / served.nodes_per_s, 3)
        run.row("two vLLM generator servers vs one (same PRM server)",
                f"{figures['two_vs_one_server']:.2f}x the nodes/s ({two.nodes_per_s:.1f} vs {served.nodes_per_s:.1f})",
                f"solve rate {100 * two.solve_rate:.0f}% vs {100 * served.solve_rate:.0f}%")
    run.figures["vllm_vs_transformers"] = figures
