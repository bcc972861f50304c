"""The 25 fps model timeline of a source video, and the maps between it and the source's frames.

Every rate the source has (24, 29.97, 30, 50, 60 fps, variable) maps by timestamps, so results are
reported in the source's own frame numbers and seconds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import EmptyMediaError
from ..timebase import VIDEO_FPS

@dataclass
class Timeline:
    """The 25 fps model timeline of a source video, and the maps between the two.

    ``source_times[j]``: time (s from the first frame) of source frame ``j``.
    ``model_to_source[k]``: the source frame shown at model time ``k / 25`` s (nearest in time).
    """

    source_times: np.ndarray
    model_to_source: np.ndarray
    fps: float = VIDEO_FPS

    @classmethod
    def from_times(cls, source_times: np.ndarray, fps: float = VIDEO_FPS) -> Timeline:
        t = np.asarray(source_times, dtype=np.float64)
        if t.size == 0:
            raise EmptyMediaError("video has no frames")
        if t.size > 1 and np.any(np.diff(t) < 0):
            raise ValueError("source_times must be non-decreasing")
        # the last frame lasts as long as the typical frame before it
        last_dur = float(np.median(np.diff(t))) if t.size > 1 else 1.0 / fps
        end = t[-1] + last_dur
        n_model = max(1, int(np.floor(end * fps + 1e-6)))
        mt = np.arange(n_model) / fps
        # nearest source frame by time (ties → the earlier one)
        right = np.clip(np.searchsorted(t, mt, side="left"), 0, t.size - 1)
        left = np.clip(right - 1, 0, t.size - 1)
        pick_left = np.abs(mt - t[left]) <= np.abs(t[right] - mt)
        m2s = np.where(pick_left, left, right).astype(np.int64)
        return cls(source_times=t, model_to_source=m2s, fps=fps)

    @property
    def num_model_frames(self) -> int:
        return int(self.model_to_source.size)

    @property
    def num_source_frames(self) -> int:
        return int(self.source_times.size)

    @property
    def source_fps(self) -> float:
        if self.source_times.size < 2:
            return self.fps
        return float((self.source_times.size - 1) / (self.source_times[-1] - self.source_times[0]))

    def source_to_model(self, j: np.ndarray | int) -> np.ndarray:
        """Model frame nearest in time to source frame(s) ``j`` (clipped to the timeline)."""
        t = self.source_times[np.asarray(j, dtype=np.int64)]
        return np.clip(np.round(t * self.fps).astype(np.int64), 0, self.num_model_frames - 1)

    def model_values_to_source(self, values: np.ndarray) -> np.ndarray:
        """Resample per-model-frame values (first axis) onto every source frame (nearest)."""
        return np.asarray(values)[self.source_to_model(np.arange(self.num_source_frames))]
