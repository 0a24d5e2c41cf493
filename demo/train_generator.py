"""Train the demo generator: a tiny GPT-2 on synthetic Countdown traces in factor tags."""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from reasoning.training.prm import bf16_autocast, train_loop
from reasoning.training.sft import SFTConfig, encode, next_token_loss

from .manifest import write_manifest
from .problemsets import load_split, wide_multisets
from .tokenizer import check_tokenizer, save_tokenizer, train_tokenizer
from .traces import TRACE_RECIPE, TraceRecipe, dead_first_traces, sample_traces

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GeneratorRecipe:
    """Everything that determines the demo generator (with the train split and the trace recipe)."""

    seed: int = 0
    traces_per_problem: int = 20
    # more boards: traces also over every solvable multiset of numbers 1..wide_boards (target 24) that is neither a
    # training nor a dev or eval multiset, wide_traces each (0: the training split only, the committed recipe)
    wide_boards: int = 0
    wide_traces: int = 5
    # one more checked trace per dead first operation of each training multiset, tried first (needs check_first
    # traces' verdicts to mean anything): every board a dead first move of a training puzzle leaves gets a verdict
    every_dead_first: bool = False
    vocab_size: int = 512
    n_layer: int = 4
    n_embd: int = 256
    n_head: int = 4
    n_positions: int = 320
    # cosine cycles with warm restarts, each (steps, peak lr, dropout): the loss kept falling after each one. The 4th
    # (loss 0.21 -> 0.165) cut wrong arithmetic on 3-number boards from 21% to 15% of samples and raised the share of
    # samples from a solvable 3-number board that keep it solvable from 61% to 78% (100 held-out problems, 8 each).
    cycles: tuple[tuple[int, float, float], ...] = (
        (1400, 2e-3, 0.1), (1000, 1e-3, 0.1), (1500, 1e-3, 0.0), (2000, 5e-4, 0.0),
    )
    batch_size: int = 32
    warmup: int = 60
    weight_decay: float = 0.01


def tqdm_progress(desc: str):
    """A `train_loop` progress callback that draws a bar and logs the smoothed loss every 50 steps."""
    bar = tqdm(desc=desc, mininterval=5)

    def update(step: int, total: int, loss: float) -> None:
        bar.total = total
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
        if step % 50 == 1 or step == total:
            log.info("%s step %d loss %.4f", desc, step - 1, loss)
        if step == total:
            bar.close()

    return update


def prepare(recipe: GeneratorRecipe, traces: TraceRecipe = TRACE_RECIPE, tok=None):
    """The rendered traces, the tokenizer (trained here unless given) and the encoded training data."""
    train = load_split("train")
    log.info("writing %d traces per problem for %d training problems", recipe.traces_per_problem, len(train))
    rendered = sample_traces(train, recipe.traces_per_problem, recipe.seed, traces)
    wide = []
    if recipe.wide_boards:
        wide = wide_multisets(recipe.wide_boards)
        log.info("writing %d traces per board for %d more boards (numbers 1-%d)", recipe.wide_traces, len(wide),
                 recipe.wide_boards)
        rendered += sample_traces(wide, recipe.wide_traces, recipe.seed + 100, traces)
    if recipe.every_dead_first:
        forced = dead_first_traces(train, recipe.seed + 200, traces)
        log.info("writing %d traces that try a dead first operation first", len(forced))
        rendered += forced
    tok = tok or train_tokenizer([r.text for r in rendered[:5000]], recipe.vocab_size)
    check_tokenizer(tok)
    data = [encode(tok, r, strict=True) for r in tqdm(rendered, desc="tokenising", mininterval=5)]
    longest = max(len(ids) for ids, _ in data)
    if longest > recipe.n_positions:
        raise ValueError(f"n_positions {recipe.n_positions} is too small for traces of {longest} tokens")
    if longest + 64 > recipe.n_positions:
        log.warning("traces of up to %d tokens leave less than 64 positions of room at search time", longest)
    info = {"problems": "reasoning/data/countdown_train.jsonl", "multisets": len(train), "wide_multisets": len(wide),
            "traces": len(rendered),
            "tokens": sum(len(ids) for ids, _ in data), "longest": longest, "trace_recipe": asdict(traces)}
    return tok, data, info


