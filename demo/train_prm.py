"""Train the demo PRM: a token-classification GPT-2 (started from the demo generator) on rollout step labels.

Everything but the recipe is `train-prm`'s (`reasoning.training.prm`): the base loaded with a new 2-way head, the
paths encoded by the one PRM path encoder (the ids the `token-classification` adapter reads at search time, a step's
label at its separator's last token), the shared training loop and the files `load_scorer` reads.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from reasoning.backends.loading import max_positions
from reasoning.problems import countdown_problem
from reasoning.training.prm import (
    PathEncoder,
    StepwiseRecord,
    bf16_autocast,
    load_base,
    path_loss,
    prm_config,
    train_loop,
    write_prm,
)

from .manifest import write_manifest
from .train_generator import tqdm_progress

PRM_CONFIG = prm_config("\n")


@dataclass(frozen=True)
class PRMRecipe:
    """Everything that determines the demo PRM (with the label records and the generator it starts from)."""

    seed: int = 0
    # 600 gave 82.9% held-out step agreement on 800 labeled problems; 1500 on all 1062 gave 85.1% with the
    # 3-cycle generator (bad-step base rate 85%) and 83.7% with the 4-cycle one (base rate 77.9%, so more informative)
    steps: int = 1500
    batch_size: int = 32
    lr: float = 5e-4
    warmup: int = 30
    weight_decay: float = 0.01
    # "majority": soft value >= 0.5 (measured better on held-out steps: 83.6% vs 81.8% agreement);
    # "hard": any rollout reached the target; "exact": the solver's verdict on the step (`demo.label.exact_label`),
    # which Countdown can afford and a real domain cannot: no rollouts are sampled then
    label: str = "majority"
    # the label data: generator paths per training problem and rollouts per step. With the 4-cycle generator, on the
    # same 1490 held-out steps, 2 paths gave 85.2% agreement (83.2% of operation steps) and 3 paths 88.4% (87.2%):
    # each path shows the PRM one more remaining triple per problem, and triples are the hard part
    paths: int = 3
    rollouts: int = 4
    # paths the solver draws and labels (`demo.label.solver_paths`), per training problem and, with `wide_boards`,
    # per solvable board of numbers 1..wide_boards that is in no split (0: none)
    solver_paths: int = 0
    wide_boards: int = 0


LABELS = ("hard", "majority", "exact")


def stepwise(rec: dict, label: str = "hard") -> StepwiseRecord:
    """A label record as `train-prm` reads it, each step's target by `label`: "hard" (any rollout reached the
    target), "majority" (at least half did) or "exact" (the solver's verdict)."""
    if label not in LABELS:
        raise ValueError(f"PRM label must be one of {', '.join(LABELS)}, not {label!r}")
    if label == "majority":
        values = [v >= 0.5 for v in rec["soft_labels"]]
    else:
        values = rec["labels"] if label == "hard" else rec["exact"]
    return StepwiseRecord(rec["prompt"], tuple(rec["completions"]), tuple(bool(v) for v in values))


def train_prm(out_dir: Path, generator_dir: Path, records: list[dict], recipe: PRMRecipe = PRMRecipe(),
              data_info: dict | None = None) -> dict:
    """Train on `records` (TRL stepwise, from `demo.label`) and save weights, tokenizer, prm_config and manifest."""
    started = time.time()
    torch.manual_seed(recipe.seed)  # the new head's initial weights
    _, tokenizer, model = load_base(generator_dir, torch.device("cpu"))
    encoder = PathEncoder(tokenizer, PRM_CONFIG["separator"], max_positions(model.config))
    data = [encoder.record(stepwise(rec, recipe.label)) for rec in records]

    def loss_of(rows: list[int]) -> torch.Tensor:
        with bf16_autocast(torch.device("cpu")):
            return path_loss(model, [data[i] for i in rows], tokenizer.pad_token_id, model.device)

    losses = train_loop(model, len(data), recipe, loss_of, warmup=lambda _: recipe.warmup,
                        progress=tqdm_progress("prm"), lengths=[len(d.ids) for d in data], floor=0.1)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_prm(out_dir, model, tokenizer, PRM_CONFIG["separator"], torch.bfloat16)  # half the size; loads as fp32
    labels = [v for r in records for v in r["labels"]]
    info = {
        "name": "demo-prm", "architecture": "GPT2ForTokenClassification", "parameters": model.num_parameters(),
        "initialised_from": "models/demo-generator (transformer body; new 2-way head)",
        "tokenizer": "the demo generator's", "prm_config": PRM_CONFIG,
        "data": {**(data_info or {}), "paths": len(records), "steps": len(labels),
                 "good_share": round(sum(labels) / max(1, len(labels)), 4)},
        "recipe": asdict(recipe), "seed": recipe.seed, "steps": recipe.steps, "loss_every_50_steps": losses,
        "train_seconds": round(time.time() - started, 1), "weights_dtype": "bfloat16",
    }
    return write_manifest(out_dir, info)


def evaluate_prm(scorer, records: list[dict], threshold: float = 0.5) -> dict[str, float]:
    """Agreement of the PRM's step verdicts with the solver's, on steps that book an operation and on all steps,
    with precision and recall for "bad step"."""
    by_problem = defaultdict(list)
    for rec in records:
        by_problem[(rec["id"], tuple(rec["numbers"]))].append(rec)
    rows = []  # (factor, predicted good, exactly good)
    for (pid, numbers), recs in by_problem.items():
        problem = countdown_problem(list(numbers), pid=pid)
        scores = scorer.score(problem, [r["completions"] for r in recs])
        for rec, path_scores in zip(recs, scores, strict=True):
            rows += [(f, s >= threshold, e) for f, s, e in zip(rec["factors"], path_scores, rec["exact"], strict=True)]
    ops = [r for r in rows if r[0] != "verify"]
    return {**_metrics(ops, "op_steps"), **_metrics(rows, "all_steps")}


def _metrics(rows, prefix: str) -> dict[str, float]:
    n = len(rows)
    agree = sum(p == e for _, p, e in rows)
    flagged = [e for _, p, e in rows if not p]
    bad = [p for _, p, e in rows if not e]
    return {
        f"{prefix}": n,
        f"{prefix}_agreement": round(agree / max(1, n), 4),
        f"{prefix}_bad_precision": round(sum(not e for e in flagged) / max(1, len(flagged)), 4),
        f"{prefix}_bad_recall": round(sum(not p for p in bad) / max(1, len(bad)), 4),
        f"{prefix}_bad_share": round(len(bad) / max(1, n), 4),
    }
