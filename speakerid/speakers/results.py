"""What active speaker detection gives back: face tracks with per-frame scores and labels, and
speaking segments; with their JSON, CSV rows and RTTM lines.

Frame numbers and seconds are the source video's own (a 30 fps video gets 30 fps labels).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..options import DECODER_DEFAULTS, SpeakerOptions
from ..outputs import write_text
from ..reliability import segment_probability
from .labels import (MIN_SEGMENT_S, label_tracks, mean_posterior, nobody_probability, offscreen_segments,
                     speaking_segments)

CSV_FIELDS = ["track", "frame", "time_s", "x", "y", "w", "h", "score", "speaking"]
OFFSCREEN = -1
"""The track id of an off-screen voice's segments (``SpeakerResult.offscreen``)."""


def speaker_name(track_id: int) -> str:
    """The RTTM speaker name of a face track (``offscreen`` for a voice no visible face makes)."""
    return "offscreen" if int(track_id) == OFFSCREEN else f"face{int(track_id)}"

@dataclass
class Segment:
    """One stretch of time (s from the first frame) in which one face track speaks, or (track
    ``OFFSCREEN``) a voice that no visible face is in sync with."""

    track: int
    start: float
    end: float
    probability: float | None = None
    """With the turn model: the calibrated probability that the face really speaks in this
    segment, from its mean speaking posterior and its length
    (:func:`speakerid.reliability.segment_probability`); for an off-screen voice, the turn
    model's probability that no visible face speaks (not calibrated). None with the threshold
    rule, whose scores are not probabilities."""
    mean_posterior: float | None = None
    """With the turn model: the face's mean speaking posterior over the segment, before
    calibration (None for an off-screen voice and with the threshold rule)."""

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict:
        d = {"track": int(self.track), "start": round(float(self.start), 3), "end": round(float(self.end), 3)}
        if self.probability is not None and math.isfinite(self.probability):
            d["probability"] = round(float(self.probability), 3)
        if self.mean_posterior is not None and math.isfinite(self.mean_posterior):
            d["mean_posterior"] = round(float(self.mean_posterior), 3)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Segment:
        return cls(int(d.get("track", OFFSCREEN)), float(d["start"]), float(d["end"]), d.get("probability"),
                   d.get("mean_posterior"))


def _face_segment(track, start: float, end: float, first: int, last: int) -> Segment:
    """A face's speaking segment with its mean posterior and its calibrated probability."""
    m = mean_posterior(track, first, last)
    return Segment(track.id, start, end, segment_probability(m, end - start), m)


@dataclass
class SpeakerTrack:
    """One face followed through one shot, with a score and a label for each of its frames.

    ``frames``: source frame numbers (consecutive); ``boxes``: [x, y, w, h] in source pixels;
    ``scores``: calibrated speaking score (higher = speaking; NaN where the face could not be
    scored, e.g. too small for a mouth crop); ``speaking``: the label.
    """

    id: int
    frames: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    speaking: np.ndarray
    offset_ms: float | None = None
    """The audio offset this track was scored at (``t_audio − t_video``); None if unscored."""

    @property
    def scored(self) -> bool:
        return bool(np.isfinite(self.scores).any())

    def to_dict(self) -> dict:
        return {
            "id": int(self.id),
            "frames": [int(f) for f in self.frames],
            "boxes": np.round(np.asarray(self.boxes, np.float64), 1).tolist(),
            "scores": [None if not math.isfinite(s) else round(float(s), 3) for s in np.asarray(self.scores, np.float64)],
            "speaking": [bool(s) for s in self.speaking],
            "offset_ms": None if self.offset_ms is None else float(self.offset_ms),
        }

    @classmethod
    def from_dict(cls, d: dict) -> SpeakerTrack:
        return cls(id=int(d["id"]), frames=np.asarray(d["frames"], np.int64),
                   boxes=np.asarray(d["boxes"], np.float32).reshape(-1, 4),
                   scores=np.asarray([np.nan if s is None else s for s in d["scores"]], np.float32),
                   speaking=np.asarray(d["speaking"], bool), offset_ms=d.get("offset_ms"))


