"""Model backends: a transformers generator and PRM adapters, loaded from local safetensors directories."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..factors import Catalog, load_catalog
from ..http_client import ServerError, is_url
from ..manifest import DEMO_GENERATOR_DIR, DEMO_PRM_DIR, REPO_ROOT
from .generator import DEFAULT_KV_CACHE_MB, GPU_KV_CACHE_SHARE, TransformersGenerator, top_p_filter
from .genprm import GenerativePRM
from .loading import (
    ModelLoadError,
    check_causal_lm,
    check_remote_code,
    device_and_dtype,
    kv_cache_budget_mb,
    load_model,
    load_tokenizer,
    read_config,
    weight_files,
)
from .prm import ADAPTERS, PRMAdapter
from .prm import DEFAULT_KV_CACHE_MB as DEFAULT_PRM_KV_CACHE_MB

if TYPE_CHECKING:
    from .openai_server import ServerGenerator, ServerPRM

ADAPTERS.setdefault(GenerativePRM.adapter, GenerativePRM)  # a causal LM that critiques, then gives a verdict

log = logging.getLogger(__name__)

PRM_CONFIG = "prm_config.json"
# How an architecture name (its suffix) tells which adapter reads a PRM without a prm_config.json.
ARCHITECTURE_ADAPTERS = {"ForTokenClassification": "token-classification", "ForProcessRewardModel": "qwen-prm"}

__all__ = [
    "ADAPTERS", "ARCHITECTURE_ADAPTERS", "DEFAULT_KV_CACHE_MB", "DEFAULT_PRM_KV_CACHE_MB", "DEMO_GENERATOR_DIR",
    "DEMO_PRM_DIR", "REPO_ROOT", "ModelLoadError",
    "PRMAdapter", "ServerError", "TransformersGenerator", "device_and_dtype", "is_url", "load_generator", "load_scorer",
    "top_p_filter",
]


def load_generator(
    path: str | Path,
    *,
    catalog: Catalog | str | Path | None = None,
    device=None,
    dtype=None,
    trust_remote_code: bool = False,
    kv_reuse: bool = True,
    max_step_tokens: int = 64,
    top_p: float = 1.0,
    prompt_mode: str | None = None,
    kv_cache_mb: float | None = None,
    prior_from_decode: bool = True,
) -> TransformersGenerator | ServerGenerator:
    """A Generator over any local causal-LM directory (safetensors only; remote code only when trusted), or over
    an OpenAI-compatible server when `path` is a URL (`http://127.0.0.1:8000/v1`; several, comma-separated,
    share the work; the server keeps its own KV cache, so the cache options do not apply).

    `kv_cache_mb` bounds the LRU cache of node prefixes' KV (0: none; None: DEFAULT_KV_CACHE_MB on a CPU, a tenth of
    the GPU's memory on CUDA); `prior_from_decode` reads a new child's
    factor prior from the decode that wrote its step instead of a separate pass. On a GPU, vLLM behind
    `engine serve` is the fast path (a URL here); this backend keeps one decode loop for the CPU, the tests and the
    models vLLM cannot serve."""
    if is_url(path):
        from .openai_server import ServerGenerator

        catalog = catalog if isinstance(catalog, Catalog) else load_catalog(catalog)
        return ServerGenerator(str(path), catalog=catalog, max_step_tokens=max_step_tokens, top_p=top_p,
                               prompt_mode=prompt_mode)
    from transformers import AutoModelForCausalLM

    path, cfg = read_config(path)
    check_causal_lm(path, cfg)
    check_remote_code(path, cfg, trust_remote_code)
    weights = weight_files(path)
    dev, dt = device_and_dtype(device, dtype)
    tokenizer = load_tokenizer(path, trust_remote_code)
    model = load_model(AutoModelForCausalLM, path, dev, dt, trust_remote_code)
    catalog = catalog if isinstance(catalog, Catalog) else load_catalog(catalog)
    generator = TransformersGenerator(
        model, tokenizer, path=path, catalog=catalog, weights=weights, kv_reuse=kv_reuse,
        max_step_tokens=max_step_tokens, top_p=top_p, prompt_mode=prompt_mode,
        kv_cache_mb=kv_cache_budget_mb(kv_cache_mb, dev, DEFAULT_KV_CACHE_MB, GPU_KV_CACHE_SHARE),
        prior_from_decode=prior_from_decode,
    )
    log.info("generator %s loaded on %s (%s), prompt mode %s", path, dev, dt, generator.format.mode)
    return generator


def load_scorer(
    path: str | Path, *, adapter: str | None = None, device=None, dtype=None, trust_remote_code: bool = False,
    batch_tokens: int | None = None, kv_cache_mb: float | None = None,
) -> PRMAdapter | ServerPRM:
    """A Scorer over a local PRM directory; `adapter=None` reads prm_config.json or infers it from config.json.
    `batch_tokens` caps the padded tokens of one PRM forward pass (None: 1024 on a CPU, DEFAULT_BATCH_TOKENS on
    an accelerator); `kv_cache_mb` bounds the LRU cache of scored paths' KV, so that a new node's path is scored
    by feeding only its own step on top of its parent's (0: whole paths every time; a model that cannot reuse a
    prefix scores whole paths anyway; None: DEFAULT_PRM_KV_CACHE_MB on a CPU, a twentieth of the GPU's memory on
    CUDA). A URL (`http://127.0.0.1:8001/v1`) scores on a
    vLLM pooling server instead (batched by the same token cap per request)."""
    if is_url(path):
        from .openai_server import ServerPRM

        if batch_tokens is None:
            return ServerPRM(str(path), adapter=adapter)
        return ServerPRM(str(path), adapter=adapter, batch_tokens=batch_tokens)
    path, cfg = read_config(path)
    options = read_prm_config(path)
    named = options.pop("adapter", None)
    if adapter is not None and named is not None and adapter != named:
        log.warning("%s: adapter %r requested, %s says %r; ignoring its options", path, adapter, PRM_CONFIG, named)
        options = {}
    name = adapter or named or infer_adapter(path, cfg)
    if name not in ADAPTERS:
        raise ModelLoadError(f"unknown PRM adapter {name!r} for {path}; choose one of {sorted(ADAPTERS)}")
    scorer = ADAPTERS[name](path, device=device, dtype=dtype, trust_remote_code=trust_remote_code,
                            batch_tokens=batch_tokens, kv_cache_mb=kv_cache_mb, **options)
    log.info("PRM %s loaded with adapter %s on %s", path, name, scorer.device)
    return scorer


def read_prm_config(path: Path) -> dict[str, Any]:
    """The adapter name and options in the directory's prm_config.json, or {} when it has none."""
    file = path / PRM_CONFIG
    if not file.is_file():
        return {}
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"cannot read {file}: {exc}") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{file} must be a JSON object such as {{\"adapter\": \"math-shepherd\"}}")
    return dict(data)


def infer_adapter(path: Path, cfg: dict[str, Any]) -> str:
    """The adapter implied by the architecture name, or by a value head file beside the model."""
    for arch in cfg.get("architectures") or []:
        for suffix, name in ARCHITECTURE_ADAPTERS.items():
            if arch.endswith(suffix):
                return name
    if (path / ADAPTERS["value-head"].options["head_file"]).is_file():
        return "value-head"
    raise ModelLoadError(
        f"cannot tell which PRM adapter reads {path}: add {PRM_CONFIG} with an 'adapter' "
        f"({', '.join(sorted(ADAPTERS))}) or pass adapter="
    )

