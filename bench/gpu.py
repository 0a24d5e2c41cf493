"""GPU benchmark of the engine: `python -m bench.gpu [--tiny] [--json FILE]` (one command, no downloads).

Builds random-initialised Qwen2 models of the 1.5B shape from a config (a generator and a token-classification
PRM, bf16, saved as safetensors with a word-level tokenizer that names every id, so decoded text never fails) and
measures, at 1, 8, 32 and 64 steps in flight:
- the transformers backend: decode tokens/s of `propose_batch` (60-token steps: random weights never write a stop
  tag) and MCTS nodes/s (generator and PRM, `parallel_leaves` = in flight);
- vLLM in-process (`vllm.LLM` on the saved directory): decode tokens/s and steps/s on the same prompts; skipped
  with one line when vllm is not importable;
- each decode rate as a fraction of the memory-bandwidth ceiling: a decode step must read the weights once and
  every row's KV, so tokens/s <= rows * bandwidth / (weight bytes + KV bytes per step), with the bandwidth of a
  device-to-device copy measured here.
`--tiny` runs a tiny shape on CPU in seconds (what the test suite smokes).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from reasoning.factors import load_catalog
from reasoning.types import ExpansionRequest, Problem, State

SHAPE_1_5B = {"hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28, "num_attention_heads": 12,
              "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 4096}
SHAPE_TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "vocab_size": 1024, "max_position_embeddings": 1024}
IN_FLIGHT = (1, 8, 32, 64)
STEP_TOKENS = 60
EOS = "<|endoftext|>"


@dataclass(frozen=True)
class Shape:
    config: dict[str, int]
    dtype: torch.dtype
    device: str

    @property
    def kv_bytes_per_token(self) -> int:
        c = self.config
        head_dim = c["hidden_size"] // c["num_attention_heads"]
        return 2 * c["num_hidden_layers"] * c["num_key_value_heads"] * head_dim * _itemsize(self.dtype)


def _itemsize(dtype: torch.dtype) -> int:
    return torch.tensor([], dtype=dtype).element_size()


def build_tokenizer(path: Path):
    """A small byte-level BPE tokenizer (trained here on a few hundred lines) with the factor tags as special tokens.
    The model's vocabulary is larger: ids a random model writes beyond the tokenizer's decode to nothing, so its
    steps never meet a stop tag and run to the full step length, the work the benchmark wants."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = [EOS, *(t for f in load_catalog() for t in (f.tags or ()))]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    lines = [f"w{i} w{i * 7 % 500} = {i % 13} + {i % 11}.\n" for i in range(500)]
    tok.train_from_iterator(lines, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=EOS)
    fast.add_special_tokens({"additional_special_tokens": specials[1:]})
    fast.save_pretrained(path)
    return fast


def build_models(root: Path, shape: Shape) -> tuple[Path, Path]:
    """Random Qwen2 generator and token-classification PRM of `shape`, saved (safetensors) under `root`."""
    from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen2ForTokenClassification

    torch.manual_seed(0)
    gen_dir, prm_dir = root / "generator", root / "prm"
    for path in (gen_dir, prm_dir):
        build_tokenizer(path)
    common = {**shape.config, "tie_word_embeddings": True, "eos_token_id": 0, "pad_token_id": 0, "bos_token_id": 0,
              "use_sliding_window": False}
    with torch.device(shape.device):
        gen = Qwen2ForCausalLM(Qwen2Config(**common, architectures=["Qwen2ForCausalLM"])).to(shape.dtype)
        gen.save_pretrained(gen_dir, safe_serialization=True)
        del gen
        prm = Qwen2ForTokenClassification(Qwen2Config(**common, num_labels=2,
                                                      architectures=["Qwen2ForTokenClassification"])).to(shape.dtype)
        prm.save_pretrained(prm_dir, safe_serialization=True)
        del prm
    (prm_dir / "prm_config.json").write_text(json.dumps({"adapter": "token-classification", "separator": "\n"}))
    return gen_dir, prm_dir


