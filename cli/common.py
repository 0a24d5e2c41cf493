"""Shared command-line pieces: settings, model and search arguments, and loading models from them."""
from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from reasoning.limits import MAX_STEP_TOKENS
from reasoning.search import HELP, SearchConfig
from reasoning.search.config import ALGORITHMS, ANSWER_SELECTIONS, DEFAULT_MAX_BUDGET

from .parser import bounded_int


@dataclass(frozen=True)
class Settings:
    """Process-wide settings read from the environment once."""

    max_budget: int = DEFAULT_MAX_BUDGET
    database_url: str | None = None

    @classmethod
    def from_env(cls) -> Settings:
        raw = os.environ.get("REASONING_MAX_BUDGET", str(DEFAULT_MAX_BUDGET))
        try:
            cap = int(raw)
        except ValueError:
            raise ValueError(f"REASONING_MAX_BUDGET must be an integer, got {raw!r}") from None
        if cap < 1:
            raise ValueError(f"REASONING_MAX_BUDGET must be at least 1, got {cap}")
        return cls(max_budget=cap, database_url=os.environ.get("DATABASE_URL") or None)


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("models")
    g.add_argument("--generator", metavar="DIR", help="local causal-LM directory (default: the demo generator)")
    g.add_argument("--prm", metavar="DIR", help="local PRM directory (default: the demo PRM)")
    g.add_argument("--prm-adapter", help="PRM adapter (default: read prm_config.json or the model config)")
    g.add_argument("--device", help="cpu, cuda or cuda:N (default: CUDA when available)")
    g.add_argument("--max-step-tokens", type=bounded_int(1, MAX_STEP_TOKENS), default=64,
                   help=f"tokens per generated step at most (1-{MAX_STEP_TOKENS})")
    g.add_argument("--no-kv-reuse", action="store_true", help="recompute the prefix for every token (no shared cache)")
    g.add_argument("--trust-remote-code", action="store_true", help="allow model code shipped with the model")


def add_search_arguments(p: argparse.ArgumentParser, *, budget_required: bool = False) -> None:
    g = p.add_argument_group("search")
    g.add_argument("--algorithm", choices=ALGORITHMS, default="mcts", help=HELP["algorithm"])
    g.add_argument("--budget", type=int, default=None if budget_required else 64, required=budget_required,
                   help=HELP["budget"])
    g.add_argument("--seed", type=int, default=0, help=HELP["seed"])
    g.add_argument("--candidates", type=int, default=None, help=HELP["candidates"] + _default("candidates"))
    g.add_argument("--temperatures", default=None, help=HELP["temperatures"] + " (comma separated)")
    g.add_argument("--top-p", type=float, default=1.0, help=HELP["top_p"])
    g.add_argument("--c-puct", type=float, default=None, help=HELP["c_puct"] + _default("c_puct"))
    g.add_argument("--widen", type=float, default=None, help=HELP["widen"] + _default("widen"))
    g.add_argument("--fpu-reduction", type=float, default=None, help=HELP["fpu_reduction"] + _default("fpu_reduction"))
    g.add_argument("--beam-width", type=int, default=None, help=HELP["beam_width"] + _default("beam_width"))
    g.add_argument("--max-depth", type=int, default=None, help=HELP["max_depth"] + _default("max_depth"))
    g.add_argument("--parallel-leaves", type=int, default=1, help=HELP["parallel_leaves"])
    g.add_argument("--aggregation", default=None, help=HELP["aggregation"] + _default("aggregation"))
    g.add_argument("--answer-selection", choices=ANSWER_SELECTIONS, default=None,
                   help=HELP["answer_selection"] + _default("answer_selection"))
    g.add_argument("--keep-duplicates", action="store_true",
                   help="add a sampled step identical to a sibling as a node of its own (default: " + HELP["merge_duplicates"] + ")")
    g.add_argument("--catalog", metavar="FILE", help="thought-factor catalog, JSON or YAML (default: built in)")
    g.add_argument("--factors", help="comma-separated thought factors to enable (default: the catalog's)")


def _floats(raw: str, name: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in raw.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"{name} must be comma-separated numbers, got {raw!r}") from None


