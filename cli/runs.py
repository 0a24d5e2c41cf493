"""`runs list|show|compare|export` and the run behind `solve --run-name` / `solve --resume`: a problem set searched
with one configuration, stored in the database, measured and compared (experiments/)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from experiments.compare import RUN_HEADERS, compare, models_line, run_rows, summary
from storage.export import atomic_write
from storage.records import StorageError
from storage.runs import Runs
from storage.store import Store


def add_runs_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", metavar="URL", help="database URL (default: $DATABASE_URL, else SQLite in the data folder)")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=type(p))
    sub.add_parser("list", help="every run: solve rate with its 95%% interval, means, status, models")
    show = sub.add_parser("show", help="one run: settings, figures and where its budget went")
    show.add_argument("run", metavar="RUN", help="run id or name")
    cmp = sub.add_parser("compare", help="two runs on their shared problems (paired statistics)")
    cmp.add_argument("run_a", metavar="RUN_A")
    cmp.add_argument("run_b", metavar="RUN_B")
    cmp.add_argument("--html", metavar="FILE", help="also write a self-contained offline report")
    exp = sub.add_parser("export", help="a run's results as JSONL, one record per problem")
    exp.add_argument("run", metavar="RUN")
    exp.add_argument("--out", required=True, metavar="FILE")
    for q in (show, cmp, exp):
        q.add_argument("--db", metavar="URL", default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def run_runs(args: argparse.Namespace) -> int:
    try:
        with Store(args.db, create=False) as store:  # reading only: a mistyped --db must not make a database
            return ACTIONS[args.action](Runs(store), args)
    except (StorageError, LookupError, ValueError, OSError) as exc:
        print(f"error: {str(exc).strip(chr(39))}", file=sys.stderr)
        return 2


def _list(runs: Runs, args: argparse.Namespace) -> int:
    rows = run_rows(runs.all())
    if not rows:
        print("no runs yet: `python app.py solve --problems FILE --run-name NAME ...` records one")
        return 0
    widths = [max(len(str(x)) for x in col) for col in zip(RUN_HEADERS, *rows, strict=True)]
    for row in [RUN_HEADERS, *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _show(runs: Runs, args: argparse.Namespace) -> int:
    s = summary(runs, runs.resolve(args.run))
    i, (lo, hi) = s.info, s.interval
    print(f"run {i.id} {i.name!r}: {i.algorithm} at budget {i.budget} on {i.problem_set!r} ({i.status}; started by "
          f"{i.started_by or '?'} {i.started:%Y-%m-%d %H:%M}{f', ended {i.ended:%H:%M}' if i.ended else ''})")
    print(f"solved {i.solved} of {i.done} finished ({i.problems} in the run): {s.rate:.1%}, 95% CI {lo:.1%}-{hi:.1%}")
    print(f"models: {models_line(i.models)}")
    print(f"where the budget went: a correct answer in the tree but not chosen {s.found_missed}, nowhere in the tree "
          f"{s.not_found}; merged duplicate samples {s.duplicate_share:.1%}; mean depth {s.mean_depth:.1f}")
    factors = ", ".join(f"{f} {good}/{n}" for f, (n, good) in s.factors.items())
    print(f"steps on a path to a correct answer, per factor: {factors or '-'}")
    print(f"settings: {json.dumps(i.config, sort_keys=True)}")
    return 0


def _compare(runs: Runs, args: argparse.Namespace) -> int:
    a, b = runs.resolve(args.run_a), runs.resolve(args.run_b)
    c = compare(runs, a, b)
    if c.only_a or c.only_b:
        print(f"note: comparing the {c.stats.n} problems both runs finished ({c.only_a} only in run {a}, "
              f"{c.only_b} only in run {b})")
    print(c.line)
    for row in c.rows:
        mark = "A" if row["a_correct"] else "B"
        print(f"  {mark} solved {row['problem_id']}: {row['problem'][:70]!r} (sessions {row['a_session']}, "
              f"{row['b_session']})")
    if args.html:
        from experiments.report import write_report

        print(f"wrote {write_report(c, args.html)}")
    return 0


def _export(runs: Runs, args: argparse.Namespace) -> int:
    rid = runs.resolve(args.run)
    out = Path(args.out)
    if out.is_dir():
        raise ValueError(f"--out {out} is a directory; name the file to write")
    records = [result_record(r) for r in runs.results(rid)]
    atomic_write(out, "".join(json.dumps(r) + "\n" for r in records).encode())
    print(f"wrote {len(records)} results of run {rid} to {out}")
    return 0


class _LocalModels:
    """A run's models loaded in this process, its problems searched in threads (`--workers`)."""

    def __init__(self, args: argparse.Namespace, config, catalog):
        from experiments.execute import models_identity

        from .common import load_models, load_orm_arg

        self.args, self.config, self.catalog = args, config, catalog
        self.generator, self.scorer = load_models(args, catalog)
        self.orm = load_orm_arg(args, config)
        self.identity = models_identity(self.generator, self.scorer)

    def start(self, runs: Runs, problems, *, name: str, problem_set: str) -> int:
        from experiments.execute import start

        return start(runs, problems, self.config, self.generator, self.scorer, name=name, problem_set=problem_set,
                     started_by="cli", catalog=self.catalog)

    def execute(self, runs: Runs, rid: int, **kw) -> str:
        from experiments.execute import execute

        return execute(runs, rid, self.generator, self.scorer, self.config, self.catalog, orm=self.orm,
                       workers=self.args.workers, **kw)

    def close(self) -> None:
        pass