def copy_bandwidth(device: str, megabytes: int) -> float:
    """Bytes per second of a device-to-device copy (read + write counted), the best of a few."""
    n = megabytes * 2**20 // 4
    src = torch.empty(n, dtype=torch.float32, device=device).normal_()
    dst = torch.empty_like(src)
    best = 0.0
    for _ in range(5):
        _sync(device)
        started = time.perf_counter()
        dst.copy_(src)
        _sync(device)
        best = max(best, 2 * src.numel() * 4 / (time.perf_counter() - started))
    return best


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def ceiling(shape: Shape, weight_bytes: int, rows: int, context: int, bandwidth: float) -> float:
    """Decode tokens/s allowed by memory bandwidth: each step reads the weights once and every row's KV."""
    per_step = weight_bytes + rows * context * shape.kv_bytes_per_token
    return rows * bandwidth / per_step


def prompts(count: int) -> list[State]:
    """Different states (ragged prefixes) for the rows in flight."""
    words = [f"w{100 + (7 * i) % 500}" for i in range(400)]
    return [State(Problem(f"g{i}", " ".join(words[i % 37: i % 37 + 40 + i % 23]))) for i in range(count)]


def transformers_rates(gen_dir: Path, prm_dir: Path, shape: Shape, bandwidth: float, in_flight, budget_cap: int,
                       step_tokens: int, out: dict[str, Any]) -> None:
    from reasoning.backends import load_generator, load_scorer
    from reasoning.search import SearchConfig, search

    catalog = load_catalog()
    gen = load_generator(gen_dir, device=shape.device, dtype=shape.dtype, max_step_tokens=step_tokens)
    prm = load_scorer(prm_dir, device=shape.device, dtype=shape.dtype)
    weight_bytes = sum(p.numel() * p.element_size() for p in gen.model.parameters())
    factor = catalog.get("compute")
    gen.propose_batch([ExpansionRequest(s, factor, 1, temperature=1.0, seed=0) for s in prompts(2)])  # warm up
    rows = out.setdefault("transformers", {})
    for n in in_flight:
        states = prompts(n)
        context = sum(len(gen.context_ids(s)) for s in states) / n + step_tokens / 2
        _sync(shape.device)
        started = time.perf_counter()
        steps = gen.propose_batch([ExpansionRequest(s, factor, 1, temperature=1.0, seed=i)
                                   for i, s in enumerate(states)])
        _sync(shape.device)
        seconds = time.perf_counter() - started
        tokens = sum(st.tokens for batch in steps for st in batch)
        rate = tokens / seconds
        budget = min(budget_cap, max(4, 2 * n))
        config = SearchConfig(budget=budget, candidates=1, widen=0.85, parallel_leaves=n, max_depth=4)
        # a search on another problem first (warm kernels), so the timed search measures the steady state a session
        # of many searches runs at
        search(Problem("w", prompts(2)[1].problem.text), gen, prm, config)
        with _Timed(gen, "propose_batch") as g_time, _Timed(prm, "score_last") as p_time:
            started = time.perf_counter()
            _, result = search(Problem("m", prompts(1)[0].problem.text), gen, prm, config)
            seconds = time.perf_counter() - started
        nodes_per_s = result.nodes_created / seconds
        rows[str(n)] = {
            "decode_tokens_per_s": round(rate, 1), "mcts_nodes_per_s": round(nodes_per_s, 2),
            "bandwidth_fraction": round(rate / ceiling(shape, weight_bytes, n, int(context), bandwidth), 4),
            "step_tokens": round(tokens / n, 1), "mcts_budget": budget,
            "mcts_generator_calls": g_time.calls, "mcts_rows_per_call": round(g_time.rows / max(1, g_time.calls), 1),
            "mcts_generator_share": round(g_time.seconds / seconds, 3), "mcts_prm_share": round(p_time.seconds / seconds, 3),
        }
        print(f"transformers  {n:3d} in flight: {rate:9.1f} decode tokens/s "
              f"({100 * rows[str(n)]['bandwidth_fraction']:.1f}% of the bandwidth ceiling), "
              f"MCTS {nodes_per_s:.2f} nodes/s ({g_time.calls} generator calls of {g_time.rows / max(1, g_time.calls):.1f}"
              f" rows; generator {100 * g_time.seconds / seconds:.0f}%, PRM {100 * p_time.seconds / seconds:.0f}%)",
              flush=True)
    n = max(in_flight)
    if budget_cap > 8:  # the steady state at the most in flight: a budget of several full rounds
        config = SearchConfig(budget=4 * n, candidates=1, widen=0.85, parallel_leaves=n, max_depth=6)
        with _Timed(gen, "propose_batch") as g_time:
            started = time.perf_counter()
            _, result = search(Problem("m4", prompts(3)[2].problem.text), gen, prm, config)
            seconds = time.perf_counter() - started
        out["mcts_large"] = {"in_flight": n, "budget": 4 * n, "nodes_per_s": round(result.nodes_created / seconds, 2),
                             "generator_calls": g_time.calls,
                             "rows_per_call": round(g_time.rows / max(1, g_time.calls), 1)}
        print(f"MCTS budget {4 * n} at {n} in flight: {result.nodes_created / seconds:.2f} nodes/s "
              f"({g_time.calls} generator calls of {g_time.rows / max(1, g_time.calls):.1f} rows)", flush=True)


