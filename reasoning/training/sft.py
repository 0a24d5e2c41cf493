"""Fine-tune a generator on verified trajectories (the policy's half of self-play): each path written exactly as the
generator reads it at search time (reasoning.prompting), with the loss on the thought factor chosen at each step (its
open tag, or its cue: so the prior P(S, a) learns which factor led to a right answer), on the model's own words, and
on where the step ends; the problem and any calculator bookkeeping are context. A tag-trained model ends a step by
writing its close tag right after its own words (the calculator then adds its bookkeeping before the tag), so that is
where the close tag is the target: the position the model is in at search time, not the tag's place in the text.

Full fine-tuning from the current weights with AdamW (small models: the demo generator, a tiny Qwen2); LoRA adapters
through peft for large ones (`SFTConfig.lora_rank`), merged into the saved weights.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..domains.countdown import strip_bookkeeping
from ..factors import Catalog, load_catalog
from ..prompting import PromptFormat
from ..types import Problem, Step

IGNORE = -100
OWN_WORDS: dict[str, Callable[[str], str]] = {"countdown": strip_bookkeeping}  # domains whose tools annotate steps


@dataclass(frozen=True)
class Demonstration:
    """A verified trajectory: a problem and the steps (text and factor) that reached its gold answer."""

    problem: Problem
    steps: tuple[Step, ...]

    def to_json(self) -> dict[str, Any]:
        return {"problem": {"id": self.problem.id, "text": self.problem.text, "answer": self.problem.answer,
                            "domain": self.problem.domain, "meta": self.problem.meta},
                "steps": [{"text": s.text, "factor": s.factor} for s in self.steps]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Demonstration:
        p = d["problem"]
        return cls(Problem(p["id"], p["text"], p.get("answer"), p.get("domain", "math"), p.get("meta") or {}),
                   tuple(Step(s["text"], s.get("factor")) for s in d["steps"]))


@dataclass(frozen=True)
class SFTConfig:
    """Everything that determines a fine-tuned generator besides its data and starting weights."""

    epochs: float = 2.0
    steps: int | None = None
    batch_size: int = 16
    lr: float = 2e-4
    warmup: float = 0.05
    weight_decay: float = 0.01
    seed: int = 0
    lora_rank: int = 0  # 0: full fine-tuning; else LoRA adapters of this rank on every linear layer (peft), merged
    lora_alpha: int = 16

    def __post_init__(self) -> None:
        if self.epochs <= 0 or self.batch_size < 1 or not 0 < self.lr < 1 or (self.steps is not None and
                                                                                self.steps < 1):
            raise ValueError(f"bad fine-tuning settings: {self}")
        if not 0 <= self.lora_rank <= 1024 or self.lora_alpha < 1:
            raise ValueError(f"LoRA rank must be 0 (full fine-tuning) to 1024 and alpha at least 1: {self}")


def prompt_mode(tokenizer, catalog: Catalog) -> str:
    """`tags` when the tokenizer knows every factor's tags as tokens (a tag-trained model), else `cues`."""
    vocab = tokenizer.get_vocab()
    tagged = [f for f in catalog.factors if f.tags]
    return "tags" if tagged and all(t in vocab for f in tagged for t in f.tags or ()) else "cues"


@dataclass
class Rendered:
    """A trajectory as the model reads it, with the characters the loss is taken on and where each step closes."""

    text: str
    learn_spans: list[tuple[int, int]]  # characters the model is trained to write
    close_at: list[tuple[int, str]] = field(default_factory=list)  # (end of the model's words, close tag): the
    # next token to predict there is the tag


def render(demo: Demonstration, fmt: PromptFormat, catalog: Catalog, learn: Sequence[bool] | None = None) -> Rendered:
    """The trajectory's text, the spans the loss is taken on and the close-tag targets. `learn` (one flag per step,
    default all) marks the steps whose words and end are learned; a step left out (a mistake in a demo trace) is
    context, though its factor choice is still learned."""
    text, spans, closes = fmt.question(demo.problem), [], []
    own_words = OWN_WORDS.get(demo.problem.domain, str.strip)
    for k, step in enumerate(demo.steps):
        factor = catalog.get(step.factor) if step.factor and step.factor in catalog.names else None
        piece = fmt.render_step(step.text, factor)
        if fmt.mode == "tags" and factor is not None and factor.tags:
            open_tag, close_tag = factor.tags
            start = len(text) + len(open_tag)
            spans.append((len(text), start))  # the factor choice
            if learn is None or learn[k]:
                end = start + len(own_words(step.text))
                spans.append((start, end))  # the model's own words
                closes.append((end, close_tag))  # where it ends
        else:
            spans.append((len(text), len(text) + len(piece)))  # the cue, the words and the delimiter
        text += piece
    return Rendered(text, spans, closes)