class _RayModels:
    """A run's models loaded on `--workers` Ray actors (`--ray ADDRESS`), each writing its results to the database."""

    def __init__(self, args: argparse.Namespace, config, catalog, store: Store):
        from experiments import distributed

        if config.answer_selection == "orm" and not args.orm:
            raise ValueError("--answer-selection orm needs --orm DIR (a sequence-classification reward model)")
        self.config, self.catalog = config, catalog
        self.pool = distributed.Pool.start(args.ray, workers=args.workers, db_url=store.url, spec=model_spec(args),
                                           config=config, catalog=catalog)
        self.identity = self.pool.identity
        nodes = len({d["node"] for d in self.pool.described})
        print(f"ray: {args.workers} workers on {nodes} node{'' if nodes == 1 else 's'}", file=sys.stderr)

    def start(self, runs: Runs, problems, *, name: str, problem_set: str) -> int:
        from experiments import distributed

        return distributed.start(runs, problems, self.config, self.identity, name=name, problem_set=problem_set,
                                 started_by="cli", catalog=self.catalog)

    def execute(self, runs: Runs, rid: int, **kw) -> str:
        from experiments import distributed

        return distributed.execute(runs, rid, self.pool, **kw)

    def close(self) -> None:
        self.pool.close()


VLLM_WITH_RAY = ("--vllm starts engines on this machine only, which other Ray nodes cannot reach: start them with "
                 "`engine serve --host ADDRESS` and give --generator URL --prm URL")


def model_spec(args: argparse.Namespace):
    """The model arguments as plain values, for workers that load the models themselves (`solve --ray`)."""
    from experiments.distributed import ModelSpec

    return ModelSpec(generator=args.generator, prm=args.prm, prm_adapter=args.prm_adapter, orm=args.orm,
                     device=args.device, trust_remote_code=args.trust_remote_code, kv_reuse=not args.no_kv_reuse,
                     max_step_tokens=args.max_step_tokens, top_p=getattr(args, "top_p", None) or 1.0,
                     kv_cache_mb=getattr(args, "kv_cache_mb", None),
                     prm_batch_tokens=getattr(args, "prm_batch_tokens", None),
                     prm_kv_cache_mb=getattr(args, "prm_kv_cache_mb", None), threads=getattr(args, "threads", None))


def result_record(r) -> dict:
    """A run's result in `solve --out`'s record format, with the run's own fields beside it."""
    return {"id": r.problem_id, "answer": r.answer, "solved": bool(r.correct), "nodes": r.nodes,
            "generated_tokens": r.tokens, "seconds": r.seconds, "status": r.status, "session": r.session_id,
            "found": r.found, "depth": r.depth, "duplicates": r.duplicates, "value": r.value}


ACTIONS = {"list": _list, "show": _show, "compare": _compare, "export": _export}


# -- solve --run-name / --resume ---------------------------------------------------------------------------------
def solve_run(args: argparse.Namespace) -> int:
    """`solve` recorded as a run: a new one (`--run-name`) or a stopped or killed one resumed (`--resume RUN`);
    `--out` is written at the end as an export of the whole run."""
    import threading

    from tqdm import tqdm

    from experiments.execute import Tick, refuse_changed_models
    from reasoning.problems import read_problems
    from reasoning.search import SearchConfig

    from .common import Settings, check_output_path, load_catalog_arg, search_config

    if args.run_name and args.resume:
        raise ValueError("give --run-name for a new run or --resume RUN for a recorded one, not both")
    if not 1 <= args.workers <= 64:
        raise ValueError(f"--workers must be between 1 and 64, got {args.workers}")
    settings = Settings.from_env()
    out = check_output_path(args.out)
    if getattr(args, "ray", None):  # both refusals before anything is opened or loaded
        from experiments import distributed

        distributed.require_ray()
        distributed.check_database(args.db or settings.database_url)
        if getattr(args, "vllm", False):
            raise ValueError(VLLM_WITH_RAY)
    store = Store(args.db or settings.database_url, create=not args.resume)
    runs = Runs(store)
    if args.resume:
        rid = runs.resolve(args.resume)
        info = runs.info(rid)
        config = SearchConfig.from_stored(info.config, max_budget=settings.max_budget)
        problems = None
    else:
        if not args.problems:
            raise ValueError("--problems is required for a new run")
        config = search_config(args, settings)
        problems = read_problems(args.problems)
    catalog = load_catalog_arg(args)
    models = _RayModels(args, config, catalog, store) if getattr(args, "ray", None) else \
        _LocalModels(args, config, catalog)
    if problems is not None:
        set_name = args.problem_set or Path(args.problems).stem
        rid = models.start(runs, problems, name=args.run_name, problem_set=set_name)
        print(f"run {rid} {args.run_name!r}: {len(problems)} problems, {config.algorithm} at budget {config.budget}",
              file=sys.stderr)
    else:
        refuse_changed_models(info, models.identity)
        print(f"resuming run {rid} {info.name!r}: {info.done} of {info.problems} done", file=sys.stderr)
    bar = tqdm(total=runs.info(rid).problems, initial=runs.info(rid).done, desc=f"run {rid}", unit="problem",
               disable=args.quiet, file=sys.stderr)

    def progress(t: Tick) -> None:
        bar.n = t.done
        bar.set_postfix(solved=f"{t.solved}/{t.done}")

    stop = threading.Event()
    try:
        status = models.execute(runs, rid, progress=progress, stop=stop)
    except KeyboardInterrupt:
        stop.set()
        runs.set_status(rid, "stopped")
        raise
    finally:
        bar.close()
        models.close()
    records = [result_record(r) for r in runs.results(rid)]
    atomic_write(out, "".join(json.dumps(r) + "\n" for r in records).encode())
    info = runs.info(rid)
    print(f"run {rid} {status}: solved {info.solved}/{info.done} of {info.problems} with {config.algorithm} at "
          f"budget {config.budget}; wrote {out}", file=sys.stderr)
    store.close()
    return 0