class _Timed:
    """Counts the calls, rows (requests' n) and seconds of one method of an object while in the `with` block."""

    def __init__(self, obj, name: str):
        self.obj, self.name, self.calls, self.rows, self.seconds = obj, name, 0, 0, 0.0

    def __enter__(self):
        inner = getattr(self.obj, self.name)

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.calls += 1
                if self.name == "propose_batch":
                    self.rows += sum(r.n for r in args[0])
                else:
                    self.rows += len(args[1])
                self.seconds += time.perf_counter() - started

        setattr(self.obj, self.name, timed)
        return self

    def __exit__(self, *exc):
        delattr(self.obj, self.name)


def vllm_rates(gen_dir: Path, shape: Shape, bandwidth: float, in_flight, step_tokens: int,
               out: dict[str, Any]) -> None:
    try:
        from vllm import LLM, SamplingParams
    except Exception as exc:  # not installed, or no usable build for this machine
        print(f"vLLM: skipped (vllm is not importable here: {type(exc).__name__}: {str(exc)[:120]})")
        out["vllm"] = {"skipped": f"vllm not importable: {type(exc).__name__}"}
        return
    llm = LLM(model=str(gen_dir), dtype="bfloat16" if shape.dtype == torch.bfloat16 else "float32",
              max_model_len=1024, gpu_memory_utilization=0.5, enforce_eager=False, seed=0)
    weight_bytes = sum(p.stat().st_size for p in gen_dir.glob("*.safetensors"))
    params = SamplingParams(max_tokens=step_tokens, min_tokens=step_tokens, ignore_eos=True, temperature=1.0, seed=0,
                            detokenize=False)  # ids beyond the small tokenizer have no text
    llm.generate(["w100 w101 w102"], params, use_tqdm=False)  # warm up
    rows = out.setdefault("vllm", {})
    for n in in_flight:
        texts = [s.problem.text for s in prompts(n)]
        started = time.perf_counter()
        done = llm.generate(texts, params, use_tqdm=False)
        seconds = time.perf_counter() - started
        tokens = sum(len(o.outputs[0].token_ids) for o in done)
        context = sum(len(o.prompt_token_ids) for o in done) / n + step_tokens / 2
        rate = tokens / seconds
        rows[str(n)] = {"decode_tokens_per_s": round(rate, 1), "steps_per_s": round(n / seconds, 2),
                        "bandwidth_fraction": round(rate / ceiling(shape, weight_bytes, n, int(context), bandwidth), 4)}
        print(f"vLLM          {n:3d} in flight: {rate:9.1f} decode tokens/s "
              f"({100 * rows[str(n)]['bandwidth_fraction']:.1f}% of the bandwidth ceiling), "
              f"{n / seconds:.2f} steps/s", flush=True)


