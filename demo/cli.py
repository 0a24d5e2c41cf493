"""Command-line entry points of the demo: `train-demo`, `bench --scaling` and `label`, for app.py to wire."""
from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

from .problemsets import DATA_DIR, make_splits, write_splits
from .train_prm import LABELS, PRMRecipe

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "data" / "demo"  # rollout labels and raw results: reproducible, so not committed


def add_train_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice (the problem split's too: refused when it differs from the split on disk)")
    parser.add_argument("--trace-seed", type=int, default=None,
                        help="seed of the generator's traces and training order only (default: --seed); a later "
                             "stage of a fine-tune draws fresh traces with another one, on the same problem split")
    parser.add_argument("--generator-out", default=str(ROOT / "models" / "demo-generator"))
    parser.add_argument("--prm-out", default=str(ROOT / "models" / "demo-prm"))
    parser.add_argument("--generator-steps", type=int, default=None, help="one cycle of N steps instead of the recipe's schedule (quick trials)")
    parser.add_argument("--generator-lr", type=float, default=None,
                        help="peak learning rate of that one cycle (default 2e-3 from scratch, 5e-4 with --generator-from)")
    parser.add_argument("--generator-from", default=None,
                        help="fine-tune this generator's weights (and keep its tokenizer) instead of training from scratch")
    parser.add_argument("--check-first", type=float, default=None,
                        help="share of traces whose first operation is followed by a verdict on the numbers it leaves"
                             " (dead ones corrected); the recipe's default is 0")
    parser.add_argument("--first-dead", type=float, default=None,
                        help="in those traces, the chance that a try of the first operation is a dead one (the "
                             "recipe's default is 0.5)")
    parser.add_argument("--wide-boards", type=int, default=0,
                        help="also write traces over every solvable board of numbers 1..N (target 24) that is not a "
                             "training, dev or eval multiset: more boards to learn verdicts from (0: none)")
    parser.add_argument("--wide-traces", type=int, default=5, help="traces per such board")
    parser.add_argument("--every-dead-first", action="store_true",
                        help="one more checked trace per dead first operation of each training puzzle, tried first")
    parser.add_argument("--skip-prm", action="store_true", help="stop after the generator (no labels, no PRM)")
    parser.add_argument("--prm-steps", type=int, default=None, help="optimizer steps for the PRM")
    parser.add_argument("--label-problems", type=int, default=1062, help="training problems labeled by rollouts (default: all)")
    parser.add_argument("--prm-solver-paths", type=int, default=0,
                        help="also train the PRM on N paths per training problem that the solver draws (half its "
                             "steps live where it can), labelled by the solver: many more boards to judge (0: none)")
    parser.add_argument("--prm-wide-boards", type=int, default=0,
                        help="solver paths also over every solvable board of numbers 1..N that is not a training, "
                             "dev or eval multiset (needs --prm-solver-paths; 0: none)")
    parser.add_argument("--dev-problems", type=int, default=100, help="held-out problems for the PRM report")
    parser.add_argument("--paths", type=int, default=PRMRecipe.paths, help="generator paths per labeled problem")
    parser.add_argument("--rollouts", type=int, default=PRMRecipe.rollouts, help="rollouts per step (Math-Shepherd style)")
    parser.add_argument("--prm-label", choices=LABELS, default=PRMRecipe.label,
                        help="each step's training target: 'majority' or 'hard' of the rollouts, or 'exact', the "
                             "solver's verdict (no rollouts are sampled then)")
    parser.add_argument("--skip-generator", action="store_true", help="reuse the generator in --generator-out")
    parser.add_argument("--scaling", action="store_true", help="also run the scaling report at the end")
    add_scaling_arguments(parser, standalone=False)


def add_scaling_arguments(parser: argparse.ArgumentParser, standalone: bool = True) -> None:
    if standalone:
        parser.add_argument("--scaling", action="store_true", help="the scaling report (the default)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--generator", default=None, help="generator directory (default: the demo generator)")
        parser.add_argument("--prm", default=None, help="PRM directory (default: the demo PRM)")
    parser.add_argument("--problems", default=str(DATA_DIR / "countdown_eval.jsonl"), help="held-out problems")
    parser.add_argument("--limit", type=int, default=None, help="only the first N problems")
    parser.add_argument("--algorithms", nargs="+", default=["greedy", "best_of_n", "beam", "mcts"])
    parser.add_argument("--budgets", nargs="+", type=int, default=[4, 16, 64])
    parser.add_argument("--workers", type=int, default=2, help="processes (one thread each)")
    parser.add_argument("--docs", default=str(ROOT / "docs"), help="where scaling.md and scaling.png go")
    parser.add_argument("--results", default=str(WORK / "scaling_results.jsonl"), help="per-problem results")


def add_label_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--problems", required=True, help="Countdown problems (JSONL)")
    parser.add_argument("--generator", default=None, help="generator directory (default: the demo generator)")
    parser.add_argument("--paths", type=int, default=2, help="generator paths per problem")
    parser.add_argument("--rollouts", type=int, default=4, help="rollouts per step")
    parser.add_argument("--temperature", type=float, default=0.7, help="sampling temperature of the rollouts")
    parser.add_argument("--limit", type=int, default=None, help="only the first N problems")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="TRL stepwise records with soft labels (JSONL)")


