"""The project's sha256 digests, in one place: files and model weights (provenance, manifests, the served copy of a
model), and the id of a problem known only by its text."""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

CHUNK = 1 << 20  # files are read a megabyte at a time, never whole


def _update(h: Any, path: Path) -> None:  # a hashlib object
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            h.update(chunk)


def sha256_file(path: Path) -> str:
    """The hex sha256 of one file's bytes."""
    h = hashlib.sha256()
    _update(h, path)
    return h.hexdigest()


def sha256_files(files: Iterable[Path]) -> dict[str, str]:
    """{file name: hex sha256} of each file (a model's `weights_sha256` in its provenance and manifests)."""
    return {f.name: sha256_file(f) for f in files}


def weights_sha256(model: Path) -> str:
    """One hex sha256 over a model directory's safetensors files, names and bytes in name order: a key that changes
    when any weight file does."""
    h = hashlib.sha256()
    for f in sorted(model.glob("*.safetensors")):
        h.update(f.name.encode())
        _update(h, f)
    return h.hexdigest()


def problem_id(text: str) -> str:
    """The id of a problem known only by its exact text (`p-` and 12 hex digits), so that imports of it meet again."""
    return "p-" + hashlib.sha256(text.encode()).hexdigest()[:12]
