"""What a sync measurement and a repair give back: plain dataclasses with their JSON.

Times are seconds from the first video frame of the source; frames are the source's own frame
numbers; ``offset_ms = t_audio − t_video`` (negative: the audio leads).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..outputs import write_text
from ..timebase import MS_PER_COL

PathLike = str | os.PathLike

@dataclass
class SyncWindows:
    """Per-window table of the measured track(s). Times are seconds from the first video frame
    of the source; frames are the source's own frame numbers."""

    track_id: np.ndarray
    source_frame: np.ndarray
    """Source frame shown at the window's first model frame."""
    start_s: np.ndarray
    end_s: np.ndarray
    offset_ms: np.ndarray
    """Arg-min of the window's distance curve (10 ms resolution)."""
    confidence: np.ndarray
    """Median − min of the window's distance curve."""
    min_distance: np.ndarray
    weight: np.ndarray
    """Weight in the clip's aggregate (0 = dropped: too little confidence)."""

    def __len__(self) -> int:
        return int(self.start_s.size)

    def to_rows(self) -> list[dict]:
        rows = []
        for i in range(len(self)):
            rows.append({
                "track_id": int(self.track_id[i]), "source_frame": int(self.source_frame[i]),
                "start_s": round(float(self.start_s[i]), 4), "end_s": round(float(self.end_s[i]), 4),
                "offset_ms": float(self.offset_ms[i]), "confidence": round(float(self.confidence[i]), 4),
                "min_distance": round(float(self.min_distance[i]), 4), "weight": round(float(self.weight[i]), 4),
            })
        return rows


@dataclass
class SyncSegment:
    """The clip aggregate over one stretch of time (for drift)."""

    start_s: float
    end_s: float
    offset_ms: float | None
    confidence: float
    num_windows: int

    def to_dict(self) -> dict:
        return {"start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3),
                "offset_ms": None if self.offset_ms is None else round(self.offset_ms, 1),
                "confidence": round(self.confidence, 4), "num_windows": self.num_windows}


@dataclass
class TrackSync:
    """How one face track scored: its own aggregate offset and confidence."""

    track_id: int
    shot: int
    start_s: float
    end_s: float
    num_windows: int
    offset_ms: float | None
    confidence: float
    used: bool = False
    """Its windows make up the result (the speaker of its shot)."""

    def to_dict(self) -> dict:
        return {"track_id": self.track_id, "shot": self.shot, "start_s": round(self.start_s, 3),
                "end_s": round(self.end_s, 3), "num_windows": self.num_windows,
                "offset_ms": None if self.offset_ms is None else round(self.offset_ms, 1),
                "confidence": round(self.confidence, 4), "used": self.used}