def _threads() -> None:
    import torch

    torch.set_num_threads(2)


def label(args: argparse.Namespace) -> None:
    """`label`: rollout labels for the problems of `--problems`, written as TRL stepwise records."""
    make_labels(args)


def make_labels(args: argparse.Namespace) -> list[dict]:
    """Rollout labels for the problems of `--problems`, written as TRL stepwise records."""
    from reasoning.problems import read_problems

    from .label import demo_generator, label_agreement, label_paths, write_records

    _threads()
    problems = read_problems(args.problems)[: args.limit]
    if any(p.domain != "countdown" for p in problems):
        raise ValueError(f"{args.problems}: rollout labels need Countdown problems (an exact checker)")
    records = label_paths(demo_generator(args.generator), problems, args.paths, args.rollouts, seed=args.seed,
                          rollout_temperature=args.temperature)
    write_records(records, Path(args.out))
    print(f"{len(records)} labeled paths in {args.out}; rollout labels vs solver: {label_agreement(records)}")
    return records


def train_demo(args: argparse.Namespace) -> None:
    """Problem sets, generator, rollout labels, PRM (and optionally the scaling report), all from `--seed`."""
    from .train_prm import evaluate_prm, train_prm

    _check_train_demo(args)
    _threads()
    started = time.time()
    _keep_split(make_splits(seed=args.seed))
    gen_dir, prm_dir = Path(args.generator_out), Path(args.prm_out)
    if not args.skip_generator:
        _train_demo_generator(args, gen_dir)
    if args.skip_prm:
        print(f"train-demo finished the generator in {(time.time() - started) / 60:.1f} min")
        return
    WORK.mkdir(parents=True, exist_ok=True)
    rollouts = 1 if args.prm_label == "exact" else args.rollouts  # the solver labels: the paths alone
    common = {"generator": str(gen_dir), "paths": args.paths, "rollouts": rollouts, "seed": args.seed,
              "temperature": 0.7}
    train_records = make_labels(argparse.Namespace(
        problems=str(DATA_DIR / "countdown_train.jsonl"), limit=args.label_problems,
        out=str(WORK / "labels_train.jsonl"), **common))
    dev_records = make_labels(argparse.Namespace(
        problems=str(DATA_DIR / "countdown_dev.jsonl"), limit=args.dev_problems, out=str(WORK / "labels_dev.jsonl"),
        **common))
    solver = _solver_records(args)
    recipe = replace(PRMRecipe(seed=args.seed), paths=args.paths, rollouts=rollouts, label=args.prm_label,
                     solver_paths=args.prm_solver_paths, wide_boards=args.prm_wide_boards, **_steps(args.prm_steps))
    data_info = {"problems": "reasoning/data/countdown_train.jsonl", "labelled_problems": args.label_problems,
                 "solver_paths": len(solver),
                 "paths_per_problem": args.paths, "rollouts_per_step": rollouts, "rollout_temperature": 0.7,
                 "path_temperature": 1.0}
    train_prm(prm_dir, gen_dir, train_records + solver, recipe, data_info)
    report = _prm_report(prm_dir, dev_records, evaluate_prm)
    print(f"demo PRM on held-out steps: {json.dumps(report)}")
    if args.scaling:
        run_scaling(argparse.Namespace(**vars(args), generator=str(gen_dir), prm=str(prm_dir)))
    print(f"train-demo finished in {(time.time() - started) / 60:.1f} min")


def _solver_records(args: argparse.Namespace) -> list[dict]:
    """`--prm-solver-paths` paths per training problem (and per wide board), drawn and labelled by the solver."""
    from reasoning.problems import countdown_problem, read_problems

    from .label import solver_paths, write_records
    from .problemsets import wide_multisets

    if not args.prm_solver_paths:
        return []
    problems = read_problems(DATA_DIR / "countdown_train.jsonl")[: args.label_problems]
    if args.prm_wide_boards:
        problems += [countdown_problem(list(m), pid=f"countdown-wide-{i:04d}")
                     for i, m in enumerate(wide_multisets(args.prm_wide_boards))]
    records = solver_paths(problems, args.prm_solver_paths, seed=args.seed)
    write_records(records, WORK / "labels_solver.jsonl")
    print(f"{len(records)} solver paths over {len(problems)} boards in {WORK / 'labels_solver.jsonl'}")
    return records