def engine_floor(gen_dir: Path, shape: Shape, bandwidth: float, in_flight, step_tokens: int,
                 out: dict[str, Any]) -> None:
    """Where the transformers backend's decode time goes: the same model decoding greedily with nothing of ours
    around it (a DynamicCache, one forward per token: the eager floor), and the same step replayed as one CUDA graph
    over a StaticCache (the launch overhead removed: what a graph-captured decode could reach). Each is printed as
    tokens/s and a fraction of the bandwidth ceiling; a failure is printed in one line and skipped."""
    from transformers import AutoModelForCausalLM, DynamicCache, StaticCache

    model = AutoModelForCausalLM.from_pretrained(gen_dir, dtype=shape.dtype).to(shape.device).eval()
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    vocab = min(500, shape.config["vocab_size"])
    rows = out.setdefault("floor", {})
    for n in in_flight:
        context = 100
        ids = torch.randint(3, vocab, (n, context), device=shape.device)
        row: dict[str, Any] = {}
        try:
            with torch.inference_mode():
                cache = DynamicCache(config=model.config)
                logits = model(input_ids=ids, cache=cache, use_cache=True).logits[:, -1]
                _sync(shape.device)
                started = time.perf_counter()
                for _ in range(step_tokens):
                    nxt = logits.argmax(-1, keepdim=True)
                    logits = model(input_ids=nxt, cache=cache, use_cache=True).logits[:, -1]
                _sync(shape.device)
            row["eager_tokens_per_s"] = round(n * step_tokens / (time.perf_counter() - started), 1)
        except Exception as exc:  # a report, not a crash: the run's other figures still come back
            row["eager_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        if shape.device.startswith("cuda"):
            try:
                row["graph_tokens_per_s"] = round(_graph_decode(model, ids, step_tokens, StaticCache), 1)
            except Exception as exc:
                row["graph_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        limit = ceiling(shape, weight_bytes, n, context + step_tokens // 2, bandwidth)
        for key in ("eager", "graph"):
            if f"{key}_tokens_per_s" in row:
                row[f"{key}_bandwidth_fraction"] = round(row[f"{key}_tokens_per_s"] / limit, 4)
        rows[str(n)] = row
        print(f"floor         {n:3d} in flight: {row}", flush=True)
    del model


def _graph_decode(model, ids: torch.Tensor, steps: int, static_cache) -> float:
    """Greedy decode tokens/s with each one-token step replayed as a captured CUDA graph."""
    n, context = ids.shape
    with torch.inference_mode():
        cache = static_cache(config=model.config, max_cache_len=context + steps + 8)
        logits = model(input_ids=ids, cache=cache, use_cache=True,
                       cache_position=torch.arange(context, device=ids.device)).logits[:, -1]
        tok = logits.argmax(-1, keepdim=True).clone()
        position = torch.full((n, 1), context, device=ids.device, dtype=torch.long)
        cache_position = torch.tensor([context], device=ids.device, dtype=torch.long)

        def step():
            return model(input_ids=tok, position_ids=position, cache_position=cache_position, cache=cache,
                         use_cache=True).logits[:, -1].argmax(-1, keepdim=True)

        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            nxt = step()
        torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(steps):
            graph.replay()
            tok.copy_(nxt)
            position.add_(1)
            cache_position.add_(1)
        torch.cuda.synchronize()
        return n * steps / (time.perf_counter() - started)


def profile_loop(gen_dir: Path, shape: Shape, n: int, step_tokens: int, out: dict[str, Any]) -> None:
    """The decode loop at `n` in flight from a cold node cache after an untimed warm-up, then a torch.profiler
    table of one propose_batch: the top operators by host time and the device time."""
    from reasoning.backends import load_generator

    gen = load_generator(gen_dir, device=shape.device, dtype=shape.dtype, max_step_tokens=step_tokens)
    factor = load_catalog().get("compute")
    requests = [ExpansionRequest(s, factor, 1, temperature=1.0, seed=i) for i, s in enumerate(prompts(n))]
    gen.propose_batch(requests)  # warm-up: kernels
    gen.kv_cache.clear()
    _sync(shape.device)
    started = time.perf_counter()
    steps = gen.propose_batch(requests)
    _sync(shape.device)
    rate = sum(st.tokens for b in steps for st in b) / (time.perf_counter() - started)
    out["loops"] = {"in_flight": n, "ragged_tokens_per_s": round(rate, 1)}
    print(f"loop          {n:3d} in flight: {rate:.1f} tokens/s", flush=True)
    activities = [torch.profiler.ProfilerActivity.CPU]
    if shape.device.startswith("cuda"):
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    gen.kv_cache.clear()
    with torch.profiler.profile(activities=activities) as prof:
        started = time.perf_counter()
        gen.propose_batch(requests)
        _sync(shape.device)
        seconds = time.perf_counter() - started
    averages = prof.key_averages()
    table = averages.table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=40)
    if shape.device.startswith("cuda"):
        table += "\n" + averages.table(sort_by="self_cuda_time_total", row_limit=12, max_name_column_width=40)
    print(f"profile of one propose_batch at {n} in flight ({seconds:.2f} s):\n{table}", flush=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a tiny shape on CPU (a smoke test, seconds)")
    parser.add_argument("--json", metavar="FILE", help="write the figures here as JSON")
    parser.add_argument("--in-flight", nargs="+", type=int, default=None, help=f"default {IN_FLIGHT}")
    parser.add_argument("--no-vllm", action="store_true", help="only the transformers backend")
    parser.add_argument("--floor", action="store_true", help="also the eager and CUDA-graph floors of a bare decode "
                        "(implies --loops)")
    parser.add_argument("--loops", action="store_true", help="also the decode loop's rate at the most in flight "
                        "and a profile of one propose_batch (where the time goes)")
    parser.add_argument("--step-tokens", type=int, default=None, help=f"tokens per step (default {STEP_TOKENS}; "
                        "--tiny: 8)")
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available() and not args.tiny
    if not args.tiny and not cuda:
        print("no CUDA device: run with --tiny for the CPU smoke version", file=sys.stderr)
        raise SystemExit(2)
    shape = Shape(SHAPE_TINY if args.tiny else SHAPE_1_5B, torch.float32 if args.tiny else torch.bfloat16,
                  "cuda" if cuda else "cpu")
    in_flight = tuple(args.in_flight or ((1, 4) if args.tiny else IN_FLIGHT))
    step_tokens = args.step_tokens or (8 if args.tiny else STEP_TOKENS)
    started = time.time()
    out: dict[str, Any] = {"shape": shape.config, "dtype": str(shape.dtype), "device": _device_name(shape.device),
                           "step_tokens": step_tokens}
    out["copy_bandwidth_gb_s"] = round(copy_bandwidth(shape.device, 64 if args.tiny else 2048) / 1e9, 1)
    print(f"{out['device']}: device copy bandwidth {out['copy_bandwidth_gb_s']} GB/s", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        gen_dir, prm_dir = build_models(Path(tmp), shape)
        bandwidth = out["copy_bandwidth_gb_s"] * 1e9
        transformers_rates(gen_dir, prm_dir, shape, bandwidth, in_flight, 8 if args.tiny else 128, step_tokens, out)
        if args.floor:
            engine_floor(gen_dir, shape, bandwidth, in_flight, step_tokens, out)
        if args.floor or args.loops:
            profile_loop(gen_dir, shape, max(in_flight), step_tokens, out)
        if args.no_vllm or args.tiny:
            print("vLLM: skipped (" + ("--tiny runs on CPU" if args.tiny else "--no-vllm") + ")")
        else:
            vllm_rates(gen_dir, shape, bandwidth, in_flight, step_tokens, out)
    out["seconds"] = round(time.time() - started, 1)
    print(f"done in {out['seconds']:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return out


def _device_name(device: str) -> str:
    return torch.cuda.get_device_name(0) if device.startswith("cuda") else "CPU"


if __name__ == "__main__":
    main()