@dataclass
class SyncResult:
    """The measured lip-sync offset of one video.

    ``offset_ms``: ``t_audio − t_video`` (negative = audio leads), or ``None`` when the video
    gives no lip-sync evidence (``status`` says why). ``confidence``: median − min of the
    aggregated distance curve. ``candidate_ms``: the aggregated curve's arg-min even when it is
    too weak to report (for diagnosis only). ``shifts_ms``/``curve``: the aggregated curve;
    ``window_curves``: one row per window of ``windows`` (NaN where the shifted audio falls
    outside the file).
    """

    video: str
    status: str
    """"ok", "low_confidence", "no_speech" or "no_face"."""
    message: str
    offset_ms: float | None
    confidence: float
    candidate_ms: float | None
    track_id: int | None
    """The face track measured (with several speakers, the one that contributed most)."""
    track_ids: list[int]
    tracks: list[TrackSync]
    search_ms: float
    step_ms: float
    aggregate: str
    shifts_ms: np.ndarray
    curve: np.ndarray
    windows: SyncWindows
    window_curves: np.ndarray
    segments: list[SyncSegment]
    drift: bool
    drift_range_ms: float
    duration_s: float
    source_fps: float
    model: str
    """Fingerprint of the SyncNet weights used."""
    timings: dict = field(default_factory=dict)
    p_correct: float | None = None
    """Probability that ``offset_ms`` is within ±40 ms of the truth (a source's own offset
    aside), calibrated on shifted clips of held-apart people (:mod:`speakerid.reliability`);
    None without an offset."""
    reliable: bool = False
    """``p_correct`` reaches :data:`~speakerid.reliability.RELIABLE_P`: an answer to act on.
    An offset that is not reliable is a best guess; ``unreliable_because`` says why."""
    unreliable_because: list[str] = field(default_factory=list)
    evidence: dict = field(default_factory=dict)
    """The features ``p_correct`` is computed from (confidence, second_peak, windows, span)."""
    warnings: list[str] = field(default_factory=list)
    """What may make the result wrong beyond the evidence, in words (channels of the audio that
    cancel in a mono mix)."""

    @property
    def ok(self) -> bool:
        return self.offset_ms is not None

    @property
    def at_search_edge(self) -> bool:
        """The offset lies within two steps of the end of the search range: the true offset
        may be beyond it (measure again with a larger ``search_ms``)."""
        return self.offset_ms is not None and abs(self.offset_ms) >= self.search_ms - 2 * self.step_ms

    def describe(self) -> str:
        """One line a person can read: what was found, with the sign spelled out."""
        notes = "".join(f" — WARNING: {w}" for w in self.warnings)
        if self.offset_ms is None:
            return f"{self.video}: no offset ({self.status}): {self.message}{notes}"
        o = self.offset_ms
        if abs(o) < MS_PER_COL / 2:
            rel = "in sync"
        else:
            rel = f"audio {'leads' if o < 0 else 'lags'} the video by {abs(o):.0f} ms"
        trust = ("reliable" if self.reliable else "NOT RELIABLE, a best guess: " + "; ".join(self.unreliable_because))
        if self.p_correct is not None:
            trust += f" (p_correct {self.p_correct:.2f})"
        return (f"{self.video}: offset {o:+.0f} ms ({rel}), confidence {self.confidence:.3f}, {trust}, "
                f"face track {self.track_id}" + (" — DRIFT: offsets differ by "
                                                 f"{self.drift_range_ms:.0f} ms between segments" if self.drift else "")
                + (f" — at the edge of the ±{self.search_ms:.0f} ms search: the offset may be larger, measure "
                   "again with a larger search" if self.at_search_edge else "") + notes)

    def to_dict(self, *, curves: bool = False, windows: bool = True) -> dict:
        """A JSON-ready dict. ``curves`` adds every window's distance curve (large)."""
        d: dict[str, Any] = {
            "video": self.video, "status": self.status, "message": self.message,
            "offset_ms": None if self.offset_ms is None else round(self.offset_ms, 1),
            "confidence": round(self.confidence, 4),
            "p_correct": None if self.p_correct is None else round(self.p_correct, 4),
            "reliable": self.reliable, "unreliable_because": list(self.unreliable_because),
            "evidence": self.evidence, "warnings": list(self.warnings),
            "candidate_ms": None if self.candidate_ms is None else round(self.candidate_ms, 1),
            "convention": "offset_ms = t_audio - t_video; negative = audio leads the video",
            "track_id": self.track_id, "track_ids": self.track_ids,
            "tracks": [t.to_dict() for t in self.tracks],
            "search_ms": self.search_ms, "step_ms": self.step_ms, "aggregate": self.aggregate,
            "at_search_edge": self.at_search_edge,
            "drift": self.drift, "drift_range_ms": round(self.drift_range_ms, 1),
            "segments": [s.to_dict() for s in self.segments],
            "duration_s": round(self.duration_s, 3), "source_fps": round(self.source_fps, 4),
            "model": self.model, "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "shifts_ms": self.shifts_ms.tolist(),
            "curve": [None if not np.isfinite(x) else round(float(x), 5) for x in self.curve],
        }
        if windows:
            d["windows"] = self.windows.to_rows()
        if curves:
            d["window_curves"] = [[None if not np.isfinite(x) else round(float(x), 4) for x in row]
                                  for row in self.window_curves]
        return d

    def to_json(self, path: PathLike | None = None, *, curves: bool = False, indent: int | None = 1,
                overwrite: bool = True) -> str:
        """The result as JSON text; also written (atomically) to ``path`` when given."""
        text = json.dumps(self.to_dict(curves=curves), indent=indent)
        if path is not None:
            write_text(path, text + "\n", protect=[self.video], overwrite=overwrite)
        return text


@dataclass
class RepairResult:
    """What :func:`repair_sync` wrote and how well it worked."""

    input: str
    output: str
    applied_offset_ms: float
    """The offset that was undone (``t_audio − t_video`` of the input)."""
    measured: SyncResult | None
    """The input's measurement (None when the offset was given)."""
    residual: SyncResult | None
    """The output re-measured (None when ``remeasure=False``)."""
    video_copied: bool
    """The video stream was copied bit for bit (remux), not re-encoded."""

    @property
    def residual_ms(self) -> float | None:
        return None if self.residual is None else self.residual.offset_ms

    def to_dict(self) -> dict:
        return {"input": self.input, "output": self.output, "applied_offset_ms": round(self.applied_offset_ms, 1),
                "video_copied": self.video_copied,
                "residual_ms": None if self.residual_ms is None else round(self.residual_ms, 1),
                "residual_confidence": None if self.residual is None else round(self.residual.confidence, 4),
                "measured": None if self.measured is None else self.measured.to_dict(windows=False),
                "residual": None if self.residual is None else self.residual.to_dict(windows=False)}
