"""From scores to labels: competition between faces, per-frame labels, speaking segments."""
from __future__ import annotations

import numpy as np

from ..media import SILENCE_DBFS
from ..smoothing import centred_mean

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


def _runs(mask: np.ndarray):
    """``(first, stop)`` of each run of True in a 1-D boolean array."""
    edges = np.diff(np.concatenate([[0], np.asarray(mask, np.int8), [0]]))
    return zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True)


def _frame_ends(source_times: np.ndarray, fps: float) -> np.ndarray:
    """When each source frame stops showing: the next frame's time (the last lasts 1 / fps)."""
    return np.append(source_times[1:], source_times[-1] + (1.0 / fps if fps else 0.04))


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
            for a, b in _runs(sp):
                if b - a < min_run:
                    sp[a:b] = False
        t.speaking = sp


def speaking_segments(tracks: list, source_times: np.ndarray, fps: float) -> list[tuple[int, float, float, int, int]]:
    """Runs of speaking frames → ``(track id, start, end, first frame, last frame)``: seconds from
    the start of the first frame to the end of the last, in time order."""
    frame_end = _frame_ends(source_times, fps)
    segs = []
    for t in tracks:
        for a, b in _runs(t.speaking):
            f0, f1 = int(t.frames[a]), int(t.frames[b - 1])
            segs.append((int(t.id), float(source_times[f0]), float(frame_end[f1]), f0, f1))
    segs.sort(key=lambda s: (s[1], s[0]))
    return segs


SPEECH_MARGIN_DB = 10.0
"""Audio at least this much above the file's own quiet level (its 10th-percentile frame energy)
counts as sound someone makes; the floor of the relative rule is ``SPEECH_FLOOR_DBFS``."""
SPEECH_FLOOR_DBFS = SILENCE_DBFS
"""Quieter than this is never speech (the silence level of sync)."""
SPEECH_HANGOVER_S = 0.2
"""Speech is held this long on each side, so the short gaps inside a sentence count as speech."""
OFFSCREEN_MIN_S = 0.5
"""Speech with nobody labelled is reported as an off-screen voice when it lasts at least this long
(shorter runs are the edges of turns, where the smoothed evidence changes hands)."""


def speech_columns(log_energy: np.ndarray) -> np.ndarray:
    """Per 10 ms MFCC column (``log_energy``: c0, the natural log of the frame's power), whether
    someone is audibly making sound: ``SPEECH_MARGIN_DB`` above the file's quiet level and above
    ``SPEECH_FLOOR_DBFS``, held ``SPEECH_HANGOVER_S`` either side. An energy rule: it cannot tell
    speech from music or loud noise, which then count as sound nobody on screen makes."""
    e = np.asarray(log_energy, np.float64)
    if e.size == 0:
        return np.zeros(0, bool)
    db = 10.0 / np.log(10.0)  # natural log of power → dB
    # a 25 ms frame of full-scale sine has power ~ 0.5 · 400 samples (python_speech_features' frame energy)
    full_scale = np.log(0.5 * 400)
    loud = (e - full_scale) * db > SPEECH_FLOOR_DBFS
    quiet = np.percentile(e, 10)
    on = loud & ((e - quiet) * db >= SPEECH_MARGIN_DB)
    h = int(round(SPEECH_HANGOVER_S * 100))
    # held h columns either side: a centred window of 2h + 1 holding any speech
    return centred_mean(on, 2 * h + 1) > 0 if h and on.any() else on


def speech_frames(columns: np.ndarray, source_times: np.ndarray) -> np.ndarray:
    """``speech_columns`` read at each source frame's time."""
    if columns.size == 0:
        return np.zeros(source_times.size, bool)
    return columns[np.clip(np.round(source_times * 100).astype(np.int64), 0, columns.size - 1)]


def offscreen_segments(tracks: list, speech: np.ndarray, source_times: np.ndarray, fps: float,
                       nobody: np.ndarray | None = None) -> list[tuple[float, float, float | None]]:
    """Runs of source frames with speech and no face labelled speaking, at least
    ``OFFSCREEN_MIN_S`` long → ``(start, end, probability)``: a voice that no visible mouth is in
    sync with (someone off screen, a narrator, a face too small or turned away). ``nobody``: per
    frame, the probability that no visible face speaks (the turn model's), whose mean over the run
    is its probability; None without it."""
    n = source_times.size
    free = np.asarray(speech, bool).copy()
    for t in tracks:
        f = np.asarray(t.frames, np.int64)
        ok = (f >= 0) & (f < n)
        free[f[ok][np.asarray(t.speaking, bool)[ok]]] = False
    frame_end = _frame_ends(source_times, fps) if n else source_times
    out = []
    for a, b in _runs(free):
        start, end = float(source_times[a]), float(frame_end[b - 1])
        if end - start >= OFFSCREEN_MIN_S:
            out.append((start, end, None if nobody is None else float(np.mean(nobody[a:b]))))
    return out


def mean_posterior(track, first: int, last: int) -> float:
    """A face's mean speaking probability over its source frames ``first..last`` (the turn model's
    scores are probabilities)."""
    f = np.asarray(track.frames, np.int64)
    s = np.asarray(track.scores, np.float64)[(f >= first) & (f <= last)]
    s = s[np.isfinite(s)]
    return float(s.mean()) if s.size else float("nan")


def nobody_probability(tracks: list, num_frames: int, exclusive: bool) -> np.ndarray:
    """Per source frame, the turn model's probability that no visible face speaks: one less the
    faces' probabilities (one voice at a time), or the product of each face's probability of not
    speaking (``exclusive=False``)."""
    none = np.ones(max(0, num_frames))
    for t in tracks:
        f = np.asarray(t.frames, np.int64)
        p = np.nan_to_num(np.asarray(t.scores, np.float64), nan=0.0)
        ok = (f >= 0) & (f < none.size)
        if exclusive:
            none[f[ok]] -= p[ok]
        else:
            none[f[ok]] *= 1.0 - p[ok]
    return np.clip(none, 0.0, 1.0)
