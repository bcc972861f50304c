"""From scores to labels: competition between faces, per-frame labels, speaking segments."""
from __future__ import annotations

import numpy as np

MIN_SEGMENT_S = 0.2
"""Speaking runs shorter than this (one SyncNet window) are dropped: flicker where two faces' scores cross."""


def compete(tracks: list, num_frames: int, beta: float) -> None:
    """``score_i − beta · max(0, best score of the other faces at the same frame)``, in place.

    Per frame the two highest scores are kept (not every face's), so this is linear in frames ×
    faces. Scores below zero never raise another face's score; NaN (unscored) faces neither take
    part nor change."""
    n = max(1, num_frames)
    top1 = np.full(n, -np.inf)
    top2 = np.full(n, -np.inf)
    for t in tracks:
        f = np.clip(np.asarray(t.frames, np.int64), 0, n - 1)
        v = np.where(np.isfinite(t.scores), np.asarray(t.scores, np.float64), -np.inf)
        # a track holds each frame once, so the updates of one track do not collide
        top2[f] = np.maximum(top2[f], np.minimum(top1[f], v))
        top1[f] = np.maximum(top1[f], v)
    for t in tracks:
        f = np.clip(np.asarray(t.frames, np.int64), 0, n - 1)
        s = np.asarray(t.scores, np.float64)
        # the best other face: the runner-up where this face holds the top score
        other = np.where(s >= top1[f], top2[f], top1[f])
        t.scores = (s - beta * np.maximum(other, 0.0)).astype(np.float32)


def label_tracks(tracks: list, threshold: float, num_frames: int, *, exclusive: bool = True,
                 min_run: int = 1) -> None:
    """Set each track's ``speaking`` from its scores: ``score >= threshold``; with ``exclusive``,
    only the highest-scoring face of a frame can be speaking (one voice at a time). Runs of
    speaking frames shorter than ``min_run`` frames are dropped (hand-over flicker)."""
    best = np.full(max(1, num_frames), -np.inf)
    if exclusive:
        for t in tracks:
            s = np.where(np.isfinite(t.scores), t.scores, -np.inf)
            f = np.asarray(t.frames, np.int64)
            ok = (f >= 0) & (f < best.size)
            np.maximum.at(best, f[ok], s[ok])
    for t in tracks:
        s = np.asarray(t.scores, np.float64)
        sp = np.isfinite(s) & (s >= threshold)
        if exclusive:
            f = np.clip(np.asarray(t.frames, np.int64), 0, best.size - 1)
            sp &= s >= best[f]
        if min_run > 1 and sp.any():
            edges = np.diff(np.concatenate([[0], sp.astype(np.int8), [0]]))
            for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
                if b - a < min_run:
                    sp[a:b] = False
        t.speaking = sp


def speaking_segments(tracks: list, source_times: np.ndarray, fps: float) -> list[tuple[int, float, float]]:
    """Runs of speaking frames → ``(track id, start, end)``: from the start of the first frame to
    the end of the last, in seconds, in time order."""
    n = source_times.size
    frame_end = np.empty(n)
    frame_end[:-1] = source_times[1:]
    frame_end[-1] = source_times[-1] + (1.0 / fps if fps else 0.04)
    segs = []
    for t in tracks:
        sp = np.asarray(t.speaking, bool)
        if not sp.any():
            continue
        edges = np.diff(np.concatenate([[0], sp.astype(np.int8), [0]]))
        for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
            f0, f1 = int(t.frames[a]), int(t.frames[b - 1])
            segs.append((int(t.id), float(source_times[f0]), float(frame_end[f1])))
    segs.sort(key=lambda s: (s[1], s[0]))
    return segs
