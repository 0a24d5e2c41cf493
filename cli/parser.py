"""An argparse parser whose errors are one line, as every other error of the command line is."""
from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from reasoning.search.config import as_integer


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse prints its usage block (4-15 lines) before an error; this one prints `error: ...` and a hint to
    `--help` on one line, exit code 2, so a bad choice or value reads like the app's other errors."""

    def error(self, message: str) -> NoReturn:
        first = message.strip().splitlines()[0] if message.strip() else "bad arguments"
        self.exit(2, f"error: {self.prog}: {first} (see {self.prog} --help)\n")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stderr.write(message)
        raise SystemExit(status)


def bounded_int(lo: int, hi: int):
    """An argparse `type` for an integer in [lo, hi]: a value out of range is refused while parsing, in one line."""

    def parse(raw: str) -> int:
        try:  # the search settings' coercion, so the CLI, the UI and the API take and refuse the same values
            return as_integer(raw, "it", lo, hi)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix("it ")) from None

    parse.__name__ = "integer"  # argparse names the type in its message
    return parse