def _default(name: str) -> str:
    return f" (default: {getattr(SearchConfig, name)}; on the demo models, the scaling report's setting)"


# the search flags whose argparse default is None: unset, they take the demo's tuned value or SearchConfig's default
DEFAULTED_FLAGS = ("candidates", "c_puct", "widen", "fpu_reduction", "beam_width", "max_depth", "aggregation",
                   "answer_selection")


def demo_search_defaults(args: argparse.Namespace, algorithm: str = "mcts") -> dict:
    """On the demo models (no --generator, no --prm), the search settings of the scaling report, the algorithm's own
    included; on any other models, nothing (SearchConfig's defaults)."""
    if getattr(args, "generator", None) or getattr(args, "prm", None):
        return {}
    from demo.scaling import demo_config

    report = demo_config(algorithm, budget=1)  # the report's settings for `algorithm`; the budget is not among them
    return {name: getattr(report, name) for name in DEFAULTED_FLAGS}


def search_config(args: argparse.Namespace, settings: Settings) -> SearchConfig:
    """The validated SearchConfig the arguments ask for (a ValueError names the bad one). A setting not given takes
    the demo's tuned value on the demo models, else SearchConfig's default."""
    temps = _floats(args.temperatures, "--temperatures") if args.temperatures else SearchConfig.temperatures
    factors = tuple(f.strip() for f in args.factors.split(",") if f.strip()) if args.factors else None
    tuned = {**{name: getattr(SearchConfig, name) for name in DEFAULTED_FLAGS}, **demo_search_defaults(args, args.algorithm)}
    picked = {name: tuned[name] if getattr(args, name) is None else getattr(args, name) for name in DEFAULTED_FLAGS}
    return SearchConfig(
        algorithm=args.algorithm, budget=args.budget, seed=args.seed, temperatures=temps, top_p=args.top_p,
        parallel_leaves=args.parallel_leaves, factors=factors, max_budget=settings.max_budget,
        merge_duplicates=not args.keep_duplicates, **picked,
    )


def load_catalog_arg(args: argparse.Namespace):
    """The catalog the arguments name, with `--factors` enabled; on the demo generator, the factors it was
    trained on (a tag-trained model gives untrained factors no sensible steps)."""
    from reasoning.factors import load_catalog

    catalog = load_catalog(getattr(args, "catalog", None))
    if getattr(args, "factors", None):
        return catalog.with_enabled([f.strip() for f in args.factors.split(",") if f.strip()])
    if not getattr(args, "generator", None):
        from demo.traces import DEMO_FACTORS

        return catalog.with_enabled(set(DEMO_FACTORS) & set(catalog.names))
    return catalog


def load_models(args: argparse.Namespace, catalog=None):
    """The generator and PRM the arguments name, the demo models by default."""
    from reasoning.backends import DEMO_GENERATOR_DIR, DEMO_PRM_DIR, load_generator, load_scorer

    generator = load_generator(
        Path(args.generator) if args.generator else DEMO_GENERATOR_DIR, catalog=catalog, device=args.device,
        trust_remote_code=args.trust_remote_code, kv_reuse=not args.no_kv_reuse,
        max_step_tokens=args.max_step_tokens, top_p=getattr(args, "top_p", 1.0),
    )
    scorer = load_scorer(
        Path(args.prm) if args.prm else DEMO_PRM_DIR, adapter=args.prm_adapter, device=args.device,
        trust_remote_code=args.trust_remote_code,
    )
    return generator, scorer


def check_output_path(path: str) -> Path:
    """Fail before any work when the output file's folder is missing, is not writable, or the path is a folder:
    a run must not spend hours and then fail on its last write."""
    out = Path(path)
    if out.is_dir():
        raise ValueError(f"--out {out} is a directory, not a file")
    if not out.parent.is_dir():
        raise ValueError(f"--out folder {out.parent} does not exist")
    try:  # the same kind of write the result will need: a temporary file beside it
        with tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.", suffix=".probe"):
            pass
    except OSError as exc:
        raise ValueError(f"--out folder {out.parent} is not writable ({exc.strerror})") from None
    if out.exists() and not os.access(out, os.W_OK):
        raise ValueError(f"--out {out} exists and is not writable")
    return out