def run_cycle(model, data, recipe: GeneratorRecipe, index: int, pad: int) -> list[float]:
    """Cycle `index` of the recipe, from the weights the previous one left (dropout set per cycle), through the
    product's training loop: batches of similar lengths, warmup then cosine decay to a tenth of the peak, bfloat16
    autocast where the CPU does bfloat16 natively (`bf16_autocast`)."""
    steps, lr, dropout = recipe.cycles[index]
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = dropout
    cycle = SFTConfig(steps=steps, batch_size=recipe.batch_size, lr=lr, warmup=recipe.warmup / steps,
                      weight_decay=recipe.weight_decay, seed=recipe.seed + index)

    def loss_of(rows: list[int]) -> torch.Tensor:
        with bf16_autocast(torch.device("cpu")):
            return next_token_loss(model, [data[i] for i in rows], pad)

    desc = f"generator cycle {index + 1}/{len(recipe.cycles)}"
    return train_loop(model, len(data), cycle, loss_of, warmup=lambda _: recipe.warmup, progress=tqdm_progress(desc),
                      lengths=[len(ids) for ids, _ in data], floor=0.1)


def train_generator(out_dir: Path, recipe: GeneratorRecipe = GeneratorRecipe(), traces: TraceRecipe = TRACE_RECIPE,
                    base: Path | None = None):
    """Make the traces (and the tokenizer), train the model, save safetensors + tokenizer + manifest in `out_dir`.
    With `base`, the recipe's cycles continue that generator's weights with its tokenizer instead of starting from
    scratch: a resumed stage, or the committed generator taught a new kind of trace (`TraceRecipe.check_first`)."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from reasoning.digests import sha256_files

    started = time.time()
    torch.manual_seed(recipe.seed)
    tok, data, data_info = prepare(recipe, traces, tok=AutoTokenizer.from_pretrained(base) if base else None)
    if base:
        model = GPT2LMHeadModel.from_pretrained(base, torch_dtype=torch.float32, use_safetensors=True)
        data_info["from"] = {"dir": str(base), "weights_sha256": sha256_files(sorted(Path(base).glob("*.safetensors")))}
    else:
        model = GPT2LMHeadModel(GPT2Config(
            vocab_size=len(tok), n_positions=recipe.n_positions, n_embd=recipe.n_embd, n_layer=recipe.n_layer,
            n_head=recipe.n_head, bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        ))
    losses = [loss for i in range(len(recipe.cycles)) for loss in run_cycle(model, data, recipe, i, tok.pad_token_id)]
    return save_generator(Path(out_dir), model, tok, recipe, data_info, losses, time.time() - started)


def save_generator(out_dir: Path, model, tok, recipe: GeneratorRecipe, data_info: dict, losses: list[float],
                   seconds: float) -> dict:
    model.to(torch.bfloat16).save_pretrained(out_dir, safe_serialization=True)  # half the size; loads as fp32
    save_tokenizer(tok, out_dir)
    config = model.config
    info = {
        "name": "demo-generator", "architecture": "GPT2LMHeadModel", "parameters": model.num_parameters(),
        "config": {k: getattr(config, k) for k in ("n_layer", "n_embd", "n_head", "n_positions", "vocab_size")},
        "tokenizer": f"byte-level BPE, {len(tok)} tokens, newline one token, factor tags as special tokens",
        "data": data_info, "recipe": asdict(recipe), "seed": recipe.seed,
        "steps": sum(c[0] for c in recipe.cycles), "loss_every_50_steps": losses,
        "train_seconds": round(seconds, 1), "weights_dtype": "bfloat16",
    }
    from .scaling import recommended_block  # the search settings the model recommends travel with it

    info["recommended_search"] = recommended_block()
    return write_manifest(out_dir, info)
