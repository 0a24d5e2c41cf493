"""`engine install` (make the vLLM environment) and `engine serve` (a vLLM server for a local model directory)."""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from engine.env import ensure_engine_env
from engine.server import EngineServer, ServerSpec, cores_for


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="engine_command", metavar="ENGINE_COMMAND", required=True)
    sub.add_parser("install", help="make the vLLM environment now (otherwise made on first use)")
    s = sub.add_parser("serve", help="serve a local model directory with vLLM (OpenAI-compatible API)")
    s.add_argument("--model", required=True, metavar="DIR", help="local model directory (safetensors)")
    s.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--pooling", action="store_true", help="serve a PRM on the pooling endpoint (--runner pooling)")
    s.add_argument("--threads", type=int, default=1, help="CPU threads for the engine (default 1)")
    s.add_argument("--first-core", type=int, default=0,
                   help="first core the threads are pinned to (give two servers different cores)")
    s.add_argument("--max-model-len", type=int, default=320, help="context length served (default 320, the demo's)")
    s.add_argument("--kv-cache-bytes", default="64M", help="KV cache memory (default 64M)")
    s.add_argument("--dtype", default="float32", help="weights dtype (default float32, as the CPU backend)")
    s.add_argument("--name", help="served model name (default: the directory name)")
    s.add_argument("--log", metavar="FILE", help="write the server's own output to FILE")


def run_engine(args: argparse.Namespace) -> int:
    if args.engine_command == "install":
        print(ensure_engine_env())
        return 0
    if not 1 <= args.port <= 65535:
        raise ValueError(f"--port must be between 1 and 65535, got {args.port}")
    if args.max_model_len < 1:
        raise ValueError(f"--max-model-len must be at least 1 token, got {args.max_model_len}")
    model = Path(args.model).expanduser()
    if not (model / "config.json").is_file():
        raise ValueError(f"--model {model} is not a model directory (no config.json)")
    spec = ServerSpec(model=model.resolve(), port=args.port, host=args.host, pooling=args.pooling,
                      cores=cores_for(args.threads, args.first_core), max_model_len=args.max_model_len,
                      kv_cache_bytes=args.kv_cache_bytes, dtype=args.dtype, served_name=args.name)
    server = EngineServer(spec, log_file=Path(args.log) if args.log else None)
    stop = threading.Event()

    def on_signal(signum, _frame):
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
        print(server.url, flush=True)
        while not stop.is_set() and server.proc is not None and server.proc.poll() is None:
            stop.wait(1.0)
        if not stop.is_set():
            print(f"engine: the vLLM server for {model} exited", file=sys.stderr)
            return 1
        print("engine: stopping", file=sys.stderr, flush=True)
        return 0
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
