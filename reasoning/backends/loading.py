"""Checking and loading local model directories: one-line errors, safetensors only, remote code only on request."""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from transformers.utils import logging as hf_logging

log = logging.getLogger(__name__)
# transformers draws a "Loading weights" bar per model on stderr, which would bury the one-line errors of the
# command line; the bar is shown only when transformers' own verbosity asks for detail (app.py --debug).
if os.environ.get("TRANSFORMERS_VERBOSITY", "error") not in ("debug", "info"):
    hf_logging.disable_progress_bar()

DTYPES = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16,
          "float32": torch.float32, "fp32": torch.float32}
UNSAFE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt")
CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")


class ModelLoadError(ValueError):
    """A model directory that cannot be used; the message is one line naming the directory and the problem."""

    def __init__(self, message: str):
        super().__init__(one_line(message))


def one_line(text: Any, limit: int = 300) -> str:
    """Collapse an exception text to one short line."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def device_and_dtype(device: str | torch.device | None = None, dtype: str | torch.dtype | None = None):
    """CUDA + bfloat16 when available, else CPU + float32; explicit arguments win."""
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dtype is None or dtype == "auto":
        return dev, torch.bfloat16 if dev.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dev, dtype
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {sorted(DTYPES)}")
    return dev, DTYPES[dtype]


def kv_cache_budget_mb(requested: float | None, device: torch.device, cpu_default: float, gpu_share: float) -> float:
    """The size of a KV cache in MB: `requested` when given, else `cpu_default` off CUDA and `gpu_share` of the
    GPU's memory on CUDA (a fixed few hundred MB holds the prefixes of a handful of nodes of a 7B model: 57 KB of
    KV a token)."""
    if requested is not None:
        return float(requested)
    if device.type == "cuda":
        return round(gpu_share * torch.cuda.get_device_properties(device).total_memory / 2**20)
    return float(cpu_default)


# Torch's CPU threads. Its default, one per core, loses to one thread on a small model: each op is too small to share
# out, so the threads wait on each other and on whatever else runs. On a 2-core machine under load 6-11,
# MCTS@64 on "Use 4 7 8 8 to make 24." with the demo models (6.7M parameters) took 7.9-27.8 s on one thread and
# 44.9-133.5 s on two; a decode step of a 3.4M / 25.6M / 85.6M / 303M GPT-2 took 3.3x / 0.8x / 5.0x / 1.8x as long on
# two threads as on one. A model under SMALL_CPU_MODEL parameters on the CPU gets one thread; a larger one torch's
# default (a busy machine may still prefer fewer: `--threads`).
SMALL_CPU_MODEL = 50_000_000
TORCH_DEFAULT_THREADS = torch.get_num_threads()


def choose_threads(models: Iterable[Any], requested: int | None = None) -> tuple[int, str]:
    """The torch CPU thread count for these loaded generators and scorers, and why in a few words: `requested` when
    given, else what OMP_NUM_THREADS set, else one thread when every model on the CPU is small, else torch's default.
    Servers and models on an accelerator do not count."""
    if requested is not None:
        return requested, "--threads"
    if os.environ.get("OMP_NUM_THREADS"):
        return TORCH_DEFAULT_THREADS, "OMP_NUM_THREADS"
    sizes = [sum(p.numel() for p in m.model.parameters()) for m in models
             if isinstance(getattr(m, "model", None), torch.nn.Module) and torch.device(m.device).type == "cpu"]
    if not sizes:
        return TORCH_DEFAULT_THREADS, "no model runs on the CPU"
    if max(sizes) < SMALL_CPU_MODEL:
        return 1, f"the fastest for models of {max(sizes) / 1e6:.1f}M parameters on the CPU"
    return TORCH_DEFAULT_THREADS, f"torch's default for a {max(sizes) / 1e6:.0f}M-parameter model on the CPU"


def set_threads(n: int) -> None:
    torch.set_num_threads(n)


def read_config(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """The directory and its parsed config.json, or a ModelLoadError for a missing directory or a broken config."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise ModelLoadError(f"model directory {path} does not exist")
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise ModelLoadError(f"{path} has no config.json (not a transformers model directory)")
    try:
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"cannot read {cfg_file}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{cfg_file} is not valid JSON: line {exc.lineno}: {exc.msg}") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model_type", ""), str):
        raise ModelLoadError(f"{cfg_file} is not a model config (expected an object with a 'model_type')")
    return path, cfg


