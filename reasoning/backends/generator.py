"""A transformers causal LM as a Generator: factor prior in one batched pass, siblings decoded from one prefill."""
from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from ..factors import Catalog, ThoughtFactor, load_catalog
from ..prompting import PromptFormat
from ..types import State, Step
from .loading import max_positions, sha256_files, single_token_id

log = logging.getLogger(__name__)


@dataclass
class _Row:
    """One sibling being decoded (local to one `propose` call)."""

    ids: list[int] = field(default_factory=list)
    logprob: float = 0.0
    stop: str | None = None
    text: str = ""


class TransformersGenerator:
    """Writes reasoning steps with a local causal LM; safe to share between threads (no per-call state on self)."""

    def __init__(
        self,
        model,
        tokenizer,
        *,
        path: Path,
        catalog: Catalog | None = None,
        weights: Sequence[Path] = (),
        kv_reuse: bool = True,
        max_step_tokens: int = 64,
        top_p: float = 1.0,
        prompt_mode: str | None = None,
    ):
        if max_step_tokens < 1:
            raise ValueError(f"max_step_tokens must be at least 1, got {max_step_tokens}")
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        self.model, self.tokenizer, self.path = model, tokenizer, Path(path)
        self.name = self.path.name
        self.catalog = catalog or load_catalog()
        self.kv_reuse, self.max_step_tokens, self.top_p = kv_reuse, max_step_tokens, top_p
        self.format = PromptFormat(mode=prompt_mode or self._detect_mode())
        self.device = next(model.parameters()).device
        self.max_positions = max_positions(model.config)
        self.eos_ids = self._eos_ids()
        self.pad_id = next(iter(self.eos_ids), 0) if tokenizer.pad_token_id is None else tokenizer.pad_token_id
        self._weights = list(weights)
        self._encode_lock = threading.Lock()  # fast tokenizers may complain when two threads encode at once

    # -- setup ---------------------------------------------------------------------------------------
    def _detect_mode(self) -> str:
        """Tags mode when every enabled factor's tags are single tokens of this tokenizer (a tag-trained model)."""
        tags = [t for f in self.catalog.enabled for t in (f.tags or (None, None))]
        ok = tags and all(t is not None and single_token_id(self.tokenizer, t) is not None for t in tags)
        return "tags" if ok else "cues"

    def _eos_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id}
        gen_eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        ids.update(gen_eos if isinstance(gen_eos, list) else [gen_eos])
        return {i for i in ids if i is not None}

    @cached_property
    def _weights_sha256(self) -> dict[str, str]:
        return sha256_files(self._weights)

    def provenance(self) -> dict[str, Any]:
        return {
            "name": self.name, "model_dir": str(self.path), "model_type": self.model.config.model_type,
            "weights_sha256": self._weights_sha256, "dtype": str(self.model.dtype).removeprefix("torch."),
            "device": str(self.device), "max_step_tokens": self.max_step_tokens, "top_p": self.top_p,
            "prompt_mode": self.format.mode, "kv_reuse": self.kv_reuse,
        }

    # -- text -> ids ---------------------------------------------------------------------------------
    def _encode(self, text: str, special: bool) -> list[int]:
        with self._encode_lock:
            return self.tokenizer.encode(text, add_special_tokens=special)

    def _by_name(self, factors: Sequence[ThoughtFactor] = ()) -> dict[str, ThoughtFactor]:
        return {**{f.name: f for f in self.catalog}, **{f.name: f for f in factors}}

    def context_ids(self, state: State, factors: Sequence[ThoughtFactor] = ()) -> list[int]:
        """The question and the steps so far, as token ids."""
        return self._encode(self.format.prefix(state, self._by_name(factors)), special=True)

    def start_ids(self, factor: ThoughtFactor) -> list[int]:
        """What opens a step under `factor`: its open tag (tags mode) or its cue (cues mode)."""
        return self._encode(self.format.step_start(factor), special=False)

    # -- the factor prior ----------------------------------------------------------------------------
    def factor_prior(self, state: State, factors: Sequence[ThoughtFactor]) -> list[float]:
        """P(S, a): softmax over factors of log p(step start | state), from one (batched) forward pass."""
        if not factors:
            return []
        context = self.context_ids(state, factors)
        starts = [self.start_ids(f) for f in factors]
        with torch.inference_mode():
            if all(len(s) == 1 for s in starts):
                scores = self._next_token_logprobs(context, [s[0] for s in starts])
            else:
                scores = self._sequence_logprobs(context, starts)
        return torch.softmax(scores, dim=0).tolist()

    def _fit(self, context: list[int], room: int) -> list[int]:
        """Keep the context's last tokens so that `room` more tokens fit in the model's positions."""
        if self.max_positions is None or len(context) + room <= self.max_positions:
            return context
        return context[-max(1, self.max_positions - room):]

    def _next_token_logprobs(self, context: list[int], token_ids: list[int]) -> torch.Tensor:
        ids = torch.tensor([self._fit(context, 1)], device=self.device)
        logits = self.model(input_ids=ids, use_cache=False).logits[0, -1].float()
        return torch.log_softmax(logits, dim=-1)[token_ids]

    def _sequence_logprobs(self, context: list[int], starts: list[list[int]]) -> torch.Tensor:
        """Sum of log p(start tokens | context) per factor: all factors in one right-padded batch."""
        context = self._fit(context, max(len(s) for s in starts))
        rows = [context + s for s in starts]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long, device=self.device)
        mask = torch.zeros_like(ids)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r, device=self.device)
            mask[i, : len(r)] = 1
        logp = torch.log_softmax(self.model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float(), -1)
        out = []
        for i, s in enumerate(starts):
            at = torch.arange(len(context) - 1, len(context) - 1 + len(s), device=self.device)
            out.append(logp[i, at, torch.tensor(s, device=self.device)].sum())
        return torch.stack(out)

    # -- proposing steps -----------------------------------------------------------------------------
    def propose(
        self, state: State, factor: ThoughtFactor, n: int, *, temperature: float | None = None, seed: int | None = None
    ) -> list[Step]:
        """`n` continuations under `factor`: one prefill of the shared prefix, then all siblings in one batch."""
        if n < 1:
            return []
        prefix = self.context_ids(state, [factor]) + self.start_ids(factor)
        temperature = 1.0 if temperature is None else float(temperature)
        rng = torch.Generator(device=self.device)
        rng.manual_seed(seed) if seed is not None else rng.seed()
        room = self.max_step_tokens if self.max_positions is None else self.max_positions - len(prefix)
        limit = min(self.max_step_tokens, room)
        if limit <= 0:
            log.warning("%s: the prompt (%d tokens) fills the model's context; no room for a step", self.name,
                        len(prefix))
            return [self._to_step(_Row(stop="context"), factor) for _ in range(n)]
        with torch.inference_mode():
            rows = self._decode(prefix, n, limit, self.stop_strings(factor), temperature, rng)
        for row in rows:
            row.stop = row.stop or ("context" if limit < self.max_step_tokens else "length")
        return [self._to_step(row, factor) for row in rows]

    def stop_strings(self, factor: ThoughtFactor) -> tuple[str, ...]:
        """The factor's stop string; in tags mode any factor tag also ends a step (tags never occur inside one)."""
        stop = self.format.stop_string(factor)
        if self.format.mode != "tags":
            return (stop,)
        return (stop, *(t for f in self._by_name([factor]).values() for t in (f.tags or ()) if t != stop))

    def _to_step(self, row: _Row, factor: ThoughtFactor) -> Step:
        cue = "" if self.format.mode == "tags" and factor.tags else factor.cue
        return Step(
            text=cue + row.text, factor=factor.name, tokens=len(row.ids), logprob=row.logprob,
            terminal=row.stop == "context", meta={"stop": row.stop, "token_ids": list(row.ids)},
        )

    def _decode(
        self, prefix: list[int], n: int, limit: int, stops: tuple[str, ...], temperature: float, rng: torch.Generator
    ) -> list[_Row]:
        """Decode `n` rows from `prefix` until each stops; finished rows leave the batch.

        A row's logprob is the model's own log-probability of its tokens (before temperature and top-p).
        """
        rows = [_Row() for _ in range(n)]
        step = self._cached_steps(prefix, rows) if self.kv_reuse else self._uncached_steps(prefix, rows)
        active = list(range(n))
        logits = next(step)
        for t in range(limit):
            tokens = self._sample(logits, temperature, rng)
            logps = torch.log_softmax(logits, dim=-1).gather(1, tokens[:, None])[:, 0].tolist()
            keep = []
            for j, (i, tok, lp) in enumerate(zip(active, tokens.tolist(), logps, strict=True)):
                if self._advance(rows[i], tok, lp, stops):
                    keep.append(j)
            active = [active[j] for j in keep]
            if not active or t == limit - 1:
                break
            logits = step.send((tokens, keep))
        for i in active:
            rows[i].text = self._text(rows[i].ids)
        return rows

    def _cached_steps(self, prefix: list[int], rows: list[_Row]):
        """Prefill once, repeat the KV cache to one row per sibling, then feed one token per row per step."""
        out = self.model(input_ids=torch.tensor([prefix], device=self.device), use_cache=True)
        cache = getattr(out, "past_key_values", None)
        if cache is None or not hasattr(cache, "batch_repeat_interleave"):  # remote code: a legacy (tuple) cache, or none
            log.warning("%s returns no transformers Cache; decoding without KV reuse", self.name)
            return (yield from self._uncached_steps(prefix, rows))
        cache.batch_repeat_interleave(len(rows))
        tokens, keep = yield out.logits[:, -1].float().expand(len(rows), -1)
        while True:
            if len(keep) < tokens.shape[0]:
                cache.batch_select_indices(torch.tensor(keep, device=self.device))
            feed = tokens[keep][:, None]
            out = self.model(input_ids=feed, past_key_values=cache, use_cache=True)
            tokens, keep = yield out.logits[:, -1].float()

    def _uncached_steps(self, prefix: list[int], rows: list[_Row]):
        """The same steps recomputing every row's full sequence each token (no cache): the parity reference."""
        ids = torch.tensor([prefix], device=self.device)
        out = self.model(input_ids=ids, use_cache=False)
        active = list(range(len(rows)))
        tokens, keep = yield out.logits[:, -1].float().expand(len(rows), -1)
        while True:
            active = [active[j] for j in keep]
            batch = torch.tensor([prefix + rows[i].ids for i in active], device=self.device)
            tokens, keep = yield self.model(input_ids=batch, use_cache=False).logits[:, -1].float()

    def _sample(self, logits: torch.Tensor, temperature: float, rng: torch.Generator) -> torch.Tensor:
        if temperature <= 0.0:
            return logits.argmax(dim=-1)
        probs = torch.softmax(logits / temperature, dim=-1)
        if self.top_p < 1.0:
            probs = top_p_filter(probs, self.top_p)
        return torch.multinomial(probs, 1, generator=rng)[:, 0]

    def _advance(self, row: _Row, token: int, logprob: float, stops: tuple[str, ...]) -> bool:
        """Add one token to a row; False once the row has stopped (EOS or a stop string)."""
        row.logprob += logprob
        if token in self.eos_ids:
            row.ids.append(token)
            row.stop, row.text = "eos", self._text(row.ids[:-1])
            return False
        row.ids.append(token)
        text = self._text(row.ids)
        cut = min((text.index(s) for s in stops if s and s in text), default=None)
        if cut is not None:
            row.stop, row.text = "stop", text[:cut]
            return False
        return True

    def _text(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def top_p_filter(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Zero the tail outside the smallest set of tokens whose probability reaches `top_p`, then renormalise."""
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    outside = sorted_probs.cumsum(dim=-1) - sorted_probs >= top_p
    sorted_probs = sorted_probs.masked_fill(outside, 0.0)
    filtered = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return filtered / filtered.sum(dim=-1, keepdim=True)
