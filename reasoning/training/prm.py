"""Train a token-classification PRM from the TRL stepwise export, with our own torch loop (`train_loop`: the one
training loop of this PRM, the generator's fine-tuning in `sft.py` and the demo models).

The input is what `python app.py export --format trl [--soft]` writes: `{"prompt", "completions", "labels"}` and,
with `--soft`, `"soft_labels"` (the rollout values). Each path is encoded exactly as the `token-classification`
adapter reads it at search time (BOS, the prompt, then each step followed by the separator, each piece tokenized on
its own, as TRL's PRMTrainer built them), and a step's label sits on its separator's last token. Where a soft label
is present the loss is the cross-entropy against the soft target (p, 1 - p); elsewhere against the hard label.

The evaluation is ProcessBench's: a path's earliest error is its first step labeled wrong (-1: none); the model's is
its first step scored below 0.5; F1 is the harmonic mean of the accuracy on paths with an error and on paths
without one. Step accuracy is the share of steps whose thresholded score agrees with the hard label.
"""
from __future__ import annotations

import json
import logging
import math
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..backends.loading import (
    ModelLoadError,
    check_remote_code,
    device_and_dtype,
    load_tokenizer,
    read_config,
    weight_files,
)
from ..backends.prm_paths import fit_path, separated_path
from ..digests import sha256_files

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
IGNORE = -1.0  # target of a token that carries no label


class DataError(ValueError):
    """A training file that cannot be used; the message names the file, the line and the field."""


@dataclass(frozen=True)
class StepwiseRecord:
    prompt: str
    completions: tuple[str, ...]
    labels: tuple[bool | None, ...]
    soft: tuple[float | None, ...] | None = None

    def targets(self) -> list[float | None]:
        """The training target of each step: its soft value where known, else its hard label, else None."""
        out: list[float | None] = []
        for i, hard in enumerate(self.labels):
            soft = self.soft[i] if self.soft is not None else None
            out.append(soft if soft is not None else (None if hard is None else float(hard)))
        return out


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained PRM besides its data and base model."""

    steps: int | None = None  # optimizer steps; None: `epochs` passes over the training split
    epochs: float = 3.0
    batch_size: int = 16
    lr: float = 1e-4
    warmup: float = 0.05  # share of the steps
    weight_decay: float = 0.01
    eval_share: float = 0.1  # held-out share of the problems when no --eval file is given
    seed: int = 0
    separator: str = "\n"
    max_length: int | None = None
    threshold: float = 0.5

    def __post_init__(self) -> None:
        checks = [
            (self.steps is None or self.steps >= 1, f"steps must be at least 1, got {self.steps}"),
            (self.epochs > 0, f"epochs must be positive, got {self.epochs}"),
            (self.batch_size >= 1, f"batch size must be at least 1, got {self.batch_size}"),
            (0 < self.lr < 1, f"learning rate must be in (0, 1), got {self.lr}"),
            (0 <= self.warmup < 1, f"warmup must be a share in [0, 1), got {self.warmup}"),
            (0 <= self.eval_share < 1, f"eval share must be in [0, 1), got {self.eval_share}"),
            (bool(self.separator), "the step separator must not be empty"),
            (0 < self.threshold < 1, f"threshold must be in (0, 1), got {self.threshold}"),
            (self.max_length is None or self.max_length >= 1,  # 0 silently meant the model's own length
             f"max length must be at least 1 token, got {self.max_length}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


# -- data ------------------------------------------------------------------------------------------
def read_stepwise(path: str | Path) -> list[StepwiseRecord]:
    """The records of a TRL stepwise JSONL export; a bad line is a DataError naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"training data {path} does not exist")
    out = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                out.append(_record(line, f"{path}:{n}"))
    if not out:
        raise DataError(f"{path} holds no records")
    return out


