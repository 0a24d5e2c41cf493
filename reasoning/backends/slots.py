"""A decode step of fixed shape, replayable as one CUDA graph: the transformers backend's fast path on a GPU.

In the ragged loop (generator.py) every decode step is a fresh eager forward: about a thousand kernel launches
from Python for a 28-layer model, so a GPU waits on the host whatever the batch (an H200 measured 34 ms a step for
the 1.5B shape, 2% of its memory-bandwidth ceiling). Here the rows of a batch sit in fixed slots of a preallocated
KV buffer ([slots, kv heads, columns, head dim] per layer); each step feeds every slot one token at the same column,
with each row's own position and an attention mask over the columns it really holds (left padding, rows that
finished, and the unused slots of a bucket are masked out). Those shapes never change during a decode, so the
step is captured once per (slots, columns) bucket and replayed: one launch a step.

Only models whose forward takes prepared masks (`attention_mask={"full_attention": mask}`), use SDPA attention and
have no sliding-window layers qualify (`supports_slots`): Qwen2 (the Qwen2.5-Math generators the product targets)
and Qwen3. Llama and Mistral hand such a mask to their own mask builder, which does not take it.
The same code runs eagerly on a CPU, which is how the tests check it against the ragged loop.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import StaticLayer

from .kvcache import Entry, _tensor

log = logging.getLogger(__name__)
_CAPTURE = threading.Lock()  # one capture at a time in the process (workers may share a GPU)

SLOT_MODEL_TYPES = frozenset({"qwen2", "qwen3"})
MIN_COLUMNS = 256


def supports_slots(model) -> bool:
    """True when `model` can decode in fixed slots (see the module's docstring)."""
    config = model.config
    return (getattr(config, "model_type", None) in SLOT_MODEL_TYPES
            and getattr(config, "_attn_implementation", None) == "sdpa"
            and not getattr(config, "use_sliding_window", False)
            and all(t == "full_attention" for t in (getattr(config, "layer_types", None) or ["full_attention"])))


def bucket(rows: int, columns: int) -> tuple[int, int]:
    """The (slots, columns) of the buffer that holds `rows` rows of `columns` positions: both powers of two (columns
    at least MIN_COLUMNS), so that a few captured graphs serve every batch of a search however deep its tree."""
    return 1 << max(0, rows - 1).bit_length(), max(MIN_COLUMNS, 1 << max(0, columns - 1).bit_length())


class _SlotLayer(StaticLayer):
    """One layer's preallocated keys and values; `update` writes the fed token's KV at the shared column. (A
    StaticLayer for the rest of the cache interface, whose abstract methods vary across transformers versions.)"""

    _layer_type = None  # never registered as the static layer of any layer type

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, column: torch.Tensor):
        super().__init__(max_cache_len=int(keys.shape[-2]))
        self.keys, self.values, self.column = keys, values, column
        self.k, self.v = keys, values  # the same tensors, typed (the base class declares them Optional)
        self.is_initialized = True
        self.device = keys.device
        self.batch_size, self.num_heads = keys.shape[:2]
        self.k_head_dim = self.v_head_dim = int(keys.shape[-1])

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        raise RuntimeError("slot layers are allocated up front")

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
        self.k.index_copy_(2, self.column, key_states)
        self.v.index_copy_(2, self.column, value_states)
        return self.k, self.v


