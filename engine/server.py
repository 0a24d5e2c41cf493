"""A vLLM OpenAI-compatible server for a local model directory, run from the engine environment.

The settings that make the demo models serve on a small CPU machine are the defaults here (`--max-model-len 320`,
`--block-size 32` so prefix caching works on CPU, 64 MB of KV cache, float32 like the transformers backend on CPU).
Each server pins its OpenMP threads to the cores it is given (`VLLM_CPU_OMP_THREADS_BIND`); without that every
engine binds to core 0 and two servers fight over one core.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasoning.digests import weights_sha256

from .env import engine_home, engine_python, ensure_engine_env, external_engine_python

READY_TIMEOUT_S = 900
TAIL_LINES = 50  # output lines kept of a server started without a log file
# Files a served copy of a model keeps beside its converted weights.
MODEL_SIDE_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                    "special_tokens_map.json", "vocab.json", "merges.txt", "prm_config.json")


class EngineServerError(RuntimeError):
    """A server that could not start or stopped early; one line naming the model and the cause."""


@dataclass(frozen=True)
class ServerSpec:
    """How to run one server: the model, the address and the engine settings."""

    model: Path
    port: int
    host: str = "127.0.0.1"
    pooling: bool = False
    cores: str = "0"  # VLLM_CPU_OMP_THREADS_BIND: "0", "1", "0-1", ...
    max_model_len: int = 320
    block_size: int = 32
    kv_cache_bytes: str | None = "64M"  # None: vLLM sizes the cache from --gpu-memory-utilization (a GPU)
    dtype: str = "float32"
    max_logprobs: int = 64
    served_name: str | None = None
    extra_args: tuple[str, ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        return self.served_name or self.model.name

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"


def cores_for(threads: int, first: int = 0) -> str:
    """A core list for VLLM_CPU_OMP_THREADS_BIND: `threads` cores from `first`, within this machine's cores."""
    total = os.cpu_count() or 1
    if threads < 1:
        raise ValueError(f"--threads must be at least 1, got {threads}")
    if not 0 <= first < total:  # it wrapped around once: -1 meant the last core, 9 on 8 cores the first
        raise ValueError(f"--first-core must be between 0 and {total - 1} (this machine's cores), got {first}")
    last = min(total - 1, first + threads - 1)
    return str(first) if last == first else f"{first}-{last}"


# -- the PRM's head name ----------------------------------------------------------------------------------------------
def pooling_model_dir(model: Path, cache: Path | None = None) -> Path:
    """The directory vLLM's pooling runner can load for `model`.

    vLLM reads a token-classification head from `score.*`; the project's PRMs (trained with transformers) name it
    `classifier.*`. Rather than change the committed model, a converted copy is written once to a cache folder keyed
    by the weights' sha256 (so a retrained model gets a new copy) and served from there.
    """
    from reasoning.backends.convert import copy_renamed, has_tensor_prefix  # torch: only when a PRM is served

    files = sorted(model.glob("*.safetensors"))
    if not files:
        raise EngineServerError(f"{model} has no safetensors weights")
    if not has_tensor_prefix(files, "classifier."):
        return model
    target = (cache or engine_home() / "served-models") / f"{model.name}-{weights_sha256(model)[:16]}"
    if (target / ".complete").is_file():
        return target
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    copy_renamed(files, tmp, _head_name)
    for name in MODEL_SIDE_FILES:
        if (model / name).is_file():
            shutil.copy2(model / name, tmp / name)
    (tmp / ".complete").write_text(json.dumps({"source": str(model)}), encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    tmp.replace(target)
    return target


def _head_name(key: str) -> str:
    return "score." + key.removeprefix("classifier.") if key.startswith("classifier.") else key


# -- the process ------------------------------------------------------------------------------------------------------
def server_command(spec: ServerSpec, python: Path, model_dir: Path) -> list[str]:
    cmd = [
        str(python), "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model_dir), "--served-model-name", spec.name,
        "--host", spec.host, "--port", str(spec.port),
        "--dtype", spec.dtype, "--max-model-len", str(spec.max_model_len),
        "--block-size", str(spec.block_size),
        *(["--kv-cache-memory-bytes", spec.kv_cache_bytes] if spec.kv_cache_bytes else []),
        "--enable-prefix-caching", "--max-logprobs", str(spec.max_logprobs),
        "--disable-log-stats", "--uvicorn-log-level", "warning",
    ]
    if spec.pooling:
        cmd += ["--runner", "pooling"]
        tag = step_tag_id(model_dir)
        if tag is not None and not any(a.startswith("--pooler-config") for a in spec.extra_args):
            cmd += ["--pooler-config", json.dumps({"step_tag_id": tag})]
    return cmd + list(spec.extra_args)


def step_tag_id(model_dir: Path) -> int | None:
    """For a Qwen2.5-Math-PRM-style model (`*ForProcessRewardModel`), the id of its step separator in its own
    tokenizer (prm_config.json's `separator`, else `<extra_0>`), which vLLM's step pooling reads the scores at; else
    None. vLLM's default for that architecture is 151651, the id in Qwen2.5's vocabulary: a model with another
    tokenizer would get no scores at all (an empty list per input)."""
    def read(name: str) -> Any:
        try:
            return json.loads((model_dir / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    config = read("config.json") or {}
    if not any(str(a).endswith("ForProcessRewardModel") for a in config.get("architectures") or []):
        return None
    separator = (read("prm_config.json") or {}).get("separator") or "<extra_0>"
    tokenizer = read("tokenizer.json") or {}
    for token in tokenizer.get("added_tokens") or []:
        if token.get("content") == separator:
            return int(token["id"])
    vocab = (tokenizer.get("model") or {}).get("vocab")
    if isinstance(vocab, dict) and separator in vocab:
        return int(vocab[separator])
    raise EngineServerError(f"{model_dir}: its tokenizer has no token {separator!r} to read the step scores at")


def server_environment(spec: ServerSpec) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "VLLM_CPU_OMP_THREADS_BIND": spec.cores, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "VLLM_TARGET_DEVICE": "cpu",
    })
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)  # the project's packages must not shadow the engine's transformers
    return env