def encode(tokenizer, item: Rendered, max_length: int | None = None, strict: bool = False) -> tuple[list[int], list[int]]:
    """Token ids and labels (the token itself inside a span, IGNORE elsewhere; the close tag where a step's own words
    end), cut to `max_length`. A close that falls inside a token is left out, or refused when `strict`."""
    enc = tokenizer(item.text, return_offsets_mapping=True, add_special_tokens=False)
    ids, offsets = enc["input_ids"][:max_length], enc["offset_mapping"][:max_length]
    labels = [tid if any(a <= start < b for a, b in item.learn_spans) else IGNORE
              for tid, (start, _) in zip(ids, offsets, strict=True)]
    starts = {start: t for t, (start, _) in enumerate(offsets)}
    for pos, tag in item.close_at:
        if pos in starts:
            labels[starts[pos]] = tokenizer.convert_tokens_to_ids(tag)
        elif strict and pos < (offsets[-1][1] if offsets else 0):
            raise ValueError(f"a step does not end on a token boundary in {item.text!r}")
    return ids, labels


def _batch(rows: list[tuple[list[int], list[int]]], pad: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (x, y) in enumerate(rows):
        ids[i, : len(x)], labels[i, : len(y)], mask[i, : len(x)] = torch.tensor(x), torch.tensor(y), 1
    return ids, labels, mask


def next_token_loss(model, rows: list[tuple[list[int], list[int]]], pad: int) -> torch.Tensor:
    """The next-token loss of one batch, on the labeled tokens only."""
    ids, labels, mask = _batch(rows, pad)
    logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits.float()
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                             labels[:, 1:].reshape(-1).to(model.device), ignore_index=IGNORE)


def train(model, data: list[tuple[list[int], list[int]]], config: SFTConfig, pad: int, *,
          progress: Callable[[int, int, float], None] | None = None) -> list[float]:
    """The shared training loop (`prm.train_loop`) on the labeled tokens' next-token loss."""
    from .prm import train_loop

    def loss_of(rows: list[int]) -> torch.Tensor:
        return next_token_loss(model, [data[i] for i in rows], pad)

    return train_loop(model, len(data), config, loss_of, warmup=lambda total: max(1, round(config.warmup * total)),
                      progress=progress)


def finetune(base: str | Path, demos: list[Demonstration], out: str | Path, config: SFTConfig = SFTConfig(), *,
             catalog: Catalog | None = None, lineage: dict[str, Any] | None = None, device: str | None = None,
             progress: Callable[[int, int, float], None] | None = None) -> dict[str, Any]:
    """Fine-tune the causal LM in `base` on `demos` and write it to `out` (safetensors, tokenizer and a manifest that
    keeps the base's recommended search settings and records the lineage); complete or absent."""
    from transformers import AutoModelForCausalLM

    from ..backends.loading import load_tokenizer, max_positions, weight_files
    from ..digests import sha256_files

    if not demos:
        raise ValueError("no verified trajectories to fine-tune on")
    base, out = Path(base), Path(out)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} exists and is not empty; choose a new directory")
    weight_files(base)  # safetensors only
    catalog = catalog or load_catalog()
    started = time.time()
    tokenizer = load_tokenizer(base, False)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, use_safetensors=True,
                                                 local_files_only=True)
    model.to(torch.device(device or "cpu"))  # type: ignore[arg-type]  # transformers types .to() oddly
    fmt = PromptFormat(mode=prompt_mode(tokenizer, catalog))
    limit = max_positions(model.config) or 1024
    data = [encode(tokenizer, render(d, fmt, catalog), limit) for d in demos]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if config.lora_rank:
        model = with_lora(model, config)
    losses = train(model, data, config, pad, progress=progress)
    if config.lora_rank:  # the adapters folded into the weights: the result loads as the base did, no peft needed
        model = model.merge_and_unload()  # type: ignore[operator]  # a PeftModel here
    base_manifest = _read_manifest(base)
    info = {
        **{k: v for k, v in base_manifest.items() if k in ("name", "architecture", "config", "tokenizer",
                                                           "recommended_search")},
        "parameters": model.num_parameters(), "base": str(base), "base_weights_sha256": sha256_files(
            sorted(base.glob("*.safetensors"))), "prompt_mode": fmt.mode,
        "data": {"trajectories": len(demos), "problems": len({d.problem.id for d in demos}),
                 "tokens": sum(len(ids) for ids, _ in data),
                 "learned_tokens": sum(sum(t != IGNORE for t in y) for _, y in data)},
        "recipe": {"kind": (f"LoRA rank {config.lora_rank}, merged" if config.lora_rank else "full fine-tuning")
                   + " (AdamW, warmup + cosine)", **asdict(config)},
        "loss_every_50_steps": losses, "train_seconds": round(time.time() - started, 1), "lineage": lineage or {},
    }
    _save(out, model, tokenizer, info)
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def with_lora(model, config: SFTConfig):
    """The model with LoRA adapters (peft) on every linear layer but the output head; only they are trained. For a
    large model, where full fine-tuning would need the optimizer state of every weight."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise RuntimeError("LoRA needs peft, which is not installed here: pip install peft") from None
    lora = LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, target_modules="all-linear",
                      lora_dropout=0.0, task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _save(out: Path, model, tokenizer, info: dict[str, Any]) -> None:
    from ..digests import sha256_files

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        info = {**info, "weights_sha256": sha256_files(sorted(tmp.glob("*.safetensors")))}
        (tmp / "manifest.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
