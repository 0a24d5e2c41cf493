#!/usr/bin/env bash
# One entry point for a fresh machine: `./dev.sh app` sets up and starts the UI on the demo models,
# `./dev.sh test` sets up and runs the whole test suite (ruff, mypy, then unit, model, database and browser tests);
# `./dev.sh test --fast` runs the unit and SQLite tests only (tests/conftest.py), under a minute.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}

venv() {  # create .venv and install a requirements file, skipping pip when nothing changed
  local req=$1 stamp
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  stamp=".venv/.installed-$(cat requirements*.txt | sha256sum | cut -c1-16)-$req"
  if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -r "$req"
    touch "$stamp"
  fi
}

browser() {  # Debian's Chromium for the browser tests (Playwright drives it; it never downloads a browser)
  [ -x /usr/bin/chromium ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "note: /usr/bin/chromium is missing; browser tests will be skipped (apt-get install chromium)" >&2
  fi
}

case "${1:-app}" in
  app)
    venv requirements.txt
    shift || true
    exec .venv/bin/python app.py "$@"
    ;;
  test)
    venv requirements-dev.txt
    browser
    shift || true
    .venv/bin/ruff check .
    .venv/bin/mypy  # reasoning/ and storage/, see [tool.mypy] in pyproject.toml
    export TRL_EXPERIMENTAL_SILENCE=1
    exec .venv/bin/python -m pytest "$@"
    ;;
  *)
    echo "usage: ./dev.sh app [app.py arguments] | ./dev.sh test [--fast] [pytest arguments]" >&2
    exit 2
    ;;
esac
