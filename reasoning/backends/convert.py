"""Weight-file conversions that the engine launcher needs (engine/server.py; the only safetensors-with-torch code
outside the loaders)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file


def has_tensor_prefix(files: list[Path], prefix: str) -> bool:
    """Whether any tensor in these safetensors files is named `prefix...`."""
    for f in files:
        with safe_open(str(f), "pt") as src:
            if any(k.startswith(prefix) for k in src.keys()):  # noqa: SIM118 (safe_open is not iterable)
                return True
    return False


def copy_renamed(files: list[Path], out_dir: Path, rename: Callable[[str], str]) -> None:
    """Write each safetensors file into `out_dir` with its tensors renamed by `rename` (metadata kept)."""
    for f in files:
        with safe_open(str(f), "pt") as src:
            tensors = {rename(k): src.get_tensor(k).contiguous() for k in src.keys()}  # noqa: SIM118
            metadata = src.metadata() or {"format": "pt"}
        save_file(tensors, str(out_dir / f.name), metadata=metadata)