class EngineServer:
    """One running vLLM server; `stop()` (or leaving the `with` block) ends it and its engine process."""

    def __init__(self, spec: ServerSpec, log_file: Path | None = None):
        self.spec, self.log_file = spec, log_file
        self.proc: subprocess.Popen | None = None
        self._log: Any = None  # the server log file (or PIPE, read into `tail`) while running
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)  # the server's last output lines, without a log file
        self._reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.spec.url

    def start(self, progress: Callable[[str], None] | None = None, timeout: float = READY_TIMEOUT_S) -> EngineServer:
        say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
        if not self.spec.model.is_dir():
            raise EngineServerError(f"model directory {self.spec.model} does not exist")
        python = external_engine_python() or engine_python(ensure_engine_env(say))
        model_dir = pooling_model_dir(self.spec.model) if self.spec.pooling else self.spec.model
        cmd = server_command(self.spec, python, model_dir)
        self._spawn(cmd, server_environment(self.spec))
        say(f"engine: starting vLLM for {self.spec.model} on {self.url} (cores {self.spec.cores}"
            f"{', pooling' if self.spec.pooling else ''}); this takes 1-3 min")
        self.wait_ready(timeout, say)
        return self

    def _spawn(self, cmd: list[str], env: dict[str, str]) -> None:
        """Start the server process, its output going to the log file, or without one into `tail` (its last
        lines, kept so that a server that fails says why)."""
        self._log = open(self.log_file, "ab") if self.log_file else subprocess.PIPE  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        if self.log_file is None:
            self._reader = threading.Thread(target=_keep_tail, args=(self.proc, self.tail), name="engine-log",
                                            daemon=True)
            self._reader.start()

    def wait_ready(self, timeout: float, say: Callable[[str], None]) -> None:
        started = time.monotonic()
        next_note = started + 30
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise EngineServerError(f"vLLM for {self.spec.model} exited with code {self.proc.returncode} before "
                                        f"it was ready{self._log_hint()}")
            if _served(self.url, self.spec.name):
                say(f"engine: ready at {self.url} (model {self.spec.name!r}, {time.monotonic() - started:.0f} s)")
                return
            now = time.monotonic()
            if now - started > timeout:
                self.stop()
                raise EngineServerError(f"vLLM for {self.spec.model} was not ready after {timeout:.0f} s"
                                        f"{self._log_hint()}")
            if now >= next_note:
                say(f"engine: still starting ({now - started:.0f} s)")
                next_note = now + 30
            time.sleep(1.0)

    def _log_hint(self) -> str:
        """The server's last error line (else its last line), from the log file or the kept tail."""
        if self.log_file is None:
            if self._reader is not None:  # the last lines of a process that just exited (its children may keep
                self._reader.join(timeout=2.0)  # the pipe open: then what was read so far)
            lines = [ln for ln in list(self.tail) if ln.strip()]
            where = " (give --log FILE for all of it)"
        elif self.log_file.is_file():
            lines = [ln for ln in self.log_file.read_text(errors="replace").splitlines() if ln.strip()]
            where = f" (log: {self.log_file})"
        else:
            return ""
        errors = [ln for ln in lines if "Error" in ln or "error" in ln]
        last = (errors or lines or [""])[-1].strip()
        return f": {last[:200]}{where}" if last else where

    def stop(self, grace: float = 20.0) -> None:
        """SIGINT to the server's process group (vLLM shuts its engine core down), SIGKILL after `grace` s."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            for sig, wait in ((signal.SIGINT, grace), (signal.SIGKILL, 10.0)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self._log not in (None, subprocess.DEVNULL, subprocess.PIPE):
            self._log.close()
        self._log = None

    def __enter__(self) -> EngineServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _keep_tail(proc: subprocess.Popen, tail: deque[str]) -> None:
    """Read a server's output to its end (it must never block on a full pipe), keeping the last lines."""
    assert proc.stdout is not None
    with proc.stdout:
        for raw in proc.stdout:
            tail.append(raw.decode("utf-8", "replace").rstrip())


def start_all(servers: list[EngineServer]) -> None:
    """Start several servers at once (each takes 1-3 minutes, mostly in its own process); the first failure is
    raised here, in the caller's thread, once every start has returned."""
    errors: list[BaseException] = []

    def start(server: EngineServer) -> None:
        try:
            server.start()
        except BaseException as exc:  # re-raised below, in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _served(url: str, name: str) -> bool:
    """True once the server answers /v1/models with `name` among its models."""
    try:
        with urllib.request.urlopen(url + "/models", timeout=2) as resp:
            data = json.loads(resp.read())
    except (OSError, urllib.error.URLError, ValueError):
        return False
    return any(m.get("id") == name for m in data.get("data", []))