def _record(line: str, where: str) -> StepwiseRecord:
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: invalid JSON ({exc.msg})") from None
    if not isinstance(rec, dict):
        raise DataError(f"{where}: a record must be a JSON object")
    prompt, steps, labels = rec.get("prompt"), rec.get("completions"), rec.get("labels")
    if not isinstance(prompt, str):
        raise DataError(f"{where}: field 'prompt' must be a string")
    if not isinstance(steps, list) or not steps or not all(isinstance(s, str) for s in steps):
        raise DataError(f"{where}: field 'completions' must be a non-empty list of strings")
    if not isinstance(labels, list) or len(labels) != len(steps) or \
            not all(v is None or isinstance(v, bool) for v in labels):
        raise DataError(f"{where}: field 'labels' must be one true/false/null per completion")
    soft = rec.get("soft_labels")
    if soft is not None:
        ok = isinstance(soft, list) and len(soft) == len(steps) and all(
            v is None or (isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1) for v in soft)
        if not ok:
            raise DataError(f"{where}: field 'soft_labels' must be one number in [0, 1] (or null) per completion")
        soft = tuple(None if v is None else float(v) for v in soft)
    return StepwiseRecord(prompt, tuple(steps), tuple(labels), soft)


def split_by_prompt(records: list[StepwiseRecord], share: float, seed: int
                    ) -> tuple[list[StepwiseRecord], list[StepwiseRecord]]:
    """Held-out records by problem (all paths of a prompt on one side), about `share` of the problems."""
    prompts = sorted({r.prompt for r in records})
    random.Random(seed).shuffle(prompts)
    held = set(prompts[: round(len(prompts) * share)]) if share > 0 and len(prompts) > 1 else set()
    return [r for r in records if r.prompt not in held], [r for r in records if r.prompt in held]


@dataclass
class Encoded:
    ids: list[int]
    positions: list[int]  # the reading position of each step (-1 where the path was cut before it)
    targets: list[float | None]
    labels: list[bool | None]


class PathEncoder:
    """Token ids of a path by the `token-classification` adapter's own encoder (`backends.prm_paths`)."""

    def __init__(self, tokenizer, separator: str, max_length: int | None):
        self.tokenizer, self.max_length = tokenizer, max_length
        self.separator_ids = tokenizer.encode(separator, add_special_tokens=False)
        if not self.separator_ids:
            raise ModelLoadError(f"the tokenizer writes no token for the step separator {separator!r}")

    def encode(self, prompt: str, steps: Sequence[str]) -> tuple[list[int], list[int]]:
        ids, positions = separated_path(lambda text: self.tokenizer.encode(text, add_special_tokens=False),
                                        self.tokenizer.bos_token_id, prompt, steps, self.separator_ids)
        return fit_path(ids, positions, self.max_length)  # keep the end, as the adapter does

    def record(self, rec: StepwiseRecord) -> Encoded:
        ids, positions = self.encode(rec.prompt, rec.completions)
        return Encoded(ids, positions, rec.targets(), list(rec.labels))


# -- model -----------------------------------------------------------------------------------------
def load_base(base: str | Path, device: torch.device, trust_remote_code: bool = False):
    """A 2-label token-classification model over any local causal LM (or PRM) directory, and its tokenizer."""
    from transformers import AutoModelForTokenClassification

    path, cfg = read_config(base)
    check_remote_code(path, cfg, trust_remote_code)
    weight_files(path)  # safetensors only
    tokenizer = load_tokenizer(path, trust_remote_code)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    try:
        model = AutoModelForTokenClassification.from_pretrained(
            path, num_labels=2, id2label={0: "bad", 1: "good"}, label2id={"bad": 0, "good": 1},
            dtype=torch.float32, use_safetensors=True, local_files_only=True, trust_remote_code=trust_remote_code,
            ignore_mismatched_sizes=True,
        )
    except ValueError as exc:  # an architecture with no token-classification class
        raise ModelLoadError(f"{path}: no token-classification head for this model type: {exc}") from None
    except Exception as exc:
        raise ModelLoadError(f"cannot load {path} as a token-classification model: {exc}") from None
    model.config.pad_token_id = tokenizer.pad_token_id
    return path, tokenizer, model.to(device)


