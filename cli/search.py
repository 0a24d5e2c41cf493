"""`search` (one problem, printed as an outline) and `solve` (a problems file in, one result record per problem out)."""
from __future__ import annotations

import argparse
import json
import sys
import time

from reasoning.domains import get_domain
from reasoning.limits import terminal_safe
from reasoning.problems import parse_problem_text, read_problems
from reasoning.search import SearchConfig, iterate
from reasoning.tree import ROOT, ReasoningTree
from storage.export import atomic_write

from .common import (
    Settings,
    add_model_arguments,
    add_search_arguments,
    check_output_path,
    load_catalog_arg,
    load_models,
    load_orm_arg,
    search_config,
)
from .progress import progress

PROGRESS_SECONDS = 5.0  # off a terminal, a search's progress is a line at most this often


def add_search_command_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("problem", help='the problem, e.g. "Use 4 7 8 8 to make 24." or a math word problem')
    add_search_arguments(p)
    add_model_arguments(p)
    p.add_argument("--db", metavar="URL", help="also save the tree to this database (default: do not save)")
    p.add_argument("--json", action="store_true", help="print the tree as JSON instead of an outline")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def add_solve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--problems", metavar="FILE.jsonl", help="problem records, one per line (not with --resume)")
    p.add_argument("--out", required=True, metavar="FILE.jsonl", help="result records, one per problem")
    p.add_argument("--run-name", metavar="NAME", help="record the solve as a run in the database (--db, else the "
                   "default SQLite): every result with its tree, resumable, listed by `runs list`")
    p.add_argument("--resume", metavar="RUN", help="resume a stopped or killed run (id or name): its problems, "
                   "settings and models' identities come from the database; finished problems are not redone")
    p.add_argument("--problem-set", metavar="NAME", help="the name the run's problems are stored under (default: "
                   "the problems file's name)")
    add_search_arguments(p, budget_required=True)
    add_model_arguments(p)
    p.add_argument("--db", metavar="URL", help="also save every tree to this database")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--workers", type=int, default=1,
                   help="problems in flight at once (threads sharing the models or servers; results are the same "
                        "as with 1)")
    p.add_argument("--ray", metavar="ADDRESS", help="search the run's problems on a Ray cluster (`auto`: the one "
                   "RAY_ADDRESS names, else a local one started here), --workers actors, each loading the models "
                   "once; needs --run-name or --resume and a PostgreSQL --db every node reaches")


def outline(tree: ReasoningTree, nid: str = ROOT, indent: int = 0) -> list[str]:
    """The tree as an indented outline: factor, PRM score, visits and Q per node."""
    a = tree.node(nid)
    if nid == ROOT:
        line = f"[{nid}] problem: {terminal_safe(a['text'])}  (visits {a['visits']}, Q {tree.q(nid):.3f})"
    else:
        score = "-" if a["score"] is None else f"{a['score']:.3f}"
        flags = "".join([" TERMINAL" if a["terminal"] else "", " PRUNED" if a["pruned"] else ""])
        answer = f" answer={terminal_safe(str(a['answer']))}" if a["answer"] is not None else ""
        line = (f"{'  ' * indent}[{nid}] {a['factor']}: {terminal_safe(repr(a['text']))}  (prm {score}, visits {a['visits']}, "
                f"Q {tree.q(nid):.3f}){answer}{flags}")
    lines = [line]
    for child in tree.children(nid, include_pruned=True):
        lines += outline(tree, child, indent + 1)
    return lines


def _open_store(db_url: str | None):
    if not db_url:
        return None
    from storage import Store

    return Store(db_url)


def _session(tree: ReasoningTree, config: SearchConfig, generator, scorer, catalog, name: str) -> dict:
    """What `Store.create_session(s)` stores for one searched tree."""
    return {"tree": tree, "name": name, "config": config.to_dict(), "catalog": catalog.to_dict(),
            "provenance": {"generator": generator.provenance(), "prm": scorer.provenance()}}


def _save(store, tree: ReasoningTree, config: SearchConfig, generator, scorer, catalog, name: str):
    if store is None:
        return None
    return store.create_session(**_session(tree, config, generator, scorer, catalog, name))


