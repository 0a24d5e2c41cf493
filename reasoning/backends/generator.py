"""A transformers causal LM as a Generator: many expansions decoded in one loop, node prefixes' KV kept in an LRU
cache, and the factor prior of a new child read from the pass that wrote its step."""
from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from transformers import DynamicCache

from ..digests import sha256_files
from ..factors import Catalog, ThoughtFactor, load_catalog
from ..prompting import PromptIds
from ..types import ExpansionRequest, State, Step
from .kvcache import Entry, PrefixKVCache, ragged_batch, row_entry
from .loading import max_positions, right_padded, single_token_id

log = logging.getLogger(__name__)


DEFAULT_KV_CACHE_MB = 256  # on a CPU; on CUDA the loader's default is GPU_KV_CACHE_SHARE of the GPU's memory
GPU_KV_CACHE_SHARE = 0.10
DEFAULT_PREFILL_TOKENS = 8192


@dataclass
class _Row:
    """One sibling being decoded (local to one `propose_batch` call).

    `tail` is None while the row samples; once its step has ended, the tokens still to feed so that its KV covers
    its child's prefix (`child`); `entry` is that KV and `prior` the child's factor prior read after it."""

    ids: list[int] = field(default_factory=list)
    logprob: float = 0.0
    stop: str | None = None
    text: str = ""
    tail: list[int] | None = None
    child: list[int] | None = None
    entry: Entry | None = None
    prior: list[float] | None = None


@dataclass
class _Plan:
    """One request prepared for decoding: its prefix as ids, its token limit, sampler and rows."""

    index: int
    request: ExpansionRequest
    context: list[int]
    start: list[int]
    limit: int
    temperature: float
    rng: torch.Generator
    stops: tuple[str, ...]
    prior_over: tuple[ThoughtFactor, ...] | None
    prior_ids: list[int] | None
    rows: list[_Row]


def _token_chunks(keys: list[tuple[int, ...]], cap: int) -> list[list[tuple[int, ...]]]:
    """Consecutive groups whose padded size (rows x longest) stays within `cap` tokens (at least one row each)."""
    chunks: list[list[tuple[int, ...]]] = []
    for key in keys:
        if chunks and (len(chunks[-1]) + 1) * max(len(key), max(len(k) for k in chunks[-1])) <= cap:
            chunks[-1].append(key)
        else:
            chunks.append([key])
    return chunks


