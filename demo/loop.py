"""`python app.py loop-demo`: the labeling loop on the demo domain, end to end, measured before and after.

1. a deliberately weak PRM: `train-prm` on rollout labels of a few training problems (a small share of the labels);
2. one MCTS tree per training problem, grown with the generator and that weak PRM, stored in a database;
3. `label`: rollout labels on every node of those trees (the core path, `storage.autolabel`), plus a few hand
   ratings sent to the app's `/rate` API with gradio_client (the app served on loopback over the loop's database),
   rated by the exact solver standing in for a careful annotator;
4. export (TRL stepwise, human and auto labels, soft) and `train-prm` again, from the same base;
5. both PRMs measured on held-out steps (ProcessBench F1 of the earliest error and step agreement against the exact
   solver's verdicts) and by the MCTS solve rate on held-out problems at budgets 16 and 64.

Every stage writes its artifact into `--workdir` and is skipped when that artifact exists, so a rerun resumes.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent
ANNOTATOR = "loop-demo (exact solver)"


def add_loop_demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", default=str(ROOT / "data" / "demo" / "loop"), help="artifacts and the database")
    p.add_argument("--train-problems", type=int, default=100, help="training problems searched and labeled")
    p.add_argument("--weak-problems", type=int, default=20, help="training problems behind the weak PRM")
    p.add_argument("--eval-problems", type=int, default=100, help="held-out problems for the solve rate")
    p.add_argument("--dev-problems", type=int, default=50, help="held-out problems whose paths give the step metrics")
    p.add_argument("--budgets", type=int, nargs="+", default=[16, 64], help="MCTS budgets of the solve rate")
    p.add_argument("--tree-budget", type=int, default=16, help="MCTS budget of the trees that get labeled")
    p.add_argument("--rollouts", type=int, default=4, help="rollouts per node")
    p.add_argument("--hand-ratings", type=int, default=30, help="steps rated by hand (the exact solver) through the /rate API")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1, help="processes for the solve-rate runs (one thread each)")


def run_loop_demo(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(1)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    timings: dict[str, float] = {}

    def stage(name: str, fn, *a):
        t = time.time()
        out = fn(*a)
        timings[name] = round(time.time() - t, 1)
        log.warning("loop-demo: %s done in %.0f s", name, timings[name])
        return out

    weak_data = stage("weak labels", _weak_labels, args, work)
    weak = stage("weak PRM", _train, weak_data, work / "prm-weak", None, args.seed)
    db = f"sqlite:///{work / 'loop.db'}"
    stage("trees", _trees, args, db, weak)
    label_report = stage("rollout labels", _label, args, db)
    hand = stage("hand ratings", _hand_ratings, args, db)
    export = stage("export", _export, db, work / "loop-export.jsonl", weak_data, work / "train-after.jsonl")
    after = stage("PRM after", _train, export, work / "prm-after", None, args.seed)
    dev = stage("held-out steps", _dev_records, args, work / "dev-exact.jsonl")
    steps = {name: _step_metrics(prm, dev) for name, prm in (("before", weak), ("after", after))}
    solve = stage("solve rate", _solve_rates, args, work, weak, after)
    report = {
        "train_problems": args.train_problems, "weak_problems": args.weak_problems, "rollouts": args.rollouts,
        "labels": label_report, "hand_ratings": hand, "held_out_steps": steps, "solve_rate": solve,
        "minutes": round((time.time() - started) / 60, 1), "stage_seconds": timings,
        "command": "python app.py loop-demo " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
                                                         if k not in ("func", "command", "debug")),
    }
    (work / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    return 0


def _split(name: str):
    from reasoning.problems import read_problems

    from .problemsets import DATA_DIR

    return read_problems(DATA_DIR / f"countdown_{name}.jsonl")


def _rollout_records(problems, out: Path, seed: int, rollouts: int = 4) -> Path:
    """Rollout-labeled generator paths (`demo.label`), as TRL stepwise records with `exact`."""
    from .label import demo_generator, label_paths, write_records

    if out.exists():
        return out
    records = label_paths(demo_generator(), problems, paths_per_problem=2, rollouts=rollouts, seed=seed)
    write_records(records, out)
    return out


def _weak_labels(args: argparse.Namespace, work: Path) -> Path:
    problems = _split("train")[args.train_problems : args.train_problems + args.weak_problems]
    return _rollout_records(problems, work / "weak-labels.jsonl", args.seed)


def _train(data: Path, out: Path, eval_data: Path | None, seed: int) -> Path:
    from reasoning.backends import DEMO_GENERATOR_DIR
    from reasoning.training.prm import TrainConfig, train_prm

    if not (out / "manifest.json").exists():
        config = TrainConfig(epochs=4, batch_size=16, lr=5e-4, seed=seed, eval_share=0.1)
        train_prm(data, DEMO_GENERATOR_DIR, out, config, eval_data=eval_data, device="cpu")
    return out


def _generator():
    from reasoning.backends import DEMO_GENERATOR_DIR, load_generator
    from reasoning.factors import load_catalog

    from .traces import DEMO_FACTORS

    catalog = load_catalog().with_enabled(set(DEMO_FACTORS))
    return load_generator(DEMO_GENERATOR_DIR, catalog=catalog, device="cpu"), catalog


def _models(prm: Path):
    from reasoning.backends import load_scorer

    generator, catalog = _generator()
    return generator, load_scorer(prm, device="cpu"), catalog


def _trees(args: argparse.Namespace, db: str, weak: Path) -> None:
    from tqdm import tqdm

    from reasoning.search import search
    from storage import Store

    from .scaling import demo_config

    generator, scorer, catalog = _models(weak)
    config = demo_config("mcts", args.tree_budget, args.seed)
    with Store(db) as store:
        known = {s.name for s in store.list_sessions()}
        for problem in tqdm(_split("train")[: args.train_problems], desc="trees", mininterval=10):
            name = f"loop: {problem.id}"
            if name not in known:
                tree, _ = search(problem, generator, scorer, config)
                store.create_session(tree, name=name, config=config.to_dict(), catalog=catalog.to_dict(),
                                     provenance={"generator": generator.provenance(), "prm": scorer.provenance()})


def _label(args: argparse.Namespace, db: str) -> dict:
    from tqdm import tqdm

    from experiments.autolabel import label_rollouts
    from reasoning.labeling import RolloutConfig
    from storage import Store

    generator, catalog = _generator()
    config = RolloutConfig(catalog.enabled, n=args.rollouts, temperature=0.7, max_steps=8, seed=args.seed)
    totals = {"nodes": 0, "rollouts": 0, "skipped": 0}
    with Store(db) as store:
        for info in tqdm(store.list_sessions(), desc="label", mininterval=10):
            report = label_rollouts(store, info.id, generator, config, chunk=16)
            totals["nodes"] += len(report.labeled)
            totals["rollouts"] += report.rollouts
            totals["skipped"] += report.skipped
        totals["auto_labels"] = store.counts()["auto_labels"]
    return totals


def _hand_ratings(args: argparse.Namespace, db: str) -> dict:
    """A few steps rated +1 / -1 through the app's `/rate` API with gradio_client, as an annotator's script would
    (the app served in this process on loopback over the loop's database), by the exact solver standing in for a
    careful annotator. Each rating carries an action id, so a rerun after an interruption does not rate twice."""
    import random

    from gradio_client import Client

    from storage import Store
    from ui.testing import demo_models, serve

    from .label import exact_label

    rng = random.Random(args.seed)
    with Store(db) as store:
        sessions = sorted(s.id for s in store.list_sessions())
        done = sum(len(store.annotations(sid)) for sid in sessions)
        candidates = []
        for sid in sessions:
            tree = store.load_tree(sid)
            candidates += [(sid, tree, n) for n in tree.nodes(include_pruned=False) if n != "0"]
        rng.shuffle(candidates)
        todo = candidates[: max(0, args.hand_ratings - done)]
        if todo:
            generator, scorer = demo_models()
            with serve(generator=generator, scorer=scorer, store=store) as url:
                client = Client(url, verbose=False)
                for sid, tree, nid in todo:
                    rating = 1 if exact_label(tree.state(nid)) else -1
                    client.predict(sid, nid, rating, annotator=ANNOTATOR, action_id=f"loop-demo-{sid}-{nid}",
                                   api_name="/rate")
        rated = [a for sid in sessions for a in store.annotations(sid)]
        autos = {(sid, a.node_id): a for sid in sessions for a in store.auto_labels(sid)}
    agree = [((autos[(a.session_id, a.node_id)].successes > 0) == (a.rating > 0)) for a in rated
             if (a.session_id, a.node_id) in autos]
    return {"ratings": len(rated), "through": "the /rate API (gradio_client)", "rollout_label_agrees": sum(agree),
            "compared": len(agree)}


def _export(db: str, out: Path, weak_data: Path, combined: Path) -> Path:
    """The loop's labels (human first, then auto; soft values) and the weak PRM's own records, in one file."""
    from storage import Store
    from storage.export import write_export
    from storage.labels import LabelOptions

    if not combined.exists():
        with Store(db) as store:
            write_export(store.labeled_trees(), "trl", out, LabelOptions("both", soft=True))
        weak = [json.loads(line) for line in weak_data.read_text(encoding="utf-8").splitlines() if line.strip()]
        keep = ("prompt", "completions", "labels", "soft_labels")
        lines = out.read_text(encoding="utf-8").splitlines() + [json.dumps({k: r[k] for k in keep}) for r in weak]
        combined.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return combined


def _dev_records(args: argparse.Namespace, out: Path) -> list[dict]:
    problems = _split("dev")[: args.dev_problems]
    path = _rollout_records(problems, out, args.seed + 1, rollouts=1)  # only the exact verdicts are used
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _step_metrics(prm: Path, records: list[dict]) -> dict:
    """ProcessBench F1 and step agreement against the exact solver's verdicts, on held-out paths."""
    from reasoning.backends import load_scorer
    from reasoning.problems import countdown_problem
    from reasoning.training.prm import processbench_metrics

    scorer = load_scorer(prm, device="cpu")
    scores = [scorer.score(countdown_problem(r["numbers"], pid=r["id"]), [r["completions"]])[0] for r in records]
    return processbench_metrics(scores, [r["exact"] for r in records])


def _solve_rates(args: argparse.Namespace, work: Path, weak: Path, after: Path) -> dict:
    from .scaling import run_grid, summarise

    out = work / "solve.json"
    if out.exists():
        return json.loads(out.read_text(encoding="utf-8"))
    problems = _split("eval")[: args.eval_problems]
    rates = {}
    for name, prm in (("before", weak), ("after", after)):
        results = run_grid(problems, ["mcts"], args.budgets, args.seed, args.workers, None, str(prm))
        rates[name] = {str(b): round(s["solve_rate"], 4) for (_, b), s in sorted(summarise(results).items())}
    rates["problems"] = len(problems)
    out.write_text(json.dumps(rates, indent=2) + "\n", encoding="utf-8")
    return rates