def _check_train_demo(args: argparse.Namespace) -> None:
    """Every flag of train-demo that could be wrong, refused in one line before anything is written."""
    _check_prm_flags(args)
    for flag, value in (("--generator-steps", args.generator_steps), ("--generator-lr", args.generator_lr)):
        if value is not None and not value > 0:
            raise ValueError(f"{flag} must be positive, not {value}")
    for flag, value in (("--check-first", args.check_first), ("--first-dead", args.first_dead)):
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError(f"{flag} must be a share between 0 and 1, not {value}")
    if args.every_dead_first and not args.check_first:
        raise ValueError("--every-dead-first writes checked first tries: it needs --check-first above 0")
    if args.wide_traces < 1:
        raise ValueError(f"--wide-traces must be at least 1, not {args.wide_traces}")
    if args.generator_from and not (Path(args.generator_from) / "config.json").is_file():
        raise ValueError(f"--generator-from {args.generator_from}: no model there (config.json missing)")
    if args.generator_from and args.skip_generator:
        raise ValueError("--generator-from and --skip-generator contradict each other: pick one")


def _check_prm_flags(args: argparse.Namespace) -> None:
    for flag, value in (("--wide-boards", args.wide_boards), ("--prm-wide-boards", args.prm_wide_boards)):
        if value and not 13 < value <= 30:
            raise ValueError(f"{flag} must be a largest number from 14 to 30, not {value}")
    if args.prm_wide_boards and not args.prm_solver_paths:
        raise ValueError("--prm-wide-boards draws solver paths over more boards: it needs --prm-solver-paths above 0")
    if args.prm_solver_paths < 0:
        raise ValueError(f"--prm-solver-paths must be 0 or more, not {args.prm_solver_paths}")


def _keep_split(splits: dict) -> None:
    """Write the problem split, unless another one is there: a different split would move held-out problems into
    training (every measured figure is on the committed one)."""
    from .problemsets import load_split

    try:
        held = {name: load_split(name) for name in splits}
    except ValueError:  # no split yet: a fresh one
        write_splits(splits)
        return
    if held != splits:
        raise ValueError(f"--seed's problem split differs from the one in {DATA_DIR}: training on it "
                         "would take in held-out problems; move those files away to start a new split")


def _train_demo_generator(args: argparse.Namespace, gen_dir: Path) -> None:
    from .traces import TRACE_RECIPE
    from .train_generator import GeneratorRecipe, train_generator

    recipe = GeneratorRecipe(seed=args.seed if args.trace_seed is None else args.trace_seed,
                             wide_boards=args.wide_boards, wide_traces=args.wide_traces,
                             every_dead_first=args.every_dead_first)
    traces = TRACE_RECIPE
    if args.check_first is not None:
        traces = replace(traces, check_first=args.check_first)
    if args.first_dead is not None:
        traces = replace(traces, first_dead=args.first_dead)
    base = Path(args.generator_from) if args.generator_from else None
    if base:  # one cycle from the given weights, no dropout
        recipe = replace(recipe, cycles=((args.generator_steps or 1500, args.generator_lr or 5e-4, 0.0),))
    elif args.generator_steps:  # a quick trial: one cycle instead of the recipe's schedule
        recipe = replace(recipe, cycles=((args.generator_steps, args.generator_lr or 2e-3, 0.1),))
    train_generator(gen_dir, recipe, traces, base=base)


def _steps(steps: int | None) -> dict:
    return {} if steps is None else {"steps": steps}


def _prm_report(prm_dir: Path, dev_records: list[dict], evaluate_prm) -> dict:
    """Measure the PRM on held-out steps and record it (and the rollout labels' own agreement) in its manifest."""
    from reasoning.backends import load_scorer

    from .label import label_agreement
    from .manifest import MANIFEST

    report = {**evaluate_prm(load_scorer(prm_dir, device="cpu"), dev_records),
              "rollout_labels_vs_solver": label_agreement(dev_records)}
    path = prm_dir / MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["eval_dev"] = report
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return report


def run_scaling(args: argparse.Namespace) -> None:
    """Solve rate for every algorithm and budget on the held-out problems; writes docs/scaling.md and .png."""
    from reasoning.problems import read_problems

    from .label import write_records
    from .scaling import run_grid, write_report

    started = time.time()
    problems = read_problems(args.problems)[: args.limit]
    results = run_grid(problems, args.algorithms, args.budgets, args.seed, args.workers, args.generator, args.prm)
    write_records(sorted(results, key=lambda r: (r["algorithm"], r["budget"], r["id"])), Path(args.results))
    summary = write_report(results, _shown(args.problems), len(problems), time.time() - started, Path(args.docs))
    for (algorithm, budget), s in sorted(summary.items()):
        print(f"{algorithm:<9} budget {budget:3d}: {100 * s['solve_rate']:.1f}% solved, {s['seconds']:.2f} s per problem")
    print(f"wrote {Path(args.docs) / 'scaling.md'} and scaling.png in {(time.time() - started) / 60:.1f} min")


def _shown(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return path


def main(argv: list[str] | None = None) -> None:
    """`python -m demo {train-demo,bench,label}` until app.py wires the same functions."""
    parser = argparse.ArgumentParser(prog="python -m demo")
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_demo_arguments(sub.add_parser("train-demo", help="train the demo generator and PRM"))
    add_scaling_arguments(sub.add_parser("bench", help="the scaling report"))
    add_label_arguments(sub.add_parser("label", help="rollout labels for Countdown problems"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    {"train-demo": train_demo, "bench": run_scaling, "label": label}[args.command](args)
