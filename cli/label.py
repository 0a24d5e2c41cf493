"""`label`: automatic step labels for stored sessions (Monte-Carlo rollouts, optionally first-error search).

Resumable: labels are stored chunk by chunk, and a second run skips every node that already has a label of the
method it computes. `--problems FILE` first grows one tree per problem (a search, as `solve` runs it) and labels that.
Top-level imports stay light: the models and the database load only when the command runs.
"""
from __future__ import annotations

import argparse
import sys

from .common import add_model_arguments, add_search_arguments
from .parser import bounded_int

PROGRESS_SECONDS = 5.0  # off a terminal, labeling's progress is a line at most this often


def add_label_arguments(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--session", type=int, nargs="+", metavar="ID", help="label these sessions")
    which.add_argument("--all", action="store_true", help="label every session in the database")
    which.add_argument("--problems", metavar="FILE.jsonl", help="search each problem (with a gold answer), then "
                       "label its tree")
    g = p.add_argument_group("labels")
    g.add_argument("--rollouts", type=int, default=8, help="continuations per node (Math-Shepherd's N; default 8)")
    g.add_argument("--first-error", action="store_true", help="also run OmegaPRM first-error search on every "
                   "root-to-leaf path (method 'first_error')")
    g.add_argument("--rollout-temperature", type=float, default=0.7, help="sampling temperature of the rollouts")
    g.add_argument("--max-steps", type=int, default=12, help="steps a rollout may add before it counts as failed")
    g.add_argument("--chunk", type=bounded_int(1, 100_000), default=8,
                   help="nodes per stored batch (what an interruption can lose)")
    g.add_argument("--relabel", action="store_true", help="label again nodes that already have a label")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--db", metavar="URL", help="database URL (default: $DATABASE_URL, else SQLite in the data folder)")
    p.add_argument("--ray", metavar="ADDRESS", help="label the sessions on a Ray cluster (`auto`: RAY_ADDRESS or a local "
                   "one), each worker holding the generator once and writing to --db, which must be PostgreSQL")
    p.add_argument("--workers", type=bounded_int(1, 1024), default=2, help="Ray workers with --ray (default 2)")
    add_search_arguments(p)
    add_model_arguments(p)


def run_label(args: argparse.Namespace) -> int:
    from reasoning.labeling import RolloutConfig
    from storage import Store

    from .common import Settings, load_catalog_arg, search_config

    catalog = load_catalog_arg(args)
    config = RolloutConfig(catalog.enabled, n=args.rollouts, temperature=args.rollout_temperature,
                           max_steps=args.max_steps, seed=0 if args.seed is None else args.seed)
    search = search_config(args, Settings.from_env()) if args.problems else None
    if args.ray:
        return _label_on_ray(args, catalog, config)
    problems = _read_gold_problems(args.problems) if args.problems else None
    # labeling stored sessions only reads which there are: a mistyped --db must not make an empty database
    with Store(args.db, create=problems is not None) as store:
        sessions = _sessions(store, args)  # an unknown session id fails here, before any model loads
        generator, scorer = _models(args, catalog, need_prm=problems is not None)
        if problems is not None:
            sessions = _search_problems(store, problems, generator, scorer, search, catalog, args.quiet)
        totals = _label_sessions(store, sessions, generator, config, args)
    return _summary(totals, len(sessions))


def _summary(totals: dict[str, int], sessions: int) -> int:
    """The closing line of `label`, in process or on Ray; the exit status."""
    print(f"labeled {totals['labeled']} nodes in {sessions} sessions ({totals['rollouts']} rollouts); "
          f"skipped {totals['skipped']} already labeled", file=sys.stderr)
    return 0


def _label_on_ray(args: argparse.Namespace, catalog, config) -> int:
    """`label --ray`: the stored sessions spread over Ray workers (experiments.distributed.label)."""
    from experiments import distributed
    from storage import Store

    from .common import Settings
    from .runs import model_spec

    if args.problems:
        raise ValueError("--ray labels stored sessions: search the problems first (solve --ray --run-name NAME), then "
                         "label --ray --all or --session IDS")
    url = args.db or Settings.from_env().database_url
    distributed.check_database(url)  # before the cluster and the models
    if args.vllm:
        from .runs import VLLM_WITH_RAY

        raise ValueError(VLLM_WITH_RAY)
    with Store(url, create=False) as store:
        sessions = _sessions(store, args)
        steps = sum(store.session(sid).nodes - 1 for sid in sessions)
        options = {"relabel": args.relabel, "chunk": args.chunk, "first_error": args.first_error}
        pool = distributed.Pool.start(args.ray, workers=args.workers, db_url=store.url, spec=model_spec(args),
                                      catalog=catalog, labels=(config, options))
        nodes = len({d["node"] for d in pool.described})
        print(f"ray: {args.workers} label workers on {nodes} node{'' if nodes == 1 else 's'}", file=sys.stderr)
        try:
            totals = _ray_label(distributed, pool, sessions, steps, args.quiet)
        finally:
            pool.close()
    return _summary(totals, len(sessions))


def _ray_label(distributed, pool, sessions: list[int], steps: int, quiet: bool) -> dict[str, int]:
    from .progress import progress

    bar = progress(steps, "label", "node", quiet=quiet, every=PROGRESS_SECONDS)
    try:
        return distributed.label(pool, sessions, progress=lambda out: bar.update(out["labeled"] + out["skipped"]))
    finally:
        bar.close()


def _read_gold_problems(path: str):
    from reasoning.problems import read_problems

    problems = read_problems(path)
    lost = [p.id for p in problems if p.domain != "countdown" and not p.answer]
    if lost:
        raise ValueError(f"{path}: problem {lost[0]!r} has no gold answer; rollout labels need one")
    return problems


def _sessions(store, args: argparse.Namespace) -> list[int]:
    if args.session:
        for sid in args.session:
            store.session(sid)  # NotFoundError names the missing one
        return list(args.session)
    if args.all:
        return sorted(s.id for s in store.list_sessions())
    return []


def _models(args: argparse.Namespace, catalog, need_prm: bool):
    """The generator (and the PRM, only when a search must run first)."""
    from pathlib import Path

    from reasoning.backends import DEMO_GENERATOR_DIR, load_generator

    from .common import choose_threads, load_models

    if need_prm or args.vllm:  # --vllm starts both engines (one command's models, as everywhere)
        return load_models(args, catalog)
    generator = load_generator(
        Path(args.generator) if args.generator else DEMO_GENERATOR_DIR, catalog=catalog, device=args.device,
        trust_remote_code=args.trust_remote_code, kv_reuse=not args.no_kv_reuse,
        max_step_tokens=args.max_step_tokens, top_p=getattr(args, "top_p", None) or 1.0,
        kv_cache_mb=getattr(args, "kv_cache_mb", None),
    )
    choose_threads(args, generator)
    return generator, None


def session_name(problem_id: str) -> str:
    return f"label: {problem_id}"


def _search_problems(store, problems, generator, scorer, config, catalog, quiet: bool) -> list[int]:
    """One searched tree per problem, saved as a session; a problem searched by an earlier run is not searched again."""
    from .progress import progress
    from .search import _save, solve_one

    known = {s.name: s.id for s in store.list_sessions()}
    out = []
    bar = progress(len(problems), "search", "problem", quiet=quiet)
    for problem in problems:
        name = session_name(problem.id)
        if name in known:
            out.append(known[name])
        else:
            _record, tree = solve_one(problem, generator, scorer, config, catalog)
            out.append(_save(store, tree, config, generator, scorer, catalog, name))
        bar.update(1)
    bar.close()
    return out


def _label_sessions(store, sessions: list[int], generator, config, args: argparse.Namespace) -> dict[str, int]:
    from experiments.autolabel import label_first_errors, label_rollouts

    from .progress import progress

    totals = {"labeled": 0, "skipped": 0, "rollouts": 0}
    steps = sum(store.session(sid).nodes - 1 for sid in sessions)  # every session's steps first: a true ETA
    bar = progress(steps, "label", "node", quiet=args.quiet, every=PROGRESS_SECONDS)
    try:
        for sid in sessions:
            seen = [0]

            def advance(done: int, _total: int, seen: list[int] = seen) -> None:
                bar.update(done - seen[0])
                seen[0] = done

            bar.set_postfix(session=sid)
            report = label_rollouts(store, sid, generator, config, skip_labeled=not args.relabel,
                                    chunk=args.chunk, progress=advance)
            bar.update(report.skipped)
            _add(totals, report)
            if args.first_error:
                _add(totals, label_first_errors(store, sid, generator, config, skip_labeled=not args.relabel))
    finally:
        bar.close()
    return totals


def _add(totals: dict[str, int], report) -> None:
    totals["labeled"] += len(report.labeled)
    totals["skipped"] += report.skipped
    totals["rollouts"] += report.rollouts
