"""`./dev.sh` setup says what it installs before a long install, and nothing once everything is installed.

The script runs for real on a copy of itself and the requirements files; the Python it is given records each call
(to stderr, so the order of its lines and the script's own is the order things happened) instead of installing."""
from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECORDING_PYTHON = """#!/bin/sh
# records the call; `-m venv DIR` makes DIR/bin/python a copy of this script, as a real venv would hold a python
echo "python $*" >&2
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then mkdir -p "$3/bin" && cp "$0" "$3/bin/python"; fi
"""


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    for name in ("dev.sh", "requirements.txt", "requirements-dev.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    python = tmp_path / "recording-python"
    python.write_text(RECORDING_PYTHON)
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    return tmp_path


def run(checkout: Path, *args: str) -> list[str]:
    done = subprocess.run(["bash", str(checkout / "dev.sh"), *args], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PYTHON": str(checkout / "recording-python")})
    assert done.returncode == 0, done.stderr
    return done.stderr.splitlines()


def test_setup_says_what_it_installs_before_installing_and_nothing_when_installed(checkout):
    first = run(checkout, "app", "--help")
    news = [line for line in first if line.startswith("dev.sh: ")]
    assert len(news) == 1 and "installing requirements.txt" in news[0] and "minutes" in news[0], first
    installs = [i for i, line in enumerate(first) if "pip install" in line]
    assert installs and first.index(news[0]) < installs[0], "the line comes before the install, not after"
    assert all("--quiet" in first[i] for i in installs)
    assert first[-1] == "python app.py --help"

    assert run(checkout, "app", "--help") == ["python app.py --help"]  # installed: not a word of setup

    with (checkout / "requirements.txt").open("a") as f:
        f.write("six\n")
    again = [line for line in run(checkout, "app") if line.startswith("dev.sh: ")]
    assert len(again) == 1 and again[0].startswith("dev.sh: updating .venv from requirements.txt"), again
