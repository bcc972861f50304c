"""Progress reporting: a callback type and a plain stderr bar for the CLI."""
from __future__ import annotations

import sys
import time
from collections.abc import Callable

ProgressFn = Callable[[str, int, int], None]
"""``progress(stage, done, total)``; total may be 0 when unknown."""


def silent(stage: str, done: int, total: int) -> None:  # noqa: ARG001
    return None


class StderrProgress:
    """Redraws one line per stage on stderr, at most ~10 times a second."""

    def __init__(self, stream=None, min_interval: float = 0.1):
        self.stream = stream or sys.stderr
        self.min_interval = min_interval
        self._last = 0.0
        self._stage = None
        self._t0 = time.monotonic()

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if stage != self._stage:
            if self._stage is not None:
                self.stream.write("\n")
            self._stage, self._t0 = stage, now
        elif now - self._last < self.min_interval and done != total:
            return
        self._last = now
        el = now - self._t0
        if total:
            frac = min(1.0, done / total)
            bar = "#" * int(frac * 24)
            eta = el / frac - el if frac > 0 else 0.0
            self.stream.write(f"\r{stage:<12} [{bar:<24}] {done}/{total} {el:5.1f}s eta {eta:5.1f}s")
        else:
            self.stream.write(f"\r{stage:<12} {done} {el:5.1f}s")
        self.stream.flush()

    def close(self) -> None:
        if self._stage is not None:
            self.stream.write("\n")
            self.stream.flush()
            self._stage = None