@dataclass
class SpeakerResult:
    """Who speaks when in one video: face tracks with per-frame scores and labels, and segments.

    Frame numbers and seconds are the source video's own (a 30 fps video gets 30 fps labels).
    """

    fps: float
    num_frames: int
    tracks: list[SpeakerTrack] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    video: str = ""
    threshold: float = DECODER_DEFAULTS[SpeakerOptions.decoder]["threshold"]
    smooth_frames: int = DECODER_DEFAULTS[SpeakerOptions.decoder]["smooth_frames"]
    exclusive: bool = True
    """At most one face labelled speaking per frame (the highest-scoring one above the threshold)."""
    competition: float = 0.0
    """``"threshold"`` decoder: share of the best other face's positive score taken off each
    face's score (scoring step 5); 0 with the ``"hmm"`` decoder."""
    decoder: str = SpeakerOptions.decoder
    """How the scores were made: ``"hmm"`` (posterior probability that the face speaks) or
    ``"threshold"`` (calibrated z less the competition term); see :data:`DECODERS`."""
    offset_ms: float | None = None
    """The video's estimated audio offset (``t_audio − t_video``); None without scorable faces."""
    model: str = ""
    """Fingerprint of the SyncNet weights that produced the scores."""
    frame_times: np.ndarray | None = field(default=None, repr=False, compare=False)
    """Time (s from the first frame) of every source frame, when known (variable frame rate)."""
    offscreen: list[Segment] = field(default_factory=list)
    """Speech that no visible face is in sync with, at least 0.5 s long (track ``OFFSCREEN``):
    someone off screen, a narrator, a face too small or turned away. The audio's loudness
    decides what is speech, so loud music or noise count too."""
    speech: np.ndarray | None = field(default=None, repr=False, compare=False)
    """Per source frame, whether the audio holds sound someone makes (what ``offscreen`` is
    made from)."""
    warnings: list[str] = field(default_factory=list)
    """What may make this result wrong, in words (e.g. an audio offset that drifts along the
    video, which one offset per face cannot follow)."""
    diagnostics: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """Extra arrays for exploration (shift grid, offset profiles, raw window scores); not exported."""

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps if self.fps else 0.0

    def time_of(self, frame: int) -> float:
        """Seconds from the first frame to source frame ``frame``."""
        if self.frame_times is not None and 0 <= int(frame) < self.frame_times.size:
            return float(self.frame_times[int(frame)])
        return int(frame) / self.fps if self.fps else 0.0

    def track(self, track_id: int) -> SpeakerTrack:
        for t in self.tracks:
            if t.id == track_id:
                return t
        raise KeyError(track_id)

    def relabel(self, threshold: float | None = None, *, exclusive: bool | None = None) -> SpeakerResult:
        """Label frames again from the scores with another threshold (and/or exclusivity) and
        rebuild the segments, without scoring again. Returns self."""
        if threshold is not None:
            self.threshold = float(threshold)
        if exclusive is not None:
            self.exclusive = bool(exclusive)
        min_run = max(1, int(round(MIN_SEGMENT_S * (self.fps or 25.0))))
        label_tracks(self.tracks, self.threshold, self.num_frames, exclusive=self.exclusive, min_run=min_run)
        times = np.asarray(self.frame_times if self.frame_times is not None
                           else np.arange(self.num_frames) / (self.fps or 25.0), np.float64)
        hmm = self.decoder == "hmm"
        by_id = {t.id: t for t in self.tracks}
        self.segments = [_face_segment(by_id[t], a, b, f0, f1) if hmm else Segment(t, a, b)
                         for t, a, b, f0, f1 in speaking_segments(self.tracks, times, self.fps)]
        if self.speech is not None and times.size:
            nobody = nobody_probability(self.tracks, self.num_frames, self.exclusive) if hmm else None
            self.offscreen = [Segment(OFFSCREEN, a, b, p)
                              for a, b, p in offscreen_segments(self.tracks, self.speech, times, self.fps, nobody)]
        return self

    def to_dict(self) -> dict:
        """JSON-ready: fps, num_frames, tracks (id, frames, boxes, scores, speaking), segments."""
        return {
            "video": self.video,
            "fps": float(self.fps),
            "num_frames": int(self.num_frames),
            "threshold": float(self.threshold),
            "smooth_frames": int(self.smooth_frames),
            "exclusive": bool(self.exclusive),
            "competition": float(self.competition),
            "decoder": self.decoder,
            "offset_ms": None if self.offset_ms is None else float(self.offset_ms),
            "model": self.model,
            "warnings": list(self.warnings),
            "tracks": [t.to_dict() for t in self.tracks],
            "segments": [s.to_dict() for s in self.segments],
            "offscreen_segments": [s.to_dict() for s in self.offscreen],
        }

    @classmethod
    def from_dict(cls, d: dict) -> SpeakerResult:
        return cls(fps=float(d["fps"]), num_frames=int(d["num_frames"]),
                   tracks=[SpeakerTrack.from_dict(t) for t in d.get("tracks", [])],
                   segments=[Segment.from_dict(s) for s in d.get("segments", [])],
                   offscreen=[Segment.from_dict(s) for s in d.get("offscreen_segments", [])],
                   video=d.get("video", ""), threshold=float(d.get("threshold", DECODER_DEFAULTS["hmm"]["threshold"])),
                   smooth_frames=int(d.get("smooth_frames", DECODER_DEFAULTS["hmm"]["smooth_frames"])), offset_ms=d.get("offset_ms"),
                   exclusive=bool(d.get("exclusive", True)),
                   competition=float(d.get("competition", 0.0)),  # files from before the term: none
                   decoder=str(d.get("decoder", "threshold")),  # files without the field hold z-scores
                   model=d.get("model", ""), warnings=list(d.get("warnings", [])))

    def csv_text(self) -> str:
        """One row per track per frame (:data:`CSV_FIELDS`): the CSV export."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(CSV_FIELDS)
        for t in self.tracks:
            for f, box, s, sp in zip(t.frames, t.boxes, t.scores, t.speaking, strict=True):
                ts = self.time_of(int(f))
                w.writerow([t.id, int(f), f"{ts:.4f}", *(f"{float(v):.1f}" for v in box),
                            "" if not math.isfinite(float(s)) else f"{float(s):.3f}", int(bool(sp))])
        return buf.getvalue()

    def rttm_lines(self, *, uri: str | None = None) -> list[str]:
        """The RTTM lines of the speaking segments, in time order (speaker = ``face<track id>``;
        ``uri``: the recording's name, default the video's file stem)."""
        name = uri if uri is not None else (Path(self.video).stem if self.video else "video")
        u = re.sub(r"\s+", "_", name) or "video"  # RTTM fields are whitespace separated
        lines = []
        for s in sorted(self.segments + self.offscreen, key=lambda s: (s.start, s.track)):
            dur = max(0.0, s.end - s.start)
            lines.append(f"SPEAKER {u} 1 {s.start:.3f} {dur:.3f} <NA> <NA> {speaker_name(s.track)} <NA> <NA>")
        return lines

    def _protect(self, protect) -> list:
        return list(protect or []) + ([self.video] if self.video else [])

    def to_json(self, path: str | os.PathLike, *, protect=None, indent: int | None = None,
                overwrite: bool = True) -> Path:
        """Write :meth:`to_dict` as JSON (atomically; never over the video)."""
        return write_text(path, json.dumps(self.to_dict(), indent=indent) + "\n", protect=self._protect(protect),
                          overwrite=overwrite)

    def to_csv(self, path: str | os.PathLike, *, protect=None, overwrite: bool = True) -> Path:
        """Write :meth:`csv_text` (atomically; never over the video)."""
        return write_text(path, self.csv_text(), protect=self._protect(protect), overwrite=overwrite)

    def to_rttm(self, path: str | os.PathLike, *, uri: str | None = None, protect=None, overwrite: bool = True) -> Path:
        """Write :meth:`rttm_lines` (an empty file when nobody speaks; atomically)."""
        text = "".join(line + "\n" for line in self.rttm_lines(uri=uri))
        return write_text(path, text, protect=self._protect(protect), overwrite=overwrite)
