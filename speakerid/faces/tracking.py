"""Face tracking with norfair: keyframe detections → per-frame tracks.

Detection runs on every ``k``-th frame; norfair associates the detections by box IoU and keeps
identities across missed detections. Each track's detections are then interpolated linearly to
every frame between them (gaps up to ``max_gap`` frames; a longer gap splits the track) and
smoothed, so mouth crops do not jitter. Trackers are reset at shot cuts: a track never spans one.
"""
from __future__ import annotations

from array import array
from dataclasses import dataclass, field

import numpy as np

from .detector import Detection


_ROW = 15  # x1, y1, x2, y2, score, 5 landmarks (x, y); NaN landmarks when the detector gave none


@dataclass
class RawTrack:
    """A track's keyframe detections before interpolation, packed as float32 rows (60 bytes a
    detection instead of ~0.5 KB of Python objects: pass 1 of a long video keeps them all)."""

    id: int
    shot: int
    frames: array = field(default_factory=lambda: array("q"))
    _rows: array = field(default_factory=lambda: array("f"), repr=False)

    def add(self, frame: int, det: Detection) -> None:
        lm = det.landmarks if det.landmarks is not None else np.full(10, np.nan)
        self.frames.append(int(frame))
        self._rows.extend(np.concatenate([np.asarray(det.box, np.float32).reshape(4), [det.score],
                                          np.asarray(lm, np.float32).reshape(10)]).astype(np.float32).tolist())

    def _table(self) -> np.ndarray:
        return np.frombuffer(self._rows, np.float32).reshape(-1, _ROW)

    @property
    def boxes(self) -> np.ndarray:
        return self._table()[:, :4].copy()

    @property
    def scores(self) -> np.ndarray:
        return self._table()[:, 4].copy()

    @property
    def landmarks(self) -> np.ndarray | None:
        """``(n, 5, 2)``, or None unless every detection had landmarks."""
        lm = self._table()[:, 5:]
        return lm.reshape(-1, 5, 2).copy() if lm.size and np.isfinite(lm).all() else None


class ShotTracker:
    """norfair tracker for one shot; ids are unique across shots via ``id_offset``."""

    def __init__(self, shot: int, period: int, id_offset: int, iou_threshold: float = 0.3):
        from norfair import Tracker

        self.shot = shot
        self.period = max(1, int(period))
        self.id_offset = id_offset
        # norfair's "iou" distance is 1 − IoU; accept matches with IoU ≥ iou_threshold. A face
        # survives 3 missed keyframes before its track ends.
        self._tracker = Tracker(distance_function="iou", distance_threshold=1.0 - iou_threshold,
                                hit_counter_max=3 * self.period, initialization_delay=0)
        self.tracks: dict[int, RawTrack] = {}

    def update(self, frame: int, dets: list[Detection]) -> None:
        from norfair import Detection as NfDetection

        nf = [NfDetection(points=d.box.reshape(2, 2).astype(np.float64), scores=np.array([d.score, d.score]), data=d)
              for d in dets]
        objs = self._tracker.update(detections=nf, period=self.period)
        current = {id(x) for x in nf}
        for obj in objs:
            last = obj.last_detection
            if last is None or id(last) not in current:
                continue
            tid = self.id_offset + int(obj.id)
            tr = self.tracks.setdefault(tid, RawTrack(id=tid, shot=self.shot))
            if tr.frames and tr.frames[-1] == frame:
                continue
            tr.add(frame, last.data)


def _smooth(x: np.ndarray, win: int) -> np.ndarray:
    """Centred moving average along axis 0 with edge padding (window forced odd)."""
    if win <= 1 or x.shape[0] < 3:
        return x
    win = min(win | 1, x.shape[0] if x.shape[0] % 2 else x.shape[0] - 1)
    if win <= 1:
        return x
    pad = win // 2
    xp = np.concatenate([np.repeat(x[:1], pad, 0), x, np.repeat(x[-1:], pad, 0)], 0)
    c = np.cumsum(np.concatenate([np.zeros_like(xp[:1]), xp], 0), 0)
    return (c[win:] - c[:-win]) / win


@dataclass
class DenseTrack:
    """A track with a box (x1, y1, x2, y2) and landmarks on every frame of its span."""

    id: int
    shot: int
    frames: np.ndarray
    boxes: np.ndarray
    landmarks: np.ndarray | None
    detected: np.ndarray
    scores: np.ndarray


def densify(raw: RawTrack, *, max_gap: int, smooth_frames: int, min_detections: int = 2,
            hold_until: int | None = None) -> list[DenseTrack]:
    """Interpolate a raw track to every frame, split it at long gaps, smooth it.

    ``hold_until``: extend the last piece to this frame by holding its last box (the frames
    after the shot's last keyframe, which the detector never saw).
    """
    if len(raw.frames) < 1:
        return []
    frames = np.asarray(raw.frames, np.int64)
    boxes = raw.boxes.astype(np.float64)
    lms = raw.landmarks
    lms = None if lms is None else lms.reshape(frames.size, -1).astype(np.float64)
    scores = raw.scores.astype(np.float64)
    # split where consecutive detections are further apart than max_gap
    breaks = np.nonzero(np.diff(frames) > max_gap)[0] + 1
    pieces = np.split(np.arange(frames.size), breaks)
    out = []
    for n, idx in enumerate(pieces):
        if idx.size < min_detections:
            continue
        f = frames[idx]
        last = int(f[-1])
        if n == len(pieces) - 1 and hold_until is not None and hold_until > last:
            last = int(hold_until)
        dense_f = np.arange(f[0], last + 1)
        def interp(v):
            return np.stack([np.interp(dense_f, f, v[idx, c]) for c in range(v.shape[1])], 1)
        b = _smooth(interp(boxes), smooth_frames)
        lm = _smooth(interp(lms), smooth_frames).reshape(-1, 5, 2) if lms is not None else None
        det = np.isin(dense_f, f)
        sc = np.interp(dense_f, f, scores[idx])
        out.append(DenseTrack(id=raw.id if n == 0 else raw.id * 1000 + n, shot=raw.shot, frames=dense_f,
                              boxes=b, landmarks=lm, detected=det, scores=sc))
    return out
