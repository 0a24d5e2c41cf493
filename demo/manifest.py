"""Manifests of the committed demo models: what was trained, how, and the sha256 of the weights."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reasoning.digests import sha256_files

MANIFEST = "manifest.json"


def write_manifest(model_dir: Path, info: dict[str, Any]) -> dict[str, Any]:
    """Write `manifest.json` with `info` plus the sha256 of every safetensors file in `model_dir`."""
    weights = sha256_files(sorted(model_dir.glob("*.safetensors")))
    if not weights:
        raise ValueError(f"{model_dir} has no safetensors weights to record")
    manifest = {**info, "weights_sha256": weights}
    (model_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def verify_manifest(model_dir: Path) -> dict[str, Any]:
    """The manifest, after checking each recorded weight file's sha256; ValueError names the first mismatch."""
    try:
        manifest = json.loads((model_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read {model_dir / MANIFEST}: {exc}") from None
    for name, digest in manifest.get("weights_sha256", {}).items():
        if not (model_dir / name).is_file() or sha256_files([model_dir / name])[name] != digest:
            raise ValueError(f"{model_dir / name} does not match the sha256 in its manifest")
    return manifest
