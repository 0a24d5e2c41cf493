"""`train-prm`: a token-classification PRM trained from a TRL stepwise export (soft labels where present)."""
from __future__ import annotations

import argparse
import json
import sys


def add_train_prm_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, metavar="EXPORT.jsonl", help="`export --format trl [--soft]` output")
    p.add_argument("--base", required=True, metavar="DIR", help="local causal-LM (or PRM) directory to start from, "
                   "e.g. models/demo-generator")
    p.add_argument("--out", required=True, metavar="DIR", help="new directory for the PRM (loads with --prm DIR)")
    p.add_argument("--eval", metavar="EXPORT.jsonl", help="held-out paths (default: a share of --data's problems)")
    p.add_argument("--eval-share", type=float, default=0.1, help="held-out share of the problems without --eval")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default: --epochs passes)")
    p.add_argument("--epochs", type=float, default=3.0, help="passes over the training paths (without --steps)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-4, help="peak learning rate (warmup, then cosine decay)")
    p.add_argument("--separator", default="\n", help="the step separator the PRM reads at (default: newline)")
    p.add_argument("--max-length", type=int, default=None, help="tokens per path at most (default: the model's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: CUDA when available)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow model code shipped with the base")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run_train_prm(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from reasoning.training.prm import TrainConfig, train_prm

    config = TrainConfig(steps=args.steps, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         eval_share=args.eval_share, seed=args.seed, separator=args.separator,
                         max_length=args.max_length)
    bar = tqdm(total=0, desc="train-prm", unit="step", disable=args.quiet, file=sys.stderr, mininterval=2)

    def progress(step: int, total: int, loss: float) -> None:
        bar.total = total
        bar.update(step - bar.n)
        bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

    try:
        manifest = train_prm(args.data, args.base, args.out, config, eval_data=args.eval, device=args.device,
                             trust_remote_code=args.trust_remote_code, progress=progress)
    finally:
        bar.close()
    print(json.dumps({"out": args.out, "eval_before": manifest["eval_before"], "eval": manifest["eval"]}))
    return 0
