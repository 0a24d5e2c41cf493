"""`improve`: rounds of self-play: search the training problems, fine-tune the generator on the verified
trajectories and retrain the PRM on the trees' verified step values, evaluate on held-out problems (experiments/)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .parser import bounded_int


def add_improve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--problems", required=True, metavar="TRAIN.jsonl", help="training problems (with gold answers)")
    p.add_argument("--eval", required=True, metavar="EVAL.jsonl", help="held-out problems (never trained on)")
    p.add_argument("--rounds", type=bounded_int(1, 20), default=1, help="rounds of search -> train -> evaluate")
    p.add_argument("--generator", metavar="DIR", help="starting generator (default: the demo generator)")
    p.add_argument("--prm", metavar="DIR", help="starting PRM (default: the demo PRM)")
    p.add_argument("--out", required=True, metavar="DIR", help="the lineage folder: round-K/{generator,prm,manifest}")
    p.add_argument("--algorithm", default="mcts", choices=["mcts", "best_of_n", "beam", "greedy"],
                   help="the training search")
    p.add_argument("--budget", type=bounded_int(1, 4096), default=64, help="the training search's budget")
    p.add_argument("--eval-budgets", type=bounded_int(1, 4096), nargs=2, default=[32, 64], metavar=("LOW", "HIGH"),
                   help="MCTS at both, best-of-N at HIGH, greedy once")
    p.add_argument("--limit-train", type=bounded_int(1, 10**6), help="only the first N training problems")
    p.add_argument("--limit-eval", type=bounded_int(1, 10**6), help="only the first N held-out problems")
    p.add_argument("--min-trajectories", type=bounded_int(1, 10**6), default=20,
                   help="fewer verified trajectories stop the round (the previous one stays)")
    p.add_argument("--sft-epochs", type=float, default=3.0)
    p.add_argument("--sft-lr", type=float, default=2e-4, help="the generator's fine-tuning learning rate")
    p.add_argument("--lora-rank", type=bounded_int(0, 1024), default=0,
                   help="fine-tune the generator with LoRA adapters of this rank (peft; for large models), merged into "
                        "the saved weights; 0 (default): full fine-tuning")
    p.add_argument("--paths-per-problem", type=bounded_int(1, 64), default=4,
                   help="verified trajectories kept per training problem at most (shortest first)")
    p.add_argument("--prm-epochs", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=bounded_int(1, 64), default=1, help="problems searched at once")
    p.add_argument("--db", metavar="URL", help="where the rounds' runs are stored (default: $DATABASE_URL, else the "
                   "default SQLite), so the Runs page compares round with round")


def _problems(path: str, limit: int | None, what: str):
    from reasoning.problems import read_problems

    problems = read_problems(path)
    usable = [p for p in problems if p.answer is not None or p.domain == "countdown"]
    if len(usable) < len(problems):
        print(f"{what}: skipped {len(problems) - len(usable)} problems without a gold answer", file=sys.stderr)
    return usable[:limit] if limit else usable


def run_improve(args: argparse.Namespace) -> int:
    from experiments.improve import Improver, Recipe, improve, open_lineage, table_line
    from reasoning.backends import DEMO_GENERATOR_DIR, DEMO_PRM_DIR, load_generator, load_scorer
    from storage.runs import Runs
    from storage.store import Store

    from .common import Settings

    train = _problems(args.problems, args.limit_train, "training problems")
    held = _problems(args.eval, args.limit_eval, "held-out problems")
    overlap = {p.text for p in train} & {p.text for p in held}
    if overlap:
        raise ValueError(f"{len(overlap)} problems are in both --problems and --eval; never train on what you "
                         "evaluate on")
    if not 0 < args.sft_lr < 1:
        raise ValueError(f"--sft-lr must be between 0 and 1 (exclusive), got {args.sft_lr}")
    recipe = Recipe(algorithm=args.algorithm, budget=args.budget, eval_budgets=tuple(args.eval_budgets),
                    seed=args.seed, min_trajectories=args.min_trajectories, sft_epochs=args.sft_epochs,
                    sft_lr=args.sft_lr, paths_per_problem=args.paths_per_problem, lora_rank=args.lora_rank,
                    prm_epochs=args.prm_epochs, workers=args.workers)
    out = Path(args.out)
    generator = str(Path(args.generator or DEMO_GENERATOR_DIR).resolve())
    prm = str(Path(args.prm or DEMO_PRM_DIR).resolve())
    lineage = open_lineage(out, generator, prm, train, held, recipe)
    store = Store(args.db or Settings.from_env().database_url)

    def load(gen_dir: str, prm_dir: str):
        from reasoning.factors import load_catalog

        return load_generator(gen_dir, catalog=load_catalog()), load_scorer(prm_dir)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    improver = Improver(out, Runs(store), train, held, recipe, lineage, load, say=say)
    say(f"lineage {lineage.id} in {out}: {len(train)} training and {len(held)} held-out problems")
    done = improve(improver, args.rounds)
    for m in done.rounds:
        mark = " (best)" if m["round"] == done.best_round else ""
        print(f"round {m['round']}{mark}: {table_line(m)}")
    store.close()
    return 0
