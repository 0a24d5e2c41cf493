"""Process reward model adapters: each reads step scores the way its model family was trained (ARCHITECTURE.md, "Backends")."""
from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import torch

from ..digests import sha256_files
from ..domains import get_domain
from ..types import Problem
from .kvcache import Entry, PrefixKVCache, Ragged, ragged_batch, row_entry
from .loading import (
    ModelLoadError,
    check_causal_lm,
    check_remote_code,
    device_and_dtype,
    kv_cache_budget_mb,
    load_model,
    load_tokenizer,
    max_positions,
    read_config,
    right_padded,
    single_token_id,
    weight_files,
)
from .prm_paths import NEUTRAL, QWEN_PRM_SYSTEM, fit_path, positions_of, qwen_prm_messages, separated_path

log = logging.getLogger(__name__)

DEFAULT_BATCH_TOKENS = 16384  # padded tokens per PRM forward pass at most (rows x longest row), on an accelerator
# On a CPU a pass is compute-bound and its activations must stay in cache: on the demo PRM, one thread, a cap of
# 512-1024 tokens scored a tree's paths 1.4-1.6x faster than one path per call, and 16384 was slower than one per call.
CPU_BATCH_TOKENS = 1024
# The KV of scored paths kept so that a new node's path is scored by feeding only its own step on top of its
# parent's KV (a search scores every node once, and its children extend its path): LRU by bytes, 0 turns it off.
DEFAULT_KV_CACHE_MB = 128  # on a CPU; on CUDA GPU_KV_CACHE_SHARE of the GPU's memory
GPU_KV_CACHE_SHARE = 0.05


_NO_LOGITS = torch.empty(0)  # a PRM's cache entries keep no next-token logits


def _parent_key(ids: list[int], positions: list[int], root: list[int]) -> tuple[int, ...] | None:
    """The ids of a path's parent path as the PRM cache keys it (through the parent's last read position); for a
    first step, the question's ids (`root`) when the path starts with them."""
    if len(positions) >= 2:
        return tuple(ids[: positions[-2] + 1]) if positions[-2] >= 0 else None
    if root and len(root) < len(ids) and ids[: len(root)] == root:
        return tuple(root)
    return None


def _raw(outputs: Any, row: int, column: int) -> torch.Tensor:
    """An adapter's forward outputs at one position, before any softmax (logits, or a value head's values)."""
    values = outputs if isinstance(outputs, torch.Tensor) else getattr(outputs, "logits", None)
    values = outputs[0] if values is None else values
    return values[row, column].float()


def default_batch_tokens(device: Any) -> int:
    """The token cap of one PRM pass when none is given: small on a CPU (see CPU_BATCH_TOKENS), large elsewhere."""
    return CPU_BATCH_TOKENS if torch.device(device).type == "cpu" else DEFAULT_BATCH_TOKENS


