"""A bounded LRU cache of node prefixes' KV (by bytes), so a node expanded again skips its prefill.

Keys are the token ids of a prefix (a tree node's context), so an entry is used only for exactly the tokens it was
computed from; a step whose text the domain rewrote, or a node edited by hand, simply misses.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache


@dataclass(frozen=True)
class Entry:
    """The KV of one prefix (per layer: keys and values of shape [1, heads, length, head_dim]) and the next-token
    logits after its last token (what the factor prior of a tag-trained model reads)."""

    layers: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    logits: torch.Tensor

    @property
    def length(self) -> int:
        return int(self.layers[0][0].shape[-2]) if self.layers else 0

    @property
    def nbytes(self) -> int:
        kv = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in self.layers)
        return kv + self.logits.numel() * self.logits.element_size()


class PrefixKVCache:
    """LRU by bytes; `max_bytes` 0 disables it (every lookup misses, nothing is kept). Thread-safe."""

    def __init__(self, max_bytes: int):
        if max_bytes < 0:
            raise ValueError(f"the KV cache size must be at least 0 bytes, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[tuple[int, ...], Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: tuple[int, ...]) -> bool:
        """Whether `key` is kept (not counted as a hit or a miss, nor made recent)."""
        with self._lock:
            return key in self._entries

    def get(self, key: tuple[int, ...]) -> Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry

    def put(self, key: tuple[int, ...], entry: Entry) -> None:
        """Keep `entry`, evicting the least recently used until it fits; one larger than the whole cache is not kept."""
        size = entry.nbytes
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= old.nbytes
            while self._entries and self.bytes + size > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self.bytes -= evicted.nbytes
            self._entries[key] = entry
            self.bytes += size

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.bytes = 0

    def stats(self) -> dict[str, int]:
        return {"entries": len(self._entries), "bytes": self.bytes, "max_bytes": self.max_bytes,
                "hits": self.hits, "misses": self.misses}


def row_entry(cache: DynamicCache, row: int, columns: torch.Tensor, logits: torch.Tensor) -> Entry:
    """Copy one batch row's KV at `columns` (its real, unpadded positions) out of a batched cache (`index_select`
    already copies: no second clone)."""
    layers = tuple(
        (_tensor(layer, "keys")[row : row + 1].index_select(-2, columns),
         _tensor(layer, "values")[row : row + 1].index_select(-2, columns))
        for layer in cache.layers
    )
    return Entry(layers, logits.detach().float().clone())


def batched_cache(config, parts: list[tuple[Entry | None, int, int]], width: int) -> DynamicCache:
    """A cache of `width` positions per row from `(entry, length, copies)`: each entry's first `length` positions,
    left-padded with zeros (masked out by the attention mask) and repeated `copies` times. A row without an entry
    (fed all its ids in this pass) gets `width` masked zeros. Written into one preallocated tensor per layer (no
    padded intermediates to concatenate)."""
    cache = DynamicCache(config=config)
    some = next((e for e, _, _ in parts if e is not None), None)
    if some is None:
        raise ValueError("a batched cache needs at least one cached prefix")
    rows = sum(copies for _, _, copies in parts)
    for li, (k0, v0) in enumerate(some.layers):
        keys = k0.new_zeros((rows, *k0.shape[1:-2], width, k0.shape[-1]))
        values = v0.new_zeros((rows, *v0.shape[1:-2], width, v0.shape[-1]))
        at = 0
        for entry, length, copies in parts:
            if entry is not None and length:
                k, v = entry.layers[li]
                keys[at : at + copies, ..., width - length :, :] = k[..., :length, :]
                values[at : at + copies, ..., width - length :, :] = v[..., :length, :]
            at += copies
        cache.update(keys, values, li)
    return cache


@dataclass(frozen=True)
class Ragged:
    """One batched pass on top of cached prefixes of different lengths (see `ragged_batch`)."""

    ids: torch.Tensor
    mask: torch.Tensor
    positions: torch.Tensor
    cache: DynamicCache
    firsts: list[int]


def ragged_batch(config, rows: list[tuple[Entry | None, list[int]]], width: int, pad_id: int, device) -> Ragged:
    """Inputs that feed each row the last `width` of its ids on top of its entry's KV of the ids before them (a row
    without an entry is fed all its ids: `width` must cover them). The KV is left-padded with masked zeros to the
    longest cached prefix, the fed ids are left-padded to `width`, and positions are each row's own. `firsts[i]` is
    the input column of row i's first id (negative when it lies in the cache)."""
    parts, inputs, masks, positions, firsts = [], [], [], [], []
    used = [max(0, len(ids) - width) for _, ids in rows]
    past = max(used)
    for (entry, ids), u in zip(rows, used, strict=True):
        if u > (entry.length if entry is not None else 0):
            raise ValueError("a cached prefix is shorter than the ids it should precede")
        fed = ids[u:]
        pad = width - len(fed)
        if past:
            parts.append((entry, u, 1))
        masks.append([0] * (past - u) + [1] * u + [0] * pad + [1] * len(fed))
        inputs.append([pad_id] * pad + fed)
        positions.append([0] * pad + list(range(u, u + len(fed))))
        firsts.append(pad - u)
    cache = batched_cache(config, parts, past) if past else DynamicCache(config=config)
    tensor = lambda rows_: torch.tensor(rows_, dtype=torch.long, device=device)  # noqa: E731
    return Ragged(tensor(inputs), tensor(masks), tensor(positions), cache, firsts)


def _tensor(layer: Any, name: str) -> torch.Tensor:
    """A cache layer's `keys` or `values` (attention layers only: a model whose cache has none is refused)."""
    t = getattr(layer, name, None)
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{type(layer).__name__} keeps no {name} tensor: the node KV cache needs attention layers")
    return t