class SlotDecoder:
    """Fixed slots × columns of KV for one model, and its one-token step (a CUDA graph on a GPU when `graph`)."""

    def __init__(self, model, slots: int, columns: int, *, graph: bool):
        config = model.config
        param = next(model.parameters())
        heads = config.num_attention_heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        self.model, self.slots, self.columns = model, slots, columns
        self.device = param.device
        # every layer's keys and values are views of one block, so that a row's KV leaves in one copy (`entry`)
        self.kv = torch.zeros((config.num_hidden_layers, 2, slots, kv_heads, columns, head_dim), dtype=param.dtype,
                              device=self.device)
        self.column = torch.zeros(1, dtype=torch.long, device=self.device)
        self.layers = [_SlotLayer(self.kv[i, 0], self.kv[i, 1], self.column) for i in range(config.num_hidden_layers)]
        self.cache = DynamicCache(config=config)
        self.cache.layers = self.layers  # type: ignore[assignment]
        self.cache.slot_decoder = self  # type: ignore[attr-defined]  # (generator._row_entry reads it)
        self.ids = torch.zeros((slots, 1), dtype=torch.long, device=self.device)
        self.positions = torch.zeros((slots, 1), dtype=torch.long, device=self.device)
        self.mask = torch.zeros((slots, columns), dtype=torch.bool, device=self.device)
        self.mask[:, 0] = True  # every slot attends to something (an all-masked row would write NaN into the KV)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.logits: torch.Tensor | None = None
        if graph and self.device.type == "cuda":
            try:
                self._capture()
            except Exception as exc:  # a model whose forward syncs on the host cannot be captured: eager steps
                log.warning("cannot capture the decode step as a CUDA graph (%s: %s); decoding in slots eagerly",
                            type(exc).__name__, str(exc)[:200])
                self.graph, self.logits = None, None
                torch.cuda.synchronize(self.device)

    def _forward(self) -> torch.Tensor:
        out = self.model(input_ids=self.ids, position_ids=self.positions, cache=self.cache, use_cache=True,
                         attention_mask={"full_attention": self.mask[:, None, None, :]})
        return out.logits[:, -1]

    def _capture(self) -> None:
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(2):  # warm up outside the graph (kernel selection, workspaces)
                self._forward()
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # thread_local: another thread's work on the GPU (a PRM scoring for another worker) is not an error
        with _CAPTURE, torch.cuda.graph(graph, capture_error_mode="thread_local"):
            self.logits = self._forward()
        self.graph = graph
        self.kv.zero_()  # what the warm-up wrote at column 0

    def load(self, cache, mask: torch.Tensor) -> None:
        """Start a decode from a ragged batch: its rows' KV (a cache of `mask.shape[1]` columns) into the first
        slots and columns; the other slots attend only to column 0."""
        rows, width = mask.shape
        for layer, source in zip(self.layers, cache.layers, strict=True):
            layer.k[:rows, :, :width].copy_(_tensor(source, "keys"))
            layer.v[:rows, :, :width].copy_(_tensor(source, "values"))
        self.mask.zero_()
        self.mask[:, 0] = True
        self.mask[:rows, :width] = mask.to(torch.bool)

    @property
    def nbytes(self) -> int:
        return self.kv.numel() * self.kv.element_size()

    def entry(self, slot: int, columns: torch.Tensor, logits: torch.Tensor) -> Entry:
        """Slot `slot`'s KV at `columns` as a node-cache entry: one gather for all layers (the per-layer copy of
        kvcache.row_entry is 2 x layers launches, a quarter of a 64-row decode's host time on an H200)."""
        block = self.kv[:, :, slot].index_select(-2, columns)  # [layers, 2, heads, len, head dim], a fresh tensor
        return Entry(tuple((block[i, 0][None], block[i, 1][None]) for i in range(block.shape[0])),
                     logits.detach().float().clone())

    def step(self, column: int, ids: list[int], positions: list[int], fed: list[bool]) -> torch.Tensor:
        """Feed slot i token ids[i] at `column` and position positions[i] (masked in where fed[i]); returns the
        next-token logits of every slot (a buffer the next step overwrites)."""
        packed = torch.tensor([ids, positions, [int(f) for f in fed]], dtype=torch.long).to(self.device,
                                                                                              non_blocking=True)
        self.ids.copy_(packed[0, :, None])
        self.positions.copy_(packed[1, :, None])
        self.mask[:, column] = packed[2].to(torch.bool)
        self.column.fill_(column)
        if self.graph is not None:
            self.graph.replay()
            assert self.logits is not None
            return self.logits
        return self._forward()
