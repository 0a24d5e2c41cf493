"""A model directory's `manifest.json`: what the project records beside a model's weights, and the search settings
the model recommends (`recommended_search`), which the command line, the UI and the API all start from.

A manifest is optional; a model without one takes the declaration's defaults (`reasoning.search.config`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .search.config import SearchConfig, recommended

MANIFEST = "manifest.json"


def read_manifest(model_dir: str | Path | None) -> dict[str, Any]:
    """The manifest of a local model directory, {} when there is none (or the model is a server URL)."""
    if not model_dir or "://" in str(model_dir):
        return {}
    path = Path(model_dir) / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a JSON object")
    return data


def recommended_search(model_dir: str | Path | None, algorithm: str) -> dict[str, Any]:
    """The settings `model_dir`'s manifest recommends for `algorithm` (checked against the declaration), or {}."""
    block = read_manifest(model_dir).get("recommended_search")
    settings = recommended(block, algorithm)
    if settings:  # refuse a bad block when the model is loaded, not deep inside a search
        SearchConfig.from_values({**settings, "algorithm": algorithm})
    return settings


def recommended_by_algorithm(model_dir: str | Path | None) -> dict[str, dict[str, Any]]:
    from .search.config import ALGORITHMS

    return {a: s for a in ALGORITHMS if (s := recommended_search(model_dir, a))}


REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_GENERATOR_DIR = REPO_ROOT / "models" / "demo-generator"
DEMO_PRM_DIR = REPO_ROOT / "models" / "demo-prm"
