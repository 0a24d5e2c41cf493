#!/usr/bin/env bash
# One entry point for a fresh machine: `./dev.sh app` sets up and starts the UI on the demo models,
# `./dev.sh test` sets up and runs the whole test suite (ruff, mypy, then unit, model, database and browser tests);
# `./dev.sh test --fast` runs the unit and SQLite tests only (tests/conftest.py), under a minute.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}

say() { echo "dev.sh: $*" >&2; }  # setup news goes to stderr, one line before each long step

venv() {  # create .venv and install a requirements file, skipping pip when nothing changed (and saying nothing)
  local req=$1 hash stamp
  hash=$(cat requirements*.txt | sha256sum | cut -c1-16)
  stamp=".venv/.installed-$hash-$req"
  [ -f "$stamp" ] && [ -x .venv/bin/python ] && return 0
  if ls .venv/.installed-"$hash"-* >/dev/null 2>&1; then
    if [ "$req" = requirements-dev.txt ]; then
      say "installing $req into .venv (what tests need on top of the app: pytest, playwright, trl...;" \
          "a minute or two, quiet until done)"
    else
      say "checking $req in .venv (the test setup installed it already: a few seconds)"
    fi
  elif ls .venv/.installed-* >/dev/null 2>&1; then
    say "updating .venv from $req (the requirements changed; usually a minute or two, quiet until done)"
  else
    say "first run: installing $req into .venv (torch, transformers, gradio...: about 2 GB, 3-10 minutes" \
        "depending on the network; quiet until done)"
  fi
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r "$req"
  touch "$stamp"
}

browser() {  # Debian's Chromium for the browser tests (Playwright drives it; it never downloads a browser)
  [ -x /usr/bin/chromium ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing Debian's chromium for the browser tests (apt-get, about 300 MB, 1-3 minutes)"
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