def run_search(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    config = search_config(args, settings)
    problem = parse_problem_text(args.problem)
    catalog = load_catalog_arg(args)
    store = _open_store(args.db)  # before the search: a bad --db fails before any work
    generator, scorer = load_models(args, catalog)
    orm = load_orm_arg(args, config)
    tree = ReasoningTree(problem)
    result = None
    bar = progress(config.budget, "search", "node", quiet=args.quiet, every=PROGRESS_SECONDS)
    for event in iterate(tree, generator, scorer, config, catalog=catalog, orm=orm):
        result = event.result or result
        bar.update(event.created - bar.n)
    bar.close()
    if args.json:
        print(json.dumps(tree.to_dict(), default=str))
    else:
        print("\n".join(outline(tree)))
        solved = get_domain(problem.domain).check(problem, result.answer)
        verdict = "correct" if solved else ("incorrect" if problem.answer or problem.domain == "countdown" else "?")
        print(f"\nanswer: {terminal_safe(str(result.answer))}  ({verdict}; {result.nodes_created} nodes, "
              f"{result.generated_tokens} tokens, {result.seconds:.1f}s)")
    session = _save(store, tree, config, generator, scorer, catalog, f"search: {problem.text[:60]}")
    if session is not None:
        print(f"saved as session {session}")
    return 0


def solve_one(problem, generator, scorer, config, catalog, orm=None) -> tuple[dict, ReasoningTree]:
    start = time.perf_counter()
    tree = ReasoningTree(problem)
    result = None
    for event in iterate(tree, generator, scorer, config, catalog=catalog, orm=orm):
        result = event.result or result
    record = {
        "id": problem.id,
        "answer": result.answer,
        "solved": bool(get_domain(problem.domain).check(problem, result.answer)),
        "nodes": result.nodes_created,
        "generated_tokens": result.generated_tokens,
        "seconds": round(time.perf_counter() - start, 4),
    }
    return record, tree


def run_solve(args: argparse.Namespace) -> int:
    if args.run_name or args.resume:
        from .runs import solve_run

        return solve_run(args)
    if getattr(args, "ray", None):
        raise ValueError("--ray records a run in the database: give --run-name NAME (or --resume RUN)")
    if not args.problems:
        raise ValueError("--problems is required (or --resume RUN to continue a recorded run)")
    settings = Settings.from_env()
    config = search_config(args, settings)  # validate everything before loading models
    if not 1 <= args.workers <= 64:
        raise ValueError(f"--workers must be between 1 and 64, got {args.workers}")
    out = check_output_path(args.out)
    problems = read_problems(args.problems)  # the whole file, every text under the shared rule, before any work
    catalog = load_catalog_arg(args)
    store = _open_store(args.db)
    generator, scorer = load_models(args, catalog)
    orm = load_orm_arg(args, config)
    records, sessions, solved = [], [], 0
    bar = progress(len(problems), f"{config.algorithm}@{config.budget}", "problem", quiet=args.quiet)
    for problem, (record, tree) in zip(problems, solve_many(problems, generator, scorer, config, catalog,
                                                            args.workers, orm), strict=True):
        records.append(record)
        solved += record["solved"]
        bar.set_postfix(solved=f"{solved}/{len(records)}")
        bar.update(1)
        if store is not None:
            sessions.append(_session(tree, config, generator, scorer, catalog, f"solve: {problem.id}"))
    bar.close()
    data = "".join(json.dumps(r) + "\n" for r in records).encode("utf-8")
    if store is None:
        atomic_write(out, data)
    else:  # the sessions and the results file together: a run that fails stores no sessions and writes no file
        store.create_sessions(sessions, then=lambda: atomic_write(out, data))
    saved = f" and {len(sessions)} sessions" if store is not None else ""
    print(f"solved {solved}/{len(problems)} with {config.algorithm} at budget {config.budget}; wrote {out}{saved}",
          file=sys.stderr)
    return 0


def solve_many(problems, generator, scorer, config, catalog, workers: int = 1, orm=None):
    """(record, tree) per problem, in the problems' order, with up to `workers` problems searched at once.

    Each search draws only from its own seeded generators, so a problem's tree does not depend on what runs beside
    it; with a server backend the threads' requests overlap in the engine's batches.
    """
    from experiments.execute import bounded_map

    return bounded_map(lambda problem: solve_one(problem, generator, scorer, config, catalog, orm), problems, workers,
                       ordered=True)