def weight_files(path: Path) -> list[Path]:
    """The directory's safetensors files; refuses pickled weights (.bin/.pt) with a clear message."""
    files = sorted(path.glob("*.safetensors"))
    files = [f for f in files if f.name != "value_head.safetensors"] or files
    if not files:
        unsafe = sorted(p.name for pattern in UNSAFE_WEIGHTS for p in path.glob(pattern))
        found = f"found only {', '.join(unsafe)}, " if unsafe else ""
        raise ModelLoadError(f"{path} has no safetensors weights ({found}safetensors only are loaded)")
    return files


def needs_remote_code(cfg: dict[str, Any]) -> bool:
    """True when the config's own architecture is not a transformers class and it ships code (auto_map)."""
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    archs = cfg.get("architectures") or []
    known_arch = not archs or any(hasattr(transformers, a) for a in archs)
    return "auto_map" in cfg and (cfg.get("model_type") not in CONFIG_MAPPING_NAMES or not known_arch)


def check_remote_code(path: Path, cfg: dict[str, Any], trust_remote_code: bool) -> None:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    if needs_remote_code(cfg) and not trust_remote_code:
        raise ModelLoadError(f"{path} needs its own model code; load it with trust_remote_code=True if you trust it")
    if cfg.get("model_type") not in CONFIG_MAPPING_NAMES and "auto_map" not in cfg:
        raise ModelLoadError(f"{path}: unknown model_type {cfg.get('model_type')!r} for this transformers version")


def check_causal_lm(path: Path, cfg: dict[str, Any]) -> None:
    """Refuse a config that does not describe a causal language model."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    archs = cfg.get("architectures") or []
    if archs:
        ok = any(a.endswith(CAUSAL_SUFFIXES) or a in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values() for a in archs)
        ok = ok or "AutoModelForCausalLM" in (cfg.get("auto_map") or {})
    else:
        ok = cfg.get("model_type") in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    if not ok:
        what = ", ".join(archs) or cfg.get("model_type")
        raise ModelLoadError(f"{path} is not a causal language model (config says {what})")


def load_tokenizer(path: Path, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=trust_remote_code)
    except Exception as exc:  # transformers raises many types for a broken tokenizer
        raise ModelLoadError(f"cannot load the tokenizer of {path}: {one_line(exc)}") from None


def load_model(auto_class, path: Path, device: torch.device, dtype: torch.dtype, trust_remote_code: bool):
    """Load weights with `auto_class` from safetensors on this machine only, in eval mode on `device`."""
    try:
        model = auto_class.from_pretrained(
            path, dtype=dtype, use_safetensors=True, local_files_only=True, trust_remote_code=trust_remote_code,
        )
    except Exception as exc:  # corrupted weights, shape mismatches, missing code
        raise ModelLoadError(f"cannot load the model in {path}: {one_line(exc)}") from None
    return model.to(device).eval()


def right_padded(rows: list[list[int]], pad_id: int, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-id rows as one right-padded batch: (ids, attention mask), padding with `pad_id` and mask 0."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids.to(device), mask.to(device)


def max_positions(config) -> int | None:
    """The model's context length from its config, if it states one."""
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def single_token_id(tokenizer, text: str) -> int | None:
    """The id of `text` when the tokenizer writes it as exactly one known token, else None."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) != 1 or (tokenizer.unk_token_id is not None and ids[0] == tokenizer.unk_token_id):
        return None
    return ids[0]
