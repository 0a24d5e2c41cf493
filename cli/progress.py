"""Progress of long commands on stderr: tqdm's bar on a terminal, else one plain line per step (a log file or a pipe
keeps every line, where a bar's carriage returns would leave one long line written at the end)."""
from __future__ import annotations

import sys
import time
from typing import Any, TextIO


def progress(total: int, desc: str, unit: str, *, quiet: bool = False, every: float = 0.0,
             stream: TextIO | None = None) -> Any:
    """A progress counter with tqdm's `update`, `set_postfix`, `total` and `close`: a bar on a terminal, else
    `LineProgress` printing at most one line every `every` seconds (0: a line per update; the last always)."""
    stream = stream or sys.stderr
    if not quiet and stream.isatty():
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, file=stream)
    return LineProgress(total, desc, unit, quiet=quiet, every=every, stream=stream)


class LineProgress:
    """`desc: 3/10 problems (30%), 12.1 s/problem, ETA 1m25s, solved=2/3`, one line per update."""

    def __init__(self, total: int, desc: str, unit: str, *, quiet: bool = False, every: float = 0.0,
                 stream: TextIO | None = None):
        self.total, self.desc, self.unit, self.quiet, self.every = total, desc, unit, quiet, every
        self.stream = stream or sys.stderr
        self.n, self.postfix, self.start, self.shown = 0, "", time.monotonic(), float("-inf")
        self.pending = False  # counted but not printed yet

    def update(self, n: int = 1) -> None:
        self.n += n
        self.pending = self.pending or n > 0
        if self.pending and (self.n >= self.total or time.monotonic() - self.shown >= self.every):
            self._show()

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        if self.pending:  # the last count was not printed (a rate-limited counter): say where it ended
            self._show()

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        parts = [f"{self.desc}: {self.n}/{self.total} {self.unit}s"
                 + (f" ({100 * self.n / self.total:.0f}%)" if self.total else "")]
        if self.n:
            parts.append(f"{elapsed / self.n:.1f} s/{self.unit}")
            if self.total > self.n:
                parts.append(f"ETA {clock(elapsed / self.n * (self.total - self.n))}")
        if self.postfix:
            parts.append(self.postfix)
        return ", ".join(parts)

    def _show(self) -> None:
        self.shown, self.pending = time.monotonic(), False
        if not self.quiet:
            print(self.line(), file=self.stream, flush=True)


def clock(seconds: float) -> str:
    """12s, 3m05s, 2h04m."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