class TransformersGenerator(PromptIds):
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
        kv_cache_mb: float = DEFAULT_KV_CACHE_MB,
        prior_from_decode: bool = True,
    ):
        if max_step_tokens < 1:
            raise ValueError(f"max_step_tokens must be at least 1, got {max_step_tokens}")
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        if not 0 <= kv_cache_mb <= 1_048_576:
            raise ValueError(f"kv_cache_mb must be between 0 and 1048576, got {kv_cache_mb}")
        self.model, self.tokenizer, self.path = model, tokenizer, Path(path)
        self.name = self.path.name
        self.kv_reuse, self.max_step_tokens, self.top_p = kv_reuse, max_step_tokens, top_p
        self.init_prompt(catalog or load_catalog(), prompt_mode)
        self.device = next(model.parameters()).device
        self.max_positions = max_positions(model.config)
        self.eos_ids = self._eos_ids()
        self.pad_id = next(iter(self.eos_ids), 0) if tokenizer.pad_token_id is None else tokenizer.pad_token_id
        self._weights = list(weights)
        self._encode_lock = threading.Lock()  # fast tokenizers may complain when two threads encode at once
        # the node cache only makes sense with KV reuse; without it every call recomputes (the parity reference)
        self.kv_cache = PrefixKVCache(int(kv_cache_mb * 2**20) if kv_reuse else 0)
        self.prior_from_decode, self.prefilled_tokens = prior_from_decode, 0
        self.prefill_tokens = DEFAULT_PREFILL_TOKENS  # tokens of one prefill pass at most (rows x longest)
        self._encode_memo: dict[tuple[str, bool], tuple[int, ...]] = {}

    # -- setup ---------------------------------------------------------------------------------------
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
            "prompt_mode": self.format.mode, "kv_reuse": self.kv_reuse, "kv_cache_mb": self.kv_cache.max_bytes / 2**20,
            "prior_from_decode": self.prior_from_decode,
        }

    # -- text -> ids ---------------------------------------------------------------------------------
    def _encode(self, text: str, special: bool) -> list[int]:
        """The ids of `text`, memoised: every expansion encodes its question, its factor's start, every factor's
        start for the prior and the closing text of each new step again (8% of a demo search's generator time)."""
        key = (text, special)
        with self._encode_lock:
            ids = self._encode_memo.get(key)
            if ids is None:
                if len(self._encode_memo) >= 100_000:
                    self._encode_memo.clear()
                ids = self._encode_memo[key] = tuple(self.tokenizer.encode(text, add_special_tokens=special))
        return list(ids)

    def _single_starts(self, factors: Sequence[ThoughtFactor]) -> list[int] | None:
        """Each factor's start token when every start is one token (tags mode), else None."""
        starts = [self.start_ids(f) for f in factors]
        return [s[0] for s in starts] if starts and all(len(s) == 1 for s in starts) else None

    # -- the factor prior ----------------------------------------------------------------------------
    def factor_prior(self, state: State, factors: Sequence[ThoughtFactor]) -> list[float]:
        """P(S, a): softmax over factors of log p(step start | state). With KV reuse it reads the node's cached KV
        (or prefills it once and keeps it for the expansion that follows); else one full pass."""
        if not factors:
            return []
        context = self.context_ids(state, factors)
        starts = [self.start_ids(f) for f in factors]
        room = max(len(s) for s in starts) + 1
        with torch.inference_mode():
            if self.kv_reuse and (self.max_positions is None or len(context) + room <= self.max_positions):
                scores = self._prior_scores(context, starts, self._entries([context])[0])
            elif all(len(s) == 1 for s in starts):
                scores = self._next_token_logprobs(context, [s[0] for s in starts])
            else:
                scores = self._sequence_logprobs(context, starts)
        return torch.softmax(scores, dim=0).tolist()

    def _prior_scores(self, context: list[int], starts: list[list[int]], entry: Entry) -> torch.Tensor:
        """log p(start | context) per factor on top of the context's KV: free for one-token starts (the entry's
        next-token logits), one small batched pass over the starts' tokens otherwise."""
        if all(len(s) == 1 for s in starts):
            return torch.log_softmax(entry.logits, dim=-1)[[s[0] for s in starts]]
        width = max(len(s) for s in starts) + 1
        logits, _, _, _, _ = self._forward_from([(entry, context + s) for s in starts], width)
        logp = torch.log_softmax(logits.float(), dim=-1)
        out = []
        for i, s in enumerate(starts):
            full = len(context) + len(s)
            first = width - min(width, full) + (len(context) - 1 - max(0, full - width))
            at = torch.arange(first, first + len(s), device=self.device)
            out.append(logp[i, at, torch.tensor(s, device=self.device)].sum())
        return torch.stack(out)

    def _next_token_logprobs(self, context: list[int], token_ids: list[int]) -> torch.Tensor:
        ids = torch.tensor([self._fit(context, 1)], device=self.device)
        logits = self.model(input_ids=ids, use_cache=False).logits[0, -1].float()
        return torch.log_softmax(logits, dim=-1)[token_ids]

    def _sequence_logprobs(self, context: list[int], starts: list[list[int]]) -> torch.Tensor:
        """Sum of log p(start tokens | context) per factor: all factors in one right-padded batch."""
        context = self._fit(context, max(len(s) for s in starts))
        ids, mask = right_padded([context + s for s in starts], self.pad_id, self.device)
        logp = torch.log_softmax(self.model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float(), -1)
        out = []
        for i, s in enumerate(starts):
            at = torch.arange(len(context) - 1, len(context) - 1 + len(s), device=self.device)
            out.append(logp[i, at, torch.tensor(s, device=self.device)].sum())
        return torch.stack(out)

    # -- KV of node prefixes -------------------------------------------------------------------------
    def _entries(self, contexts: Sequence[list[int]]) -> list[Entry]:
        """The KV of each context: from the node cache, else prefilled (all misses in right-padded batches capped
        by `prefill_tokens`) and kept in the cache."""
        found: dict[tuple[int, ...], Entry] = {}
        missing: list[tuple[int, ...]] = []
        for context in contexts:
            key = tuple(context)
            if key in found or key in missing:
                continue
            entry = self.kv_cache.get(key)
            if entry is None:
                missing.append(key)
            else:
                found[key] = entry
        for chunk in _token_chunks(sorted(missing, key=len), self.prefill_tokens):
            found.update(self._prefill(chunk))
        return [found[tuple(c)] for c in contexts]

    def _prefill(self, keys: list[tuple[int, ...]]) -> dict[tuple[int, ...], Entry]:
        ids, mask = right_padded([list(k) for k in keys], self.pad_id, self.device)
        width = ids.shape[1]
        positions = torch.arange(width, device=self.device).expand(len(keys), -1)
        cache = DynamicCache(config=self.model.config)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True)
        self.prefilled_tokens += sum(len(k) for k in keys)
        got = {}
        for i, k in enumerate(keys):
            entry = row_entry(cache, i, torch.arange(len(k), device=self.device), out.logits[i, len(k) - 1])
            self.kv_cache.put(k, entry)
            got[k] = entry
        return got

    def _forward_from(self, rows: list[tuple[Entry | None, list[int]]], width: int):
        """One batched pass feeding each row the last `width` of its ids on top of its entry's KV of the ids before
        them (a row without an entry is fed all its ids: `width` must cover them). Ragged prefixes: the KV is
        left-padded with masked zeros, positions are each row's own. Returns logits [rows, width, vocab], the
        batch's cache, its attention mask, each row's last position and the input column of each row's first id.
        The logits stay in the model's dtype (a float copy of a whole prefill's logits is gigabytes at a 150k
        vocabulary): callers convert the positions they read."""
        b = ragged_batch(self.model.config, rows, width, self.pad_id, self.device)
        out = self.model(input_ids=b.ids, attention_mask=b.mask, position_ids=b.positions, cache=b.cache,
                         use_cache=True)
        return out.logits, b.cache, b.mask, b.positions[:, -1], b.firsts

    def kv_stats(self) -> dict[str, int]:
        """Node cache hits, misses and size, and the tokens prefilled so far (for benchmarks and logs)."""
        return {**self.kv_cache.stats(), "prefilled_tokens": self.prefilled_tokens}

    # -- proposing steps -----------------------------------------------------------------------------
    def propose(
        self, state: State, factor: ThoughtFactor, n: int, *, temperature: float | None = None, seed: int | None = None
    ) -> list[Step]:
        """`n` continuations under `factor`: one prefill of the shared prefix (or none, when cached), then all
        siblings in one batch."""
        return self.propose_batch([ExpansionRequest(state, factor, n, temperature=temperature, seed=seed)])[0]

    def propose_batch(self, requests: Sequence[ExpansionRequest]) -> list[list[Step]]:
        """Every request's rows decoded in ONE loop (ragged prefixes side by side); see `Generator.propose_batch`.

        With `prior_over`, a row that ended its step goes on for the few tokens that close it in the rendered
        prefix (e.g. the newline after a close tag); the logits there are the child's next-token distribution, so
        its factor prior comes from this pass, and its KV is kept in the node cache for its own expansion."""
        out: list[list[Step]] = [[] for _ in requests]
        plans = []
        for i, request in enumerate(requests):
            if request.n < 1:
                continue
            plan = self._plan(i, request)
            if plan.limit <= 0:
                log.warning("%s: the prompt (%d tokens) fills the model's context; no room for a step", self.name,
                            len(plan.context) + len(plan.start))
                out[i] = [self._to_step(_Row(stop="context"), request.factor) for _ in range(request.n)]
            else:
                plans.append(plan)
        if not plans:
            return out
        with torch.inference_mode():
            if self.kv_reuse:
                self._decode_batch(plans)
            else:
                for plan in plans:
                    self._decode_reference(plan)
            self._priors_after(plans)
        for plan in plans:
            for row in plan.rows:
                row.stop = row.stop or ("context" if plan.limit < self.max_step_tokens else "length")
            out[plan.index] = [self._to_step(row, plan.request.factor) for row in plan.rows]
        return out

    def _plan(self, index: int, request: ExpansionRequest) -> _Plan:
        factors = [request.factor, *(request.prior_over or ())]
        context = self.context_ids(request.state, factors)
        start = self.start_ids(request.factor)
        room = self.max_step_tokens if self.max_positions is None else self.max_positions - len(context) - len(start)
        rng = torch.Generator(device=self.device)
        rng.manual_seed(request.seed) if request.seed is not None else rng.seed()
        temperature = 1.0 if request.temperature is None else float(request.temperature)
        prior_over = request.prior_over if self.prior_from_decode else None
        return _Plan(
            index, request, context, start, min(self.max_step_tokens, room), temperature, rng,
            self.stop_strings(request.factor), prior_over,
            self._single_starts(prior_over) if prior_over else None,
            [_Row() for _ in range(request.n)],
        )

    def _to_step(self, row: _Row, factor: ThoughtFactor) -> Step:
        return self.new_step(factor, row.ids, row.logprob, row.stop, row.text, row.prior)

    def _decode_batch(self, plans: list[_Plan]) -> None:
        """All rows of all plans in one decode loop: one batched pass per token, finished rows leave the batch.

        The first pass feeds each plan its factor's start on top of its node's cached KV, and prefills the nodes
        that missed the cache in the same pass (their KV is kept for next time); its cache is then repeated to one
        row per sibling. A row's logprob is the model's own log-probability of its tokens (before temperature and
        top-p)."""
        entries = self._hits_and_prefilled(plans)
        width = max(1, *(len(p.start) for p in plans),
                    *(len(p.context) + len(p.start) for p, e in zip(plans, entries, strict=True) if e is None))
        logits, cache, mask, last, firsts = self._forward_from(
            [(e, p.context + p.start) for p, e in zip(plans, entries, strict=True)], width)
        repeat = [i for i, p in enumerate(plans) for _ in p.rows]
        for i, (plan, entry) in enumerate(zip(plans, entries, strict=True)):
            if entry is None:  # a node prefilled in this pass: kept in the node cache
                self._keep_prefill(plan.context, cache, i, mask[i], logits[i, firsts[i] + len(plan.context) - 1].float())
        if len(repeat) != len(plans):
            index = torch.tensor(repeat, device=self.device)
            cache.batch_select_indices(index)
            mask, last = mask[index], last[index]
        logits = logits[repeat, -1].float()
        active = [(p, row) for p in plans for row in p.rows]
        while active:
            feed = self._next_tokens(active, logits, cache, mask)
            keep = [j for j, tokens in enumerate(feed) if tokens]
            if not keep:
                break
            if len(keep) < len(active):
                index = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(index)
                mask, last = mask[index], last[index]
            active = [active[j] for j in keep]
            width = max(len(feed[j]) for j in keep)
            ids = [[self.pad_id] * (width - len(feed[j])) + feed[j] for j in keep]
            fresh = torch.tensor([[0] * (width - len(feed[j])) + [1] * len(feed[j]) for j in keep], device=self.device)
            counts = fresh.sum(dim=1)
            positions = (last[:, None] + fresh.cumsum(dim=1)) * fresh
            mask, last = torch.cat([mask, fresh.to(mask.dtype)], dim=1), last + counts
            out = self.model(input_ids=torch.tensor(ids, device=self.device), attention_mask=mask,
                             position_ids=positions, cache=cache, use_cache=True)
            logits = out.logits[:, -1].float()

    def _hits_and_prefilled(self, plans: list[_Plan]) -> list[Entry | None]:
        """Each plan's node KV from the cache; when some hit and some miss, the misses are prefilled on their own
        (and kept), so that the first pass feeds only the factors' starts: prefilled together with the misses, every
        hit would be fed its whole context again (one width for the pass). None where the first pass prefills."""
        entries = [self.kv_cache.get(tuple(p.context)) for p in plans]
        missing = [tuple(p.context) for p, e in zip(plans, entries, strict=True) if e is None]
        if not missing or len(missing) == len(plans) or self.kv_cache.max_bytes == 0:
            return entries
        got: dict[tuple[int, ...], Entry] = {}
        for chunk in _token_chunks(sorted(set(missing), key=len), self.prefill_tokens):
            got.update(self._prefill(chunk))
        return [e if e is not None else got[tuple(p.context)] for p, e in zip(plans, entries, strict=True)]

    def _keep_prefill(self, context: list[int], cache, row: int, mask: torch.Tensor, logits: torch.Tensor) -> None:
        """Keep a node prefilled inside a batch in the node cache (its first columns in that row)."""
        if self.kv_cache.max_bytes:
            columns = mask.nonzero()[: len(context), 0]
            self.kv_cache.put(tuple(context), row_entry(cache, row, columns, logits))
        self.prefilled_tokens += len(context)

    def _next_tokens(self, active, logits: torch.Tensor, cache, mask: torch.Tensor) -> list[list[int]]:
        """The tokens each row feeds next (none: the row is done and leaves the batch): a sampled one, or the whole
        tail that closes a finished step; a row whose tail was fed reads its child's prior here."""
        feed: list[list[int]] = [[] for _ in active]
        sampling = False
        by_plan: dict[int, list[int]] = {}
        for j, (plan, row) in enumerate(active):
            if row.tail is None:
                by_plan.setdefault(id(plan), []).append(j)
            else:
                self._child_done(plan, row, cache, j, mask[j], logits[j])
        for js, tokens, logps in self._sample_per_plan(active, list(by_plan.values()), logits):
            plan = active[js[0]][0]
            for j, tok, lp in zip(js, tokens, logps, strict=True):
                row = active[j][1]
                going = self._advance(row, tok, lp, plan.stops)
                if going and len(row.ids) < plan.limit:
                    feed[j] = [tok]
                    sampling = True
                    continue
                if going:
                    row.text = self._text(row.ids)
                row.tail = self._tail(plan, row)
                feed[j] = row.tail or []
        if not sampling and self.kv_cache.max_bytes == 0:
            # nothing left to sample and no node cache: a pass only for the closing tokens would cost more than the
            # separate prior pass of the few children that get expanded (it is read lazily for them instead)
            for j, (_, row) in enumerate(active):
                if feed[j]:
                    row.tail, row.child, feed[j] = [], None, []
        return feed

    def _tail(self, plan: _Plan, row: _Row) -> list[int] | None:
        """The tokens still to feed after a row's step ended for its KV to cover its child's whole prefix: its last
        token, then what the rendering adds (the newline after a close tag). None when nothing is worth it (no
        prior wanted and no cache), after EOS, when the ids do not spell the rendered step, or at the context end."""
        if plan.prior_over is None and self.kv_cache.max_bytes == 0:
            return None
        if row.stop == "eos" or not row.ids:
            return None
        factor = plan.request.factor
        row.child = self.child_ids(plan.context, factor, row.ids, self._to_step(row, factor).text)
        if row.child is None:
            return None
        return [row.ids[-1], *row.child[len(plan.context) + len(plan.start) + len(row.ids):]]

    def _child_done(self, plan: _Plan, row: _Row, cache, j: int, mask: torch.Tensor, logits: torch.Tensor) -> None:
        """A row's tail is fed: keep the child's KV (node cache) and read its prior from these logits."""
        row.tail = []
        columns = mask.nonzero()[:, 0]
        if row.child is None or len(columns) != len(row.child):
            row.child = None
            return
        if self.kv_cache.max_bytes or (plan.prior_over is not None and plan.prior_ids is None):
            # a copy of the row's KV only where it is used: the node cache, or the cues-mode prior pass after
            entry = row_entry(cache, j, columns, logits)
            self.kv_cache.put(tuple(row.child), entry)
            row.entry = entry
        if plan.prior_ids is not None:
            row.prior = torch.softmax(torch.log_softmax(logits, dim=-1)[plan.prior_ids], dim=0).tolist()

    def _priors_after(self, plans: list[_Plan]) -> None:
        """Priors of children whose factors start with several tokens (cues mode): one small pass over each
        child's KV from this decode (no prefill again)."""
        for plan in plans:
            if plan.prior_over is None or plan.prior_ids is not None:
                continue
            starts = [self.start_ids(f) for f in plan.prior_over]
            for row in plan.rows:
                if row.entry is not None and row.child is not None:
                    scores = self._prior_scores(row.child, starts, row.entry)
                    row.prior = torch.softmax(scores, dim=0).tolist()

    def _decode_reference(self, plan: _Plan) -> None:
        """The parity reference: every row's full sequence recomputed for each token, no cache of any kind."""
        prefix = plan.context + plan.start
        active = list(range(len(plan.rows)))
        logits = self.model(input_ids=torch.tensor([prefix], device=self.device), use_cache=False).logits[:, -1]
        logits = logits.float().expand(len(active), -1)
        for _ in range(plan.limit):
            tokens = self._sample(logits, plan.temperature, plan.rng)
            logps = torch.log_softmax(logits, dim=-1).gather(1, tokens[:, None])[:, 0].tolist()
            active = [i for i, tok, lp in zip(active, tokens.tolist(), logps, strict=True)
                      if self._advance(plan.rows[i], tok, lp, plan.stops)]
            if not active:
                return
            if len(plan.rows[active[0]].ids) >= plan.limit:
                break
            batch = torch.tensor([prefix + plan.rows[i].ids for i in active], device=self.device)
            logits = self.model(input_ids=batch, use_cache=False).logits[:, -1].float()
        for i in active:
            plan.rows[i].text = self._text(plan.rows[i].ids)

    def _sample_per_plan(self, active, groups: list[list[int]], logits: torch.Tensor):
        """Each plan's rows sampled with its own generator on the model's device: (rows, tokens, logprobs)."""
        drawn = []
        for js in groups:
            plan = active[js[0]][0]
            sub = logits[js]
            tokens = self._sample(sub, plan.temperature, plan.rng)
            logps = torch.log_softmax(sub, dim=-1).gather(1, tokens[:, None])[:, 0].tolist()
            drawn.append((js, tokens.tolist(), logps))
        return drawn

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

    def _single(self, text: str) -> int | None:
        return single_token_id(self.tokenizer, text)


def top_p_filter(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Zero the tail outside the smallest set of tokens whose probability reaches `top_p`, then renormalise."""
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    outside = sorted_probs.cumsum(dim=-1) - sorted_probs >= top_p
    sorted_probs = sorted_probs.masked_fill(outside, 0.0)
    filtered = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return filtered / filtered.sum(dim=-1, keepdim=True)
