"""Progress reporting: a callback type and a plain stderr bar for the CLI."""
from __future__ import annotations

import sys
import time
from collections.abc import Callable

ProgressFn = Callable[[str, int, int], None]
"""``progress(stage, done, total)``; total may be 0 when unknown."""


def silent(stage: str, done: int, total: int) -> None:  # noqa: ARG001
    return None


class SilentProgress:
    """:func:`silent` with the ``close`` the CLI's reporters have."""

    def __call__(self, stage: str, done: int, total: int) -> None:  # noqa: ARG002
        return None

    def close(self) -> None:
        return None


class LineProgress:
    """Plain, whole lines for a log, CI or a notebook (where a redrawn bar is garbage): one when
    a stage starts, then one every ``every_s`` seconds or each tenth of the stage, and one when
    it ends."""

    def __init__(self, stream=None, every_s: float = 10.0):
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self._stage = None
        self._t0 = self._last = 0.0
        self._tenth = -1
        self._ended = False

    def _line(self, text: str) -> None:
        self.stream.write(f"speakerid: {text}\n")
        self.stream.flush()

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if stage != self._stage:
            self._stage, self._t0, self._last, self._tenth, self._ended = stage, now, now, -1, False
            self._line(f"{stage}: started" + (f" (0/{total})" if total else ""))
        if self._ended:
            return
        el = now - self._t0
        if total and done >= total:
            self._ended = True
            self._line(f"{stage}: done {done}/{total} in {el:.1f} s")
            return
        tenth = int(10 * done / total) if total else -1
        if now - self._last >= self.every_s or tenth > self._tenth:
            self._tenth = max(self._tenth, tenth)
            self._last = now
            if total:
                frac = done / total
                eta = el / frac - el if frac > 0 else float("nan")
                self._line(f"{stage}: {done}/{total} ({100 * frac:.0f} %), {el:.1f} s, eta {eta:.0f} s")
            else:
                self._line(f"{stage}: {done}, {el:.1f} s")

    def close(self) -> None:
        self._stage = None


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
