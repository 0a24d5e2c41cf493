"""The engine benchmarks run end to end on real models: `bench --perf` on the demo models (a tiny workload) and the
GPU benchmark's CPU smoke version (`python -m bench.gpu --tiny`). They check the reports, not the speeds."""
from __future__ import annotations

import json

import pytest

from app import main as app_main

pytestmark = pytest.mark.model  # benchmarks on the demo models and a tiny GPU-shaped model


def test_bench_perf_writes_its_table_and_json_under_the_documented_keys(tmp_path):
    out, md = tmp_path / "perf.json", tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n\nkept text\n\n<!-- perf:begin -->\nold\n<!-- perf:end -->\n\nafter\n")
    assert app_main(["bench", "--perf", "--limit", "1", "--budget", "4", "--side-problems", "1",
                     "--sections", "leaves", "kv_cache", "prior", "prm_batch",  # (the vLLM section starts servers)
                     "--json", str(out), "--benchmarks", str(md)]) == 0
    figures = json.loads(out.read_text())
    assert set(figures) >= {"nodes_per_s", "solve_rate", "kv_cache_ratio", "prior_ratio", "prm_batch_ratio",
                            "prm_round_ratio", "prm_batch_only_ratio", "prm_prefix_ratio"}
    assert set(figures["nodes_per_s"]) == set(figures["solve_rate"]) == {"1", "8", "32"}
    assert all(v > 0 for v in figures["nodes_per_s"].values())
    text = md.read_text()
    assert "kept text" in text and "after" in text and "old" not in text
    assert "| MCTS@4, 8 leaves in flight |" in text and '"kv_cache_ratio"' in text


def test_bench_perf_refuses_an_unknown_section_in_one_line(capsys):
    assert app_main(["bench", "--perf", "--sections", "nope"]) != 0
    assert "unknown --sections ['nope']" in capsys.readouterr().err


def test_the_gpu_benchmark_smokes_on_cpu_with_a_tiny_shape(tmp_path):
    from bench.gpu import main

    out = main(["--tiny", "--in-flight", "1", "2", "--step-tokens", "4", "--json", str(tmp_path / "gpu.json")])
    rows = out["transformers"]
    assert set(rows) == {"1", "2"}
    assert all(r["decode_tokens_per_s"] > 0 and r["mcts_nodes_per_s"] > 0 for r in rows.values())
    assert all(r["bandwidth_fraction"] > 0 for r in rows.values())
    assert rows["2"]["step_tokens"] == 4  # random weights never stop early: every step is full length
    assert json.loads((tmp_path / "gpu.json").read_text())["step_tokens"] == 4


def test_the_gpu_benchmarks_loop_profile_and_floor_smoke_on_cpu(tmp_path):
    from bench.gpu import main

    out = main(["--tiny", "--in-flight", "1", "2", "--step-tokens", "4", "--floor"])
    loops = out["loops"]
    assert loops["in_flight"] == 2
    assert loops["ragged_tokens_per_s"] > 0
    assert set(out["floor"]) == {"1", "2"} and all(r["eager_tokens_per_s"] > 0 for r in out["floor"].values())
    assert out["transformers"]["2"]["mcts_generator_calls"] >= 1
