"""Face tracking: keyframe detections → per-frame tracks.

Detection runs on every ``k``-th frame; :class:`ShotTracker` associates the detections by box
IoU against each track's Kalman-predicted box and keeps identities across missed detections
(norfair's IoU tracking method, written here so that no dependency pins numpy below 2). Each
track's detections are then interpolated linearly to every frame between them (gaps up to ``max_gap`` frames; a longer gap splits the track) and
smoothed, so mouth crops do not jitter. Trackers are reset at shot cuts: a track never spans one.
"""
from __future__ import annotations

from array import array
from dataclasses import dataclass, field

import numpy as np

from ..smoothing import edge_padded_mean
from .detection import Detection


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


class _Box:
    """One tracked face: its box ``[x1, y1, x2, y2]`` under a constant-velocity Kalman filter
    (each coordinate on its own, the covariances the same for all four, so they are scalars),
    and the hit counter that decides when it is lost."""

    # filter settings: initial position and velocity variances, process and measurement noise
    POS_VAR, VEL_VAR, Q, R = 10.0, 1.0, 0.1, 4.0

    def __init__(self, tid: int, box: np.ndarray, hits: int):
        self.id = tid
        self.x = np.asarray(box, np.float64).copy()
        self.v = np.zeros(4)
        self.pos_var, self.pos_vel_cov, self.vel_var = self.POS_VAR, 0.0, self.VEL_VAR
        self.hits = hits

    def predict(self) -> None:
        self.x += self.v

    def update(self, box: np.ndarray) -> None:
        err = np.asarray(box, np.float64) - self.x
        cv = self.pos_vel_cov + self.vel_var
        total = self.pos_var + self.pos_vel_cov + cv + self.Q + self.R
        k_pos, k_vel = 1.0 - self.R / total, cv / total
        self.x += k_pos * err
        self.v += k_vel * err
        self.pos_var = k_pos * self.R
        self.pos_vel_cov = k_vel * self.R
        self.vel_var += self.Q - k_vel * k_vel * total


def iou_distance(dets: np.ndarray, objs: np.ndarray) -> np.ndarray:
    """``1 − IoU`` between each detection box (rows) and each tracked box (columns), float32."""
    if dets.size == 0 or objs.size == 0:
        return np.zeros((dets.shape[0], objs.shape[0]), np.float32)
    area_d = (dets[:, 2] - dets[:, 0]) * (dets[:, 3] - dets[:, 1])
    area_o = (objs[:, 2] - objs[:, 0]) * (objs[:, 3] - objs[:, 1])
    lt = np.maximum(dets[:, None, :2], objs[None, :, :2])
    rb = np.minimum(dets[:, None, 2:], objs[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = 1.0 - inter / (area_d[:, None] + area_o[None, :] - inter)
    return np.nan_to_num(d, nan=1.0).astype(np.float32)


def greedy_match(dist: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """(detection, track) pairs, the closest pair first, then the closest of the rest, while
    the distance stays under ``threshold``: a globally optimal assignment can trade a clear
    match for two poor ones, greedy cannot."""
    d = dist.copy()
    pairs = []
    while d.size and d.min() < threshold:
        i, j = divmod(int(d.argmin()), d.shape[1])
        pairs.append((i, j))
        d[i, :] = threshold + 1
        d[:, j] = threshold + 1
    return pairs


class ShotTracker:
    """Tracks the faces of one shot from keyframe detections; ids are unique across shots via
    ``id_offset``.

    Each keyframe, every tracked box is moved on by its filter's velocity and matched to the
    detections by IoU (greedily, pairs with IoU ≥ ``iou_threshold``); a matched box takes the
    detection in its filter, an unmatched detection starts a new track. A track's hit counter
    gains ``2 × period`` per match (up to ``3 × period``) and loses 1 per keyframe; it ends when
    the counter falls below zero, so a face survives a few missed keyframes."""

    def __init__(self, shot: int, period: int, id_offset: int, iou_threshold: float = 0.3):
        self.shot = shot
        self.period = max(1, int(period))
        self.id_offset = id_offset
        self.max_distance = 1.0 - iou_threshold
        self.max_hits = 3 * self.period
        self._live: list[_Box] = []
        self._next_id = 1
        self.tracks: dict[int, RawTrack] = {}

    def update(self, frame: int, dets: list[Detection]) -> None:
        self._live = [b for b in self._live if b.hits >= 0]
        for b in self._live:
            b.hits -= 1
            b.predict()
        boxes = np.array([np.asarray(d.box, np.float64).reshape(4) for d in dets]).reshape(-1, 4)
        est = np.array([b.x for b in self._live]).reshape(-1, 4)
        pairs = greedy_match(iou_distance(boxes, est), self.max_distance)
        matched = {i for i, _ in pairs}
        current: list[tuple[_Box, Detection]] = []
        for i, j in pairs:
            b = self._live[j]
            b.hits = min(b.hits + 2 * self.period, self.max_hits)
            b.update(boxes[i])
            current.append((b, dets[i]))
        for i, d in enumerate(dets):
            if i not in matched:
                b = _Box(self._next_id, boxes[i], self.period)
                self._next_id += 1
                self._live.append(b)
                current.append((b, d))
        for b, d in sorted(current, key=lambda bd: self._live.index(bd[0])):
            tid = self.id_offset + b.id
            tr = self.tracks.setdefault(tid, RawTrack(id=tid, shot=self.shot))
            if tr.frames and tr.frames[-1] == frame:
                continue
            tr.add(frame, d)


@dataclass
class TrackFrames:
    """One face followed through one shot, frame by frame (``frames``: consecutive frame
    numbers; per frame a box, 5 landmarks or None, and whether the detector fired there): what a
    dense track and the faces stage's :class:`~speakerid.faces.FaceTrack` both are."""

    id: int
    shot: int
    frames: np.ndarray
    boxes: np.ndarray
    landmarks: np.ndarray | None
    detected: np.ndarray


@dataclass
class DenseTrack(TrackFrames):
    """A track with a box (x1, y1, x2, y2) and landmarks on every frame of its span."""

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
        b = edge_padded_mean(interp(boxes), smooth_frames)
        lm = edge_padded_mean(interp(lms), smooth_frames).reshape(-1, 5, 2) if lms is not None else None
        det = np.isin(dense_f, f)
        sc = np.interp(dense_f, f, scores[idx])
        out.append(DenseTrack(id=raw.id if n == 0 else raw.id * 1000 + n, shot=raw.shot, frames=dense_f,
                              boxes=b, landmarks=lm, detected=det, scores=sc))
    return out
