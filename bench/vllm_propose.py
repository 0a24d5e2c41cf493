"""`python -m bench.vllm_propose`: propose-sized requests on a model large enough for compute to count, the
transformers backend against a vLLM server at one thread each.

The demo generator (3.4M parameters) is too small for this: its forward pass costs less than vLLM's fixed cost per
engine step and the HTTP round trip. Here a GPT-2 of `--layers` x `--width` (default 12 x 768, about 85M
parameters, GPT-2 small's shape) is built from the demo generator's config with random weights (no download) and the
demo tokenizer. Both backends answer the same batches of requests (the held-out problems' roots, `--n` samples each)
in alternation; the figure is generated tokens per second, since random weights stop at different lengths.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "generation_config.json")


def build_model(target: Path, layers: int, width: int, seed: int = 0) -> Path:
    """A random-initialised GPT-2 with the demo generator's vocabulary and tags, saved as safetensors."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from reasoning.backends import DEMO_GENERATOR_DIR

    config = json.loads((DEMO_GENERATOR_DIR / "config.json").read_text())
    config.update(n_layer=layers, n_embd=width, n_head=max(1, width // 64))
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(**config)).to(torch.bfloat16)
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target, safe_serialization=True)
    for name in TOKENIZER_FILES:
        shutil.copy2(DEMO_GENERATOR_DIR / name, target / name)
    return target


def run(args: argparse.Namespace) -> dict:
    import torch

    from engine.server import EngineServer, ServerSpec
    from reasoning.backends import load_generator
    from reasoning.factors import load_catalog
    from reasoning.http_client import free_port
    from reasoning.problems import read_problems
    from reasoning.types import ExpansionRequest, State

    torch.set_num_threads(1)
    catalog = load_catalog().with_enabled(["compute", "verify", "correct", "conclude"])
    problems = read_problems(Path(__file__).resolve().parents[1] / "reasoning" / "data" / "countdown_eval.jsonl")
    with tempfile.TemporaryDirectory(prefix="vllm-propose-") as tmp:
        model_dir = build_model(Path(tmp) / f"gpt2-{args.layers}x{args.width}", args.layers, args.width)
        spec = ServerSpec(model=model_dir, port=free_port(), cores=args.core, kv_cache_bytes="256M")
        with EngineServer(spec).start() as server:
            local = load_generator(model_dir, catalog=catalog, device="cpu", max_step_tokens=args.max_tokens)
            served = load_generator(server.url, catalog=catalog, max_step_tokens=args.max_tokens)
            compute = catalog.get("compute")
            totals = {"transformers": [0, 0.0], "vllm": [0, 0.0]}
            for r in range(args.rounds):
                batch = [ExpansionRequest(State(p), compute, args.n, temperature=1.0, seed=1000 * r + i)
                         for i, p in enumerate(problems[r * args.batch:(r + 1) * args.batch])]
                for name, gen in (("transformers", local), ("vllm", served)):
                    started = time.perf_counter()
                    steps = gen.propose_batch(batch)
                    totals[name][1] += time.perf_counter() - started
                    totals[name][0] += sum(s.tokens for row in steps for s in row)
    rate = {k: round(tokens / seconds, 1) for k, (tokens, seconds) in totals.items()}
    out = {"model": f"gpt2 {args.layers}x{args.width} (random init)", "requests_per_call": args.batch,
           "n": args.n, "rounds": args.rounds, "tokens_per_s": rate,
           "ratio": round(rate["vllm"] / rate["transformers"], 3), "threads_per_engine": 1}
    print(json.dumps(out, indent=1))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--width", type=int, default=768)
    p.add_argument("--batch", type=int, default=8, help="requests per propose_batch call (leaves in flight)")
    p.add_argument("--n", type=int, default=4, help="samples per request")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--core", default="1", help="core the vLLM server is pinned to")
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args()
    out = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
