"""Who speaks when, from per-face evidence: a hidden Markov model over turns.

The scoring stage gives every face, frame by frame, a calibrated z-score of lip-sync evidence
(``speakers.score_faces``). This module turns those scores into the probability that each face
is the one speaking, by forward–backward over a small hidden Markov model:

* **States.** ``exclusive``: one voice at a time, so at each frame the state is "nobody" or one
  of the faces on screen at that frame. Otherwise each face on its own is "silent" or
  "speaking" (overlapping speech).
* **Evidence.** A face's score ``z`` is read as a log-likelihood ratio of speaking against not,
  ``scale · (z − bias)``: ``bias`` is the score at which both are equally likely. A frame where
  a face is present but too small to score counts as ``z = 0`` (no sync evidence).
* **Turns.** The state changes with probability ``1 − exp(−switch_per_s / fps)`` per frame, to
  any other allowed state alike; a face that leaves the screen hands its share to the states of
  the next frame. A turn is then a run of frames that together outweigh the cost of two
  changes, so its edges follow where the evidence changes instead of being spread by a wide
  moving mean.

``speakers.score_faces`` uses it by default (``decoder="hmm"``); docs/speakers.md has its benchmark
figures against the threshold rule.

The posterior ``P(face k speaks at frame f | all scores)`` is in [0, 1] and comparable across
faces, frames and videos; ``speakers`` labels a face speaking where it is ≥ 0.5 (with
``exclusive`` at most one face can be). Memory: one number per face and frame, and one per frame
for "nobody", as the scores themselves.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["speaking_posteriors", "HMM_SCALE", "HMM_BIAS", "HMM_SWITCH_PER_S"]

HMM_SCALE = 0.5
"""Log-likelihood ratio of speaking per unit of calibrated score."""
HMM_BIAS = 1.25
"""Calibrated score at which a face is as likely speaking as not."""
HMM_SWITCH_PER_S = 0.25
"""Expected changes of who speaks per second, a priori (the data's evidence overrides it)."""

_MAX_LOG_RATIO = 50.0  # exp(±50) stays finite in float64; beyond it the evidence is certain anyway


def speaking_posteriors(frames: list[np.ndarray], scores: list[np.ndarray], num_frames: int, fps: float, *,
                        exclusive: bool = True, scale: float = HMM_SCALE, bias: float = HMM_BIAS,
                        switch_per_s: float = HMM_SWITCH_PER_S) -> list[np.ndarray]:
    """Posterior probability that each face speaks, frame by frame.

    ``frames[k]``: the source frame numbers of face track ``k`` (increasing, within
    ``[0, num_frames)``); ``scores[k]``: its calibrated scores there (NaN = not scorable).
    Returns one float32 array per track, aligned with ``frames[k]``, NaN where the score is NaN.
    """
    if len(frames) != len(scores):
        raise ValueError("frames and scores must hold one array per track")
    if not fps or fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if scale <= 0 or switch_per_s <= 0:
        raise ValueError("scale and switch_per_s must be positive")
    p_switch = -math.expm1(-float(switch_per_s) / float(fps))
    ratios = []
    for f, z in zip(frames, scores, strict=True):
        z = np.asarray(z, np.float64)
        if np.asarray(f).shape != z.shape:
            raise ValueError("each track's frames and scores must have the same length")
        log_r = np.clip(scale * (np.where(np.isfinite(z), z, 0.0) - bias), -_MAX_LOG_RATIO, _MAX_LOG_RATIO)
        ratios.append(np.exp(log_r))
    if exclusive:
        post = _exclusive(frames, ratios, int(num_frames), p_switch)
    else:
        # each face alone is the same model with two states, "nobody" standing for "silent"
        post = [_exclusive([np.arange(r.size)], [r], r.size, p_switch)[0] for r in ratios]
    return [np.where(np.isfinite(np.asarray(z, np.float64)), p, np.nan).astype(np.float32)
            for p, z in zip(post, scores, strict=True)]


def _exclusive(frames: list[np.ndarray], ratios: list[np.ndarray], n: int, p: float) -> list[np.ndarray]:
    """Forward–backward over "nobody" and the faces present, frame by frame (scaled, so nothing
    underflows). Entries are kept flat, sorted by (frame, track): memory grows with the number
    of (face, frame) pairs, as the scores do."""
    k_of = np.concatenate([np.full(len(f), k, np.int64) for k, f in enumerate(frames)] or [np.zeros(0, np.int64)])
    f_of = np.concatenate([np.asarray(f, np.int64) for f in frames] or [np.zeros(0, np.int64)])
    r_of = np.concatenate(ratios or [np.zeros(0)])
    order = np.lexsort((k_of, f_of))
    k_of, f_of, r_of = k_of[order], f_of[order], r_of[order]
    n = max(n, int(f_of[-1]) + 1 if f_of.size else 0)
    bounds = np.searchsorted(f_of, np.arange(n + 1))
    a_face = np.empty(f_of.size)  # forward probabilities, flat like the entries
    a_nobody = np.empty(n)
    prev_ids = np.zeros(0, np.int64)
    prev_face = np.zeros(0)
    prev_nobody = 1.0
    for f in range(n):
        s, e = bounds[f], bounds[f + 1]
        ids, r = k_of[s:e], r_of[s:e]
        m = ids.size + 1
        if f == 0:
            pred = np.full(m, 1.0 / m)
        else:
            stay = np.zeros(m)
            stay[0] = prev_nobody
            if ids.size and prev_ids.size:
                _, ip, ic = np.intersect1d(prev_ids, ids, assume_unique=True, return_indices=True)
                stay[ic + 1] = prev_face[ip]
            ended = max(0.0, 1.0 - stay.sum())  # faces gone since the last frame
            if m == 1:
                pred = np.ones(1)
            else:
                pred = (1 - p) * stay + p * (1.0 - ended - stay) / (m - 1) + ended / m
        a = pred * np.concatenate([[1.0], r])
        a /= a.sum()
        a_nobody[f] = a[0]
        a_face[s:e] = a[1:]
        prev_ids, prev_face, prev_nobody = ids, a[1:], a[0]

    post_flat = np.empty(f_of.size)
    next_ids = np.zeros(0, np.int64)
    x_next = np.ones(1)  # evidence × backward of the next frame's states ("nobody" first)
    for f in range(n - 1, -1, -1):
        s, e = bounds[f], bounds[f + 1]
        ids, r = k_of[s:e], r_of[s:e]
        if f == n - 1:
            b = np.ones(ids.size + 1)
        else:
            m = next_ids.size + 1
            total = x_next.sum()
            if m == 1:
                b_cont = x_next.copy()
            else:
                b_cont = (1 - p) * x_next + p * (total - x_next) / (m - 1)
            b = np.full(ids.size + 1, total / m)  # faces that leave: any next state alike
            b[0] = b_cont[0]
            if ids.size and next_ids.size:
                _, ic, inext = np.intersect1d(ids, next_ids, assume_unique=True, return_indices=True)
                b[ic + 1] = b_cont[inext + 1]
            b /= b.max()
        g = np.concatenate([[a_nobody[f]], a_face[s:e]]) * b
        post_flat[s:e] = g[1:] / g.sum()
        x_next = np.concatenate([[1.0], r]) * b
        next_ids = ids

    out_flat = np.empty_like(post_flat)
    out_flat[order] = post_flat
    return np.split(out_flat, np.cumsum([len(f) for f in frames])[:-1]) if frames else []