class PRMAdapter:
    """Shared loading, batching and provenance; subclasses encode a path and read its scores from the outputs."""

    adapter = "base"
    auto_class = "AutoModelForCausalLM"
    reuse_prefix_kv = True  # scores a new node on its parent's cached KV where the model allows (checked at load)
    options: dict[str, Any] = {}

    def __init__(self, path, *, device=None, dtype=None, trust_remote_code: bool = False,
                 batch_tokens: int | None = None, kv_cache_mb: float | None = None, **options: Any):
        if batch_tokens is not None and batch_tokens < 1:
            raise ModelLoadError(f"{path}: the PRM's batch_tokens must be at least 1, got {batch_tokens}")
        if kv_cache_mb is not None and not 0 <= kv_cache_mb <= 1_048_576:
            raise ModelLoadError(f"{path}: the PRM's kv_cache_mb must be between 0 and 1048576, got {kv_cache_mb}")
        self.path, cfg = read_config(path)
        unknown = set(options) - set(self.options)
        if unknown:
            raise ModelLoadError(f"{self.path}: PRM adapter {self.adapter!r} has no option(s) {sorted(unknown)}")
        self.opts = {**self.options, **options}
        self._encode_lock = threading.Lock()  # fast tokenizers may complain when two threads encode at once
        self._token_memo: dict[tuple[str, bool], tuple[int, ...]] = {}
        self.name = self.path.name
        self._weights = weight_files(self.path)
        self.check_code(cfg, trust_remote_code)
        self.device, self.dtype = device_and_dtype(device, dtype)
        self.batch_tokens = int(batch_tokens or default_batch_tokens(self.device))
        self.tokenizer = load_tokenizer(self.path, trust_remote_code)
        self.setup_tokens()
        import transformers

        self.model = load_model(getattr(transformers, self.auto_class), self.path, self.device, self.dtype,
                                trust_remote_code)
        self.check_model()
        self.max_positions = max_positions(self.model.config)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        budget = kv_cache_budget_mb(kv_cache_mb, self.device, DEFAULT_KV_CACHE_MB, GPU_KV_CACHE_SHARE)
        self.kv_cache = PrefixKVCache(int(budget * 2**20))
        self.reuses_prefix = self.reuse_prefix_kv and bool(self.kv_cache.max_bytes) and self._prefix_reuse_works()

    # -- hooks -------------------------------------------------------------------------------------
    def check_code(self, cfg: dict[str, Any], trust_remote_code: bool) -> None:
        check_remote_code(self.path, cfg, trust_remote_code)

    def setup_tokens(self) -> None:
        """Look up the adapter's special token ids in the tokenizer (never hard-coded)."""

    def check_model(self) -> None:
        """Check the loaded model against the adapter's other files."""

    def encode(self, question: str, steps: Sequence[str]) -> tuple[list[int], list[int]]:
        """Token ids of one path and the position where each step's score is read."""
        raise NotImplementedError

    def read(self, outputs, row: int, positions: list[int]) -> list[float]:
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------------
    def token_id(self, text: str, what: str) -> int:
        tid = single_token_id(self.tokenizer, text)
        if tid is None:
            raise ModelLoadError(f"the tokenizer of PRM {self.path} has no single token for its {what} {text!r}")
        return tid

    def tokens(self, text: str, special: bool = False) -> list[int]:
        """The ids of `text`, memoised: a search scores the same question and steps again on every path that
        passes through them, and tokenising them each time was a large share of a small PRM's call."""
        key = (text, special)
        with self._encode_lock:
            ids = self._token_memo.get(key)
            if ids is None:
                if len(self._token_memo) >= 100_000:
                    self._token_memo.clear()
                ids = self._token_memo[key] = tuple(self.tokenizer.encode(text, add_special_tokens=special))
        return list(ids)

    def score(self, problem: Problem, paths: Sequence[Sequence[str]]) -> list[list[float]]:
        """One score in [0, 1] per step per path, in right-padded batches of at most `batch_tokens` tokens."""
        return self._scored(problem, paths, last_only=False)

    def score_last(self, problem: Problem, paths: Sequence[Sequence[str]]) -> list[float]:
        """The last step's score of each path (what a search needs for its new nodes), batched like `score`."""
        return [s[-1] if s else NEUTRAL for s in self._scored(problem, paths, last_only=True)]

    def _scored(self, problem: Problem, paths: Sequence[Sequence[str]], *, last_only: bool) -> list[list[float]]:
        question = get_domain(problem.domain).prompt(problem)
        raw = [self.encode(question, list(p)) for p in paths]
        encoded = [self._fit(*r) for r in raw]
        out: list[list[float]] = [[] for _ in paths]
        live = sorted((i for i, p in enumerate(paths) if p), key=lambda i: len(encoded[i][0]))
        with torch.inference_mode():
            if last_only and self.reuses_prefix:
                whole = [i for i in live if len(encoded[i][0]) == len(raw[i][0])]  # a cut path is not cached
                self._score_last_reusing(encoded, whole, out, self.encode(question, [])[0])
                live = [i for i in live if len(encoded[i][0]) != len(raw[i][0])]
            for chunk in self._chunks(live, [len(e[0]) for e in encoded]):
                ids, mask = self._batch([encoded[i][0] for i in chunk])
                outputs = self.forward(ids, mask)
                for row, i in enumerate(chunk):
                    positions = encoded[i][1][-1:] if last_only else encoded[i][1]
                    out[i] = self.read(outputs, row, positions)
        return out

    # -- the prefix cache --------------------------------------------------------------------------
    def _score_last_reusing(self, encoded: list[tuple[list[int], list[int]]], order: list[int],
                            out: list[list[float]], root: list[int]) -> None:
        """The last step's score of each path in `order`, feeding only what follows the parent's KV where the
        parent's path (its ids through its last read position) is in the cache, the whole path otherwise; every
        path's own KV is kept for its children. A path whose parent is in the same call waits for a later wave
        (a whole tree scored at once: depth by depth). Within a wave, hits and misses go in separate token-capped
        passes (one width per pass: a miss fed whole beside the hits would widen every row). A first step's parent
        is the question (`root`, the encoding of no steps), kept once per problem where the adapter's encoding
        starts every path with it."""
        parents = {i: _parent_key(*encoded[i], root) for i in order}
        key = tuple(root)
        if root and key in parents.values() and key not in self.kv_cache:
            batch, _ = self._pass([(None, root)], len(root))
            self.kv_cache.put(key, row_entry(batch.cache, 0, batch.mask[0].nonzero()[:, 0], _NO_LOGITS))
        own = {tuple(encoded[i][0][: encoded[i][1][-1] + 1]): i for i in order if encoded[i][1][-1] >= 0}
        wave: dict[int, int] = {}
        for i in sorted(order, key=lambda i: len(encoded[i][1])):  # a parent has fewer steps than its child
            parent = parents[i]
            wave[i] = wave[own[parent]] + 1 if parent is not None and own.get(parent, i) != i else 0
        for depth in sorted(set(wave.values())):
            self._score_wave(encoded, [i for i in order if wave[i] == depth], out, parents)

    def _score_wave(self, encoded: list[tuple[list[int], list[int]]], order: list[int], out: list[list[float]],
                    parents: dict[int, tuple[int, ...] | None]) -> None:
        hits: list[tuple[int, Entry | None, int]] = []
        misses: list[tuple[int, Entry | None, int]] = []
        for i in order:
            ids, parent = encoded[i][0], parents[i]
            entry = self.kv_cache.get(parent) if parent is not None else None
            if entry is None:
                misses.append((i, None, len(ids)))
            else:
                hits.append((i, entry, len(ids) - entry.length))
        for group in (hits, misses):
            group.sort(key=lambda row: row[2])
            for chunk in self._chunks(list(range(len(group))), [fed for _, _, fed in group]):
                rows = [group[k] for k in chunk]
                width = max(fed for _, _, fed in rows)
                batch, outputs = self._pass([(e, encoded[i][0]) for i, e, _ in rows], width)
                for row, (i, _, _) in enumerate(rows):
                    ids, positions = encoded[i]
                    last = positions[-1]
                    out[i] = self.read(outputs, row, [batch.firsts[row] + last] if last >= 0 else [-1])
                    if last >= 0:
                        columns = batch.mask[row].nonzero()[: last + 1, 0]
                        self.kv_cache.put(tuple(ids[: last + 1]), row_entry(batch.cache, row, columns, _NO_LOGITS))

    def _pass(self, rows: list[tuple[Entry | None, list[int]]], width: int) -> tuple[Ragged, Any]:
        """One forward pass feeding each row its last `width` ids on top of its entry's KV (kvcache.ragged_batch)."""
        batch = ragged_batch(self.model.config, rows, width, self.pad_id, self.device)
        outputs = self.forward(batch.ids, batch.mask, position_ids=batch.positions, cache=batch.cache, use_cache=True)
        return batch, outputs

    def _prefix_reuse_works(self) -> bool:
        """Whether a path's last score read on top of its parent's KV equals the score of the whole path (true of
        causal models that take a cache; a bidirectional encoder, or remote code without the cache API, fails and
        scores whole paths)."""
        try:
            ids, positions = self.encode("Use 3 5 7 8 to make 24.", ["8 - 5 = 3", "3 * 8 = 24"])
            if len(positions) < 2 or positions[-2] < 0:
                return False
            with torch.inference_mode():
                ref_ids, mask = self._batch([ids])
                ref = _raw(self.forward(ref_ids, mask), 0, positions[-1])
                head = ids[: positions[-2] + 1]
                batch, _ = self._pass([(None, head)], len(head))
                entry = row_entry(batch.cache, 0, batch.mask[0].nonzero()[:, 0], _NO_LOGITS)
                batch, outputs = self._pass([(entry, ids)], len(ids) - len(head))
                got = _raw(outputs, 0, batch.firsts[0] + positions[-1])
        except Exception as exc:  # a model without the cache API
            log.info("%s: scoring whole paths (the PRM cannot reuse a parent's KV: %s)", self.name, exc)
            return False
        # relative to the outputs' scale: a causal model's differ by float rounding (1e-7 in float32)
        error = float((got - ref).abs().max() / (ref.abs().max() + 1e-12))
        if error > (1e-4 if self.dtype == torch.float32 else 3e-2):
            log.info("%s: scoring whole paths (outputs read on a parent's KV differ by %.2g)", self.name, error)
            return False
        return True

    def _chunks(self, order: list[int], lengths: list[int]) -> list[list[int]]:
        """Consecutive rows (shortest first) whose padded size stays within `batch_tokens` (one row at least)."""
        chunks: list[list[int]] = []
        for i in order:
            if chunks and (len(chunks[-1]) + 1) * lengths[i] <= self.batch_tokens:
                chunks[-1].append(i)
            else:
                chunks.append([i])
        return chunks

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, **extra: Any):
        return self.model(input_ids=ids, attention_mask=mask, **extra)

    def _fit(self, ids: list[int], positions: list[int]) -> tuple[list[int], list[int]]:
        """Keep the last tokens that fit the PRM's context; steps read before the cut get position -1."""
        limit = self.max_positions
        if limit is not None and len(ids) > limit:
            log.warning("%s: a path of %d tokens exceeds the PRM context (%d); its start is cut", self.name, len(ids),
                        limit)
        return fit_path(ids, positions, limit)

    def _batch(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        return right_padded(rows, self.pad_id, self.device)

    @staticmethod
    def at(values: torch.Tensor, positions: list[int]) -> list[float]:
        """`values[p]` for each position, NEUTRAL where the position was cut off."""
        kept = [p for p in positions if p >= 0]  # only the positions read leave the tensor (not the whole row)
        got = iter(values[kept].float().tolist() if kept else [])
        return [min(1.0, max(0.0, next(got))) if p >= 0 else NEUTRAL for p in positions]

    @cached_property
    def _weights_sha256(self) -> dict[str, str]:
        return sha256_files(sorted(self.path.glob("*.safetensors")))

    def provenance(self) -> dict[str, Any]:
        return {
            "name": self.name, "model_dir": str(self.path), "adapter": self.adapter,
            "model_type": self.model.config.model_type, "weights_sha256": self._weights_sha256,
            "dtype": str(self.dtype).removeprefix("torch."), "device": str(self.device), **self.opts,
        }


class TokenClassificationPRM(PRMAdapter):
    """TRL-trained: prompt + steps each followed by the separator; softmax label 1 at each separator's last token.

    The ids are `prm_paths.separated_path`'s (TRL's `tokenize_row` layout), the ones `train-prm` trains on.
    """

    adapter = "token-classification"
    auto_class = "AutoModelForTokenClassification"
    options = {"separator": "\n"}

    def check_code(self, cfg: dict[str, Any], trust_remote_code: bool) -> None:
        super().check_code(cfg, trust_remote_code)
        archs = cfg.get("architectures") or []
        if archs and not any(a.endswith("ForTokenClassification") for a in archs):
            raise ModelLoadError(f"{self.path} is not a token-classification model (config says {', '.join(archs)})")

    def setup_tokens(self) -> None:
        self.separator_ids = self.tokens(self.opts["separator"])
        if not self.separator_ids:
            raise ModelLoadError(f"the tokenizer of PRM {self.path} writes no token for separator "
                                 f"{self.opts['separator']!r}")

    def encode(self, question: str, steps: Sequence[str]) -> tuple[list[int], list[int]]:
        return separated_path(self.tokens, self.tokenizer.bos_token_id, question, steps, self.separator_ids)

    def read(self, outputs, row: int, positions: list[int]) -> list[float]:
        return self.at(torch.softmax(outputs.logits[row].float(), dim=-1)[:, 1], positions)


class MathShepherdPRM(PRMAdapter):
    """Math-Shepherd style: `question + " " + steps`, each step ending in the tag; p(good) over {good, bad} there."""

    adapter = "math-shepherd"
    options = {"step_tag": "ки", "good_token": "+", "bad_token": "-"}

    def check_code(self, cfg: dict[str, Any], trust_remote_code: bool) -> None:
        super().check_code(cfg, trust_remote_code)
        check_causal_lm(self.path, cfg)

    def setup_tokens(self) -> None:
        self.tag_id = self.token_id(self.opts["step_tag"], "step tag")
        self.label_ids = [self.token_id(self.opts["good_token"], "good token"),
                          self.token_id(self.opts["bad_token"], "bad token")]

    def encode(self, question: str, steps: Sequence[str]) -> tuple[list[int], list[int]]:
        tag = self.opts["step_tag"]
        text = question + " " + "\n".join(f"{s.replace(tag, '')} {tag}" for s in steps)
        ids = self.tokens(text, special=True)
        positions = [i for i, t in enumerate(ids) if t == self.tag_id]
        if len(positions) != len(steps):  # the tag merged with a neighbour: place it explicitly
            ids, positions = self._explicit(question, steps)
        return ids, positions

    def _explicit(self, question: str, steps: Sequence[str]) -> tuple[list[int], list[int]]:
        tag = self.opts["step_tag"]
        ids, positions = self.tokens(question + " ", special=True), []
        for k, step in enumerate(steps):
            ids += self.tokens(("\n" if k else "") + step.replace(tag, "") + " ") + [self.tag_id]
            positions.append(len(ids) - 1)
        return ids, positions

    def read(self, outputs, row: int, positions: list[int]) -> list[float]:
        pair = outputs.logits[row][:, self.label_ids].float()
        return self.at(torch.softmax(pair, dim=-1)[:, 0], positions)


class QwenPRM(PRMAdapter):
    """Qwen2.5-Math-PRM style: chat template, steps joined by `<extra_0>`; softmax(logits)[..., 1] at each one."""

    adapter = "qwen-prm"
    auto_class = "AutoModel"
    options = {"separator": "<extra_0>", "system": QWEN_PRM_SYSTEM}

    def check_code(self, cfg: dict[str, Any], trust_remote_code: bool) -> None:
        if not trust_remote_code:
            raise ModelLoadError(f"{self.path} is a Qwen-PRM-style model that runs its own code; "
                                 "load it with trust_remote_code=True if you trust it")
        check_remote_code(self.path, cfg, trust_remote_code)

    def setup_tokens(self) -> None:
        self.separator_id = self.token_id(self.opts["separator"], "step separator")
        if not getattr(self.tokenizer, "chat_template", None):
            raise ModelLoadError(f"the tokenizer of PRM {self.path} has no chat template")

    def encode(self, question: str, steps: Sequence[str]) -> tuple[list[int], list[int]]:
        messages = qwen_prm_messages(question, steps, self.opts["separator"], self.opts["system"])
        with self._encode_lock:
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
        ids = self.tokens(text)
        return ids, positions_of(ids, self.separator_id)

    def read(self, outputs, row: int, positions: list[int]) -> list[float]:
        logits = outputs.logits if hasattr(outputs, "logits") else outputs[0]
        return self.at(torch.softmax(logits[row].float(), dim=-1)[:, 1], positions)


class ValueHeadPRM(PRMAdapter):
    """A causal LM with a linear value head (`value_head.safetensors`): sigmoid at each step's last token."""

    adapter = "value-head"
    options = {"separator": "\n", "head_file": "value_head.safetensors"}

    def check_code(self, cfg: dict[str, Any], trust_remote_code: bool) -> None:
        super().check_code(cfg, trust_remote_code)
        check_causal_lm(self.path, cfg)

    def setup_tokens(self) -> None:
        from safetensors.torch import load_file

        head_path = self.path / self.opts["head_file"]
        if not head_path.is_file():
            raise ModelLoadError(f"{self.path} has no value head file {self.opts['head_file']}")
        try:
            head = load_file(str(head_path))
            self.head_weight, self.head_bias = head["weight"].float(), head["bias"].float()
        except Exception as exc:  # a broken or incomplete head file
            raise ModelLoadError(f"cannot read value head {head_path}: {exc}") from None
        self.separator_ids = self.tokens(self.opts["separator"])

    def encode(self, question: str, steps: Sequence[str]) -> tuple[list[int], list[int]]:
        ids, positions = self.tokens(question, special=True) + self.separator_ids, []
        for step in steps:
            ids += self.tokens(step) or self.separator_ids
            positions.append(len(ids) - 1)
            ids += self.separator_ids
        return ids, positions

    def check_model(self) -> None:
        width = self.model.get_input_embeddings().weight.shape[-1]
        if tuple(self.head_weight.shape) != (1, width) or tuple(self.head_bias.shape) != (1,):
            raise ModelLoadError(f"value head of {self.path} has shape {tuple(self.head_weight.shape)}, "
                                 f"expected (1, {width}) and a bias of shape (1,)")
        self.head_weight, self.head_bias = self.head_weight.to(self.device), self.head_bias.to(self.device)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, **extra: Any):
        hidden = self.model(input_ids=ids, attention_mask=mask, output_hidden_states=True, **extra).hidden_states[-1]
        return torch.sigmoid(hidden.float() @ self.head_weight.T + self.head_bias)[..., 0]

    def read(self, outputs, row: int, positions: list[int]) -> list[float]:
        return self.at(outputs[row], positions)


ADAPTERS: dict[str, type[PRMAdapter]] = {
    cls.adapter: cls for cls in (TokenClassificationPRM, MathShepherdPRM, QwenPRM, ValueHeadPRM)
}