def _batch(rows: list[Encoded], pad: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    width = max(len(r.ids) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    target = torch.full((len(rows), width), IGNORE)
    for i, r in enumerate(rows):
        ids[i, : len(r.ids)] = torch.tensor(r.ids)
        mask[i, : len(r.ids)] = 1
        for p, t in zip(r.positions, r.targets, strict=True):
            if p >= 0 and t is not None:
                target[i, p] = t
    return ids.to(device), mask.to(device), target.to(device)


def soft_target_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against (1 - p, p) at labeled tokens; a hard label is p in {0, 1}."""
    keep = target >= 0
    if not keep.any():
        return logits.sum() * 0.0
    logp = torch.log_softmax(logits[keep].float(), dim=-1)
    p = target[keep]
    return -(p * logp[:, 1] + (1 - p) * logp[:, 0]).mean()


def lr_factor(step: int, total: int, warmup: int, floor: float = 0.0) -> float:
    """Linear warmup, then cosine decay from 1 down to `floor`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def shuffled(size: int, batch: int, rng: random.Random) -> Iterator[list[int]]:
    """Endless full batches of row indices, each pass over the rows in a fresh random order."""
    order: list[int] = []
    while True:
        if len(order) < batch:
            fresh = list(range(size))
            rng.shuffle(fresh)
            order += fresh
        yield [order.pop() for _ in range(min(batch, size))]


def by_length(lengths: Sequence[int], batch: int, rng: random.Random) -> Iterator[list[int]]:
    """Endless batches of rows of similar length (less padding, so less compute on a CPU): each pass shuffled, sorted
    by length within pools of 50 batches, and the pool's batches shuffled."""
    pool = batch * 50
    while True:
        order = list(range(len(lengths)))
        rng.shuffle(order)
        for i in range(0, len(order), pool):
            chunk = sorted(order[i : i + pool], key=lengths.__getitem__)
            groups = [chunk[k : k + batch] for k in range(0, len(chunk), batch)]
            rng.shuffle(groups)
            yield from groups


def train_loop(model, size: int, config: Any, loss_of: Callable[[list[int]], torch.Tensor], *,
               warmup: Callable[[int], int], progress: Callable[[int, int, float], None] | None = None,
               lengths: Sequence[int] | None = None, floor: float = 0.0) -> list[float]:
    """The one training loop of every trainer (this PRM's, the generator's in `sft.py`, the demo models'): shuffled
    passes over `size` rows (`by_length` when the rows' `lengths` are given), `config.batch_size` indices at a time
    handed to `loss_of`, AdamW with `warmup(total)` steps, then cosine decay to `floor` times the peak; returns the
    smoothed loss every 50 steps (and at the end). `config` has seed, steps, epochs, batch_size, lr and weight_decay."""
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    total = config.steps or max(1, math.ceil(config.epochs * size / config.batch_size))
    steps_warm = warmup(total)
    trainable = [p for p in model.parameters() if p.requires_grad]  # all, or a LoRA's adapters alone
    opt = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    batches = shuffled(size, config.batch_size, rng) if lengths is None else by_length(lengths, config.batch_size, rng)
    losses, running = [], 0.0
    model.train()
    for step in range(total):
        rows = next(batches)
        for group in opt.param_groups:
            group["lr"] = config.lr * lr_factor(step, total, steps_warm, floor)
        loss = loss_of(rows)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        running = 0.95 * running + 0.05 * loss.item() if step else loss.item()
        if step % 50 == 0 or step == total - 1:
            losses.append(round(running, 4))
        if progress is not None:
            progress(step + 1, total, running)
    model.eval()
    return losses


def path_loss(model, rows: list[Encoded], pad: int, device: torch.device) -> torch.Tensor:
    """The soft-target loss of one batch of encoded paths."""
    ids, mask, target = _batch(rows, pad, device)
    return soft_target_loss(model(input_ids=ids, attention_mask=mask).logits, target)


def bf16_autocast(device: torch.device):
    """bfloat16 autocast where it is fast: CUDA, or a CPU with AVX512-BF16 or AMX (there 1.7x faster than float32 on
    the demo's training); elsewhere off. An AVX2 CPU emulates bfloat16: one 32-trace batch of the demo generator took
    30.5 s under autocast against 1.4 s in float32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast_bf16(device))


def fast_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return True
    try:  # private helpers of torch.cpu (no public query of the CPU's bfloat16 support)
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:
        return False


def train_steps(model, data: list[Encoded], config: TrainConfig, pad: int, device: torch.device, *,
                progress: Callable[[int, int, float], None] | None = None) -> list[float]:
    """AdamW with warmup and cosine decay on the soft-target loss; returns the smoothed loss every 50 steps."""

    def loss_of(rows: list[int]) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            return path_loss(model, [data[i] for i in rows], pad, device)

    return train_loop(model, len(data), config, loss_of, warmup=lambda total: round(config.warmup * total),
                      progress=progress)


# -- evaluation ------------------------------------------------------------------------------------
@torch.inference_mode()
def score_encoded(model, data: list[Encoded], pad: int, device: torch.device, batch_size: int = 16
                  ) -> list[list[float]]:
    """P(good) at every step's reading position (0.5 where the path was cut before it)."""
    out = []
    for k in range(0, len(data), batch_size):
        rows = data[k : k + batch_size]
        ids, mask, _ = _batch(rows, pad, device)
        probs = torch.softmax(model(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)[..., 1].cpu()
        out += [[float(probs[i, p]) if p >= 0 else 0.5 for p in r.positions] for i, r in enumerate(rows)]
    return out


def first_error(verdicts: Sequence[bool | None]) -> int | None:
    """Index of the first wrong step, -1 when all are right; None when an unlabeled step comes first."""
    for i, v in enumerate(verdicts):
        if v is None:
            return None
        if not v:
            return i
    return -1


def processbench_metrics(scores: list[list[float]], labels: list[list[bool | None]], threshold: float = 0.5
                         ) -> dict[str, Any]:
    """ProcessBench F1 of earliest-error identification and step accuracy, with the counts behind them."""
    err_hit = err_n = ok_hit = ok_n = step_hit = step_n = 0
    for path_scores, path_labels in zip(scores, labels, strict=True):
        predicted = [s >= threshold for s in path_scores]
        for p, lab in zip(predicted, path_labels, strict=True):
            if lab is not None:
                step_n += 1
                step_hit += p == lab
        gold = first_error(path_labels)
        if gold is None:
            continue
        guess = first_error(predicted)
        if gold >= 0:
            err_n += 1
            err_hit += guess == gold
        else:
            ok_n += 1
            ok_hit += guess == -1
    acc_err = err_hit / err_n if err_n else 0.0
    acc_ok = ok_hit / ok_n if ok_n else 0.0
    f1 = 2 * acc_err * acc_ok / (acc_err + acc_ok) if acc_err + acc_ok else 0.0
    return {"processbench_f1": round(f1, 4), "error_path_accuracy": round(acc_err, 4),
            "correct_path_accuracy": round(acc_ok, 4), "step_accuracy": round(step_hit / max(1, step_n), 4),
            "paths_with_error": err_n, "paths_without_error": ok_n, "steps": step_n}


def evaluate(model, encoder: PathEncoder, records: list[StepwiseRecord], pad: int, device: torch.device,
             threshold: float = 0.5) -> dict[str, Any]:
    data = [encoder.record(r) for r in records]
    return processbench_metrics(score_encoded(model, data, pad, device), [d.labels for d in data], threshold)


# -- the whole recipe ------------------------------------------------------------------------------
def train_prm(data: str | Path, base: str | Path, out: str | Path, config: TrainConfig = TrainConfig(), *,
              eval_data: str | Path | None = None, device: str | None = None, trust_remote_code: bool = False,
              progress: Callable[[int, int, float], None] | None = None) -> dict[str, Any]:
    """Train on `data` from `base`, evaluate on held-out paths, and write the PRM to `out` (complete or absent)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"--out {out} exists and is not empty; choose a new directory")
    if not out.parent.exists():
        raise ValueError(f"--out folder {out.parent} does not exist")
    records = read_stepwise(data)
    held = read_stepwise(eval_data) if eval_data else None
    train, held = (records, held) if held is not None else split_by_prompt(records, config.eval_share, config.seed)
    if not train:
        raise DataError(f"{data}: no training records left after the held-out split")
    started = time.time()
    dev, _ = device_and_dtype(device)
    base_path, tokenizer, model = load_base(base, dev, trust_remote_code)
    from ..backends.loading import max_positions

    limit = config.max_length or max_positions(model.config)
    encoder = PathEncoder(tokenizer, config.separator, limit)
    encoded = [encoder.record(r) for r in train]
    pad = tokenizer.pad_token_id
    before = evaluate(model, encoder, held, pad, dev, config.threshold) if held else None
    losses = train_steps(model, encoded, config, pad, dev, progress=progress)
    after = evaluate(model, encoder, held, pad, dev, config.threshold) if held else None
    info = _manifest(data, eval_data, base_path, model, train, held, config, losses, before, after, started, dev)
    _save(out, model, tokenizer, config, info)
    return json.loads((out / MANIFEST).read_text(encoding="utf-8"))


def _data_info(records: list[StepwiseRecord]) -> dict[str, Any]:
    labels = [v for r in records for v in r.labels if v is not None]
    soft = [v for r in records if r.soft for v in r.soft if v is not None]
    return {"paths": len(records), "problems": len({r.prompt for r in records}), "steps": len(labels),
            "good_share": round(sum(labels) / max(1, len(labels)), 4), "soft_steps": len(soft)}


def _manifest(data, eval_data, base_path: Path, model, train, held, config: TrainConfig, losses, before, after,
              started: float, dev: torch.device) -> dict[str, Any]:
    return {
        "name": "trained-prm", "architecture": type(model).__name__,
        "parameters": model.num_parameters(), "base": str(base_path),
        "prm_config": prm_config(config.separator),
        "data": {"file": str(data), "sha256": sha256_files([Path(data)])[Path(data).name], **_data_info(train)},
        "eval_data": {"file": str(eval_data) if eval_data else f"held out from --data ({config.eval_share:.0%} of "
                      "problems)", **(_data_info(held) if held else {"paths": 0})},
        "loss": "soft-target cross-entropy (soft_labels where present, else hard labels)",
        "config": asdict(config), "loss_every_50_steps": losses,
        "eval_before": before, "eval": after, "device": str(dev),
        "train_seconds": round(time.time() - started, 1), "weights_dtype": "float32",
    }


def _save(out: Path, model, tokenizer, config: TrainConfig, info: dict[str, Any]) -> None:
    """Write weights, tokenizer, prm_config and manifest to a temporary folder, then rename it into place."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        write_prm(tmp, model, tokenizer, config.separator)
        manifest = {**info, "weights_sha256": sha256_files(sorted(tmp.glob("*.safetensors")))}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            out.rmdir()  # empty (checked before training)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def prm_config(separator: str) -> dict[str, str]:
    """What `prm_config.json` says of a PRM trained here: the adapter that reads it and its step separator."""
    return {"adapter": "token-classification", "separator": separator}


def write_prm(folder: Path, model, tokenizer, separator: str, dtype: torch.dtype = torch.float32) -> None:
    """A trained PRM's weights (in `dtype`), tokenizer and `prm_config.json`, so that `load_scorer` reads it."""
    model.config.architectures = [type(model).__name__]
    model.to(dtype).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    (folder / "prm_config.json").write_text(json.dumps(prm_config(separator), indent=2) + "\n", encoding="utf-8")
