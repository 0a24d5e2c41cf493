"""`--vllm`: the generator and the PRM given as local directories, each run on a vLLM engine this process starts and
stops itself, so that one command (`serve --vllm`, `solve --vllm`, ...) replaces `engine serve` twice plus URLs.

The two servers are started at once on free loopback ports (prefix caching on, as `engine serve` does). On a CPU
machine they split its cores: the generator takes the first half, the PRM the rest. With `$REASONING_ENGINE_PYTHON`
naming an interpreter that has a GPU build of vLLM, they share the GPU instead (each a share of its memory, the
weights' own dtype). The engines stop when `stop()` is called, on normal exit, on Ctrl-C and on SIGTERM.
"""
from __future__ import annotations

import atexit
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from reasoning.http_client import free_port

from .env import external_engine_python
from .server import EngineServer, ServerSpec, start_all

MAX_MODEL_LEN = 4096  # tokens of context at most; a step-by-step solution of a math problem fits
GPU_MEMORY_SHARE = {"generator": "0.5", "prm": "0.35"}  # of one GPU's memory; the rest is torch's and the OS's


@dataclass
class LocalEngines:
    """The running servers for one command; `urls` in the order generator, PRM."""

    servers: list[EngineServer] = field(default_factory=list)

    @property
    def generator_url(self) -> str:
        return self.servers[0].url

    @property
    def prm_url(self) -> str:
        return self.servers[1].url

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def core_split(total: int) -> tuple[str, str]:
    """VLLM_CPU_OMP_THREADS_BIND lists for the generator and the PRM: the first half of the cores and the rest (on
    one core both share it)."""
    if total <= 1:
        return "0", "0"
    half = total // 2
    gen = "0" if half == 1 else f"0-{half - 1}"
    prm = str(half) if total - half == 1 else f"{half}-{total - 1}"
    return gen, prm


def context_length(*models: Path, cap: int = MAX_MODEL_LEN) -> int:
    """The context the servers are started with: the models' own (config.json's `max_position_embeddings`, or GPT-2's
    `n_positions`; the smaller of the two models'), at most `cap` (a server reserves KV memory for it)."""
    lengths = []
    for model in models:
        try:
            config = json.loads((model / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        found = config.get("max_position_embeddings") or config.get("n_positions")
        if isinstance(found, int) and found > 0:
            lengths.append(found)
    return min([cap, *lengths])


def specs_for(generator: Path, prm: Path, *, max_model_len: int, gpu: bool,
              cores: int | None = None) -> tuple[ServerSpec, ServerSpec]:
    """The two servers' settings: CPU engines pinned to their own cores, or GPU engines sharing one GPU."""
    for what, path in (("--generator", generator), ("--prm", prm)):
        if not (path / "config.json").is_file():
            raise ValueError(f"--vllm serves local model directories: {what} {path} has no config.json")
    if gpu:
        return tuple(  # type: ignore[return-value]
            ServerSpec(model=path.resolve(), port=free_port(), pooling=pooling, dtype="auto", kv_cache_bytes=None,
                       max_model_len=max_model_len, extra_args=("--gpu-memory-utilization", GPU_MEMORY_SHARE[role]))
            for role, path, pooling in (("generator", generator, False), ("prm", prm, True)))
    gen_cores, prm_cores = core_split(cores or os.cpu_count() or 1)
    return (ServerSpec(model=generator.resolve(), port=free_port(), cores=gen_cores, max_model_len=max_model_len),
            ServerSpec(model=prm.resolve(), port=free_port(), pooling=True, cores=prm_cores,
                       max_model_len=max_model_len))


def start_local_engines(generator: Path, prm: Path, *, max_model_len: int | None = None, log_dir: Path | None = None, progress: Callable[[str], None] | None = None) -> LocalEngines:
    """Start vLLM for `generator` and `prm` (a pooling server) and wait until both answer; on any failure both are
    stopped and the error is raised in one line. Registered to stop at exit and on SIGTERM."""
    gpu = external_engine_python() is not None
    specs = specs_for(generator, prm, max_model_len=max_model_len or context_length(generator, prm), gpu=gpu)
    logs = [log_dir / f"vllm-{role}.log" for role in ("generator", "prm")] if log_dir else [None, None]
    engines = LocalEngines([EngineServer(spec, log_file=log) for spec, log in zip(specs, logs, strict=True)])
    if progress is not None:
        progress(f"engine: starting vLLM for the generator ({generator}) and the PRM ({prm}) at once")
    try:
        start_all(engines.servers)
    except BaseException:
        engines.stop()
        raise
    atexit.register(engines.stop)
    _stop_on_sigterm()
    return engines


def _stop_on_sigterm() -> None:
    """SIGTERM ends the process through SystemExit (so atexit stops the engines, which run in their own process
    groups and would otherwise outlive it); only from the main thread, and only when nobody else handles it."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
