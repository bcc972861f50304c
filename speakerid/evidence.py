"""The shared sync evidence: how well each mouth window fits the audio at each shift, and how a
clip's windows are combined. One copy, used by :mod:`speakerid.sync`, :mod:`speakerid.speakers`
and training (:mod:`speakerid.train.evaluate`, :mod:`speakerid.train.refine`).

* :func:`window_distances`: ``d[window, shift]``, the embedding distance between video window
  ``k`` (model frame) and the audio window at MFCC column ``4 k + shift``; NaN where that audio
  window is not there.
* :func:`audio_hubness`: each audio window's mean distance to the video's mouths. Some audio
  (silence, breath, a held vowel) lies closer to every mouth than other audio does; subtracting
  it (``window_distances(audio_bias=…)``) leaves what is specific to one mouth at one time.
* :func:`window_confidence`: per window, the arg-min shift and the confidence ``median − min`` of
  its curve (the SyncNet paper's definition).
* :func:`weighted_mean_curve` and :func:`aggregate_windows`: the clip's curve and offset from its
  windows' curves, so that silent windows (flat curves, low confidence) neither vote nor drag it.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace

import numpy as np

from .timebase import COLS_PER_FRAME, MS_PER_COL

WINDOW_FLOOR_FRACTION = 0.5
"""Windows whose confidence is below this fraction of the clip's typical *speaking* window
(the 90th percentile) are dropped from the clip aggregate."""
DEFAULT_AGGREGATE = "curve_norm"
"""How windows are combined by default (chosen on the sync benchmark among the options of
:func:`aggregate_windows`; see docs/sync.md)."""
AGGREGATES = ("curve", "curve_uniform", "curve_norm", "weighted", "filtered", "median", "mean")
DRIFT_TOLERANCE_MS = 80.0
"""Segment offsets further apart than this (two video frames) are drift: one offset does not fit
the whole video (sync reports it, speakers warn)."""
DRIFT_SEGMENT_S = 10.0
"""Length of the stretches whose offsets are compared for drift."""


def window_distances(starts: np.ndarray, video_emb, audio_emb, shifts: np.ndarray, *, audio_step: int = 1,
                     col_step: int | None = None, audio_bias: np.ndarray | None = None,
                     chunk: int = 64) -> np.ndarray:
    """Distances ``(n_windows, n_shifts)`` float32 between each video window (model frame
    ``starts[i]``) and the audio window at MFCC column ``4 · starts[i] + shift``.

    ``audio_emb`` holds the embedding of the audio window at every ``audio_step``-th column (row
    ``r`` starts at column ``r · audio_step``). A distance is NaN where that audio window is
    outside the file, or where its column is not a multiple of ``col_step`` (default
    ``audio_step``): a coarser search sees only its own columns. ``audio_bias``: a value per audio
    row subtracted from its distances (:func:`audio_hubness`). ``video_emb``/``audio_emb``:
    arrays or on-disk rows (:class:`~speakerid.rowstore.StoredRows`); each ``chunk`` of windows
    reads only the audio rows it reaches (64 windows × 201 shifts: ~13 MB float32 gathers).
    """
    col_step = audio_step if col_step is None else col_step
    n, s = starts.size, shifts.size
    out = np.full((n, s), np.nan, np.float32)
    na = len(audio_emb)
    for b in range(0, n, chunk):
        cols = COLS_PER_FRAME * starts[b:b + chunk, None] + shifts[None, :]
        valid = (cols >= 0) & (cols // audio_step < na)
        if col_step > 1:
            valid &= cols % col_step == 0
        if na == 0 or not valid.any():
            continue
        idx = np.clip(cols // audio_step, 0, na - 1)
        lo = int(idx.min())
        a = np.asarray(audio_emb[lo:int(idx.max()) + 1], np.float32)[idx - lo]          # (c, S, D)
        d = np.linalg.norm(a - np.asarray(video_emb[b:b + chunk], np.float32)[:, None, :], axis=2)
        del a
        if audio_bias is not None:
            d -= audio_bias[idx]
        d[~valid] = np.nan
        out[b:b + chunk] = d
    return out


def audio_hubness(audio_emb, video_embs: list, max_video: int = 2000) -> np.ndarray:
    """Mean distance (float32) of each audio window to (an even sample of at most ``max_video``)
    the video windows of the video, taken across ``video_embs`` (one array or rows per track)."""
    sizes = np.array([len(v) for v in video_embs], np.int64)
    total = int(sizes.sum())
    pick = np.linspace(0, total - 1, max_video).astype(np.int64) if total > max_video else np.arange(total)
    which = np.searchsorted(np.cumsum(sizes), pick, side="right")
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    # each track's share read at once
    v = np.concatenate([np.asarray(video_embs[w][pick[which == w] - first[w]])
                        for w in np.unique(which).tolist()]).astype(np.float64)
    v2 = (v ** 2).sum(1)[None, :]
    out = np.empty(len(audio_emb), np.float32)
    for b in range(0, len(audio_emb), 512):  # (512, 2000) float64 blocks: 8 MB
        a = np.asarray(audio_emb[b:b + 512], np.float64)
        d2 = (a ** 2).sum(1)[:, None] + v2 - 2.0 * a @ v.T
        out[b:b + 512] = np.sqrt(np.maximum(d2, 0.0)).mean(1)
    return out


def window_confidence(curves: np.ndarray, min_valid: float = 0.5):
    """Per window: arg-min shift index, confidence (median − min; 0 where not usable), min
    distance, and whether it is usable (at least 3 shifts, and ``min_valid`` of them, reach
    audio). Non-finite distances (NaN, inf) are shifts the window cannot see."""
    valid = np.isfinite(curves)
    nvalid = valid.sum(1)
    usable = nvalid >= max(3, int(math.ceil(min_valid * curves.shape[1])))
    big = np.where(valid, curves, np.inf)
    arg = np.argmin(big, axis=1) if curves.size else np.zeros(0, np.int64)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # windows with no valid shift at all: NaN, not usable
        mn = np.nanmin(np.where(valid, curves, np.nan), axis=1) if curves.size else np.zeros(0)
        med = np.nanmedian(np.where(valid, curves, np.nan), axis=1) if curves.size else np.zeros(0)
    conf = np.where(usable, med - mn, 0.0)
    return arg, conf.astype(np.float64), mn, usable


def weighted_mean_curve(rows: np.ndarray, weights: np.ndarray, valid: np.ndarray,
                        min_coverage: float = 0.0) -> np.ndarray:
    """Per shift, the ``weights``-weighted mean of the windows' ``rows`` over the windows that
    see that shift (``valid``; ``rows`` must be 0 elsewhere). NaN at shifts whose weight is under
    ``min_coverage`` × the total weight (seen by too few windows to be searched) or zero."""
    cover = (weights[:, None] * valid).sum(0)
    with np.errstate(all="ignore"):
        c = (weights[:, None] * rows).sum(0) / cover
    c[(cover < min_coverage * weights.sum()) | (cover <= 0)] = np.nan
    return c


def window_weights(conf: np.ndarray, usable: np.ndarray, floor_fraction: float) -> np.ndarray:
    """Confidence weights; windows under ``floor_fraction`` × the 90th-percentile confidence
    (a typical clearly-speaking window of this clip) get weight 0."""
    w = np.where(usable, conf, 0.0)
    if not np.any(w > 0):
        return w
    ref = float(np.percentile(w[usable], 90))
    return np.where(w >= floor_fraction * ref, w, 0.0)


def parabolic_peak(curve: np.ndarray, i: int) -> float:
    """Sub-step position of a minimum from its two neighbours (in steps, within ±0.5)."""
    if i <= 0 or i >= curve.size - 1:
        return 0.0
    a, b, c = curve[i - 1], curve[i], curve[i + 1]
    if not (np.isfinite(a) and np.isfinite(c)):
        return 0.0
    den = a - 2 * b + c
    if den <= 1e-12:
        return 0.0
    return float(np.clip(0.5 * (a - c) / den, -0.5, 0.5))


@dataclass
class ClipAggregate:
    """A clip's aggregate of its windows: offset (ms; None without evidence), confidence, the
    curve that was searched, and each window's weight in it (0 = dropped)."""

    offset_ms: float | None
    confidence: float
    curve: np.ndarray
    weights: np.ndarray


def aggregate_windows(curves: np.ndarray, shifts_ms: np.ndarray, *, method: str = DEFAULT_AGGREGATE,
                      floor_fraction: float = WINDOW_FLOOR_FRACTION, refine: bool = True,
                      min_coverage: float = 0.25) -> ClipAggregate:
    """Combine per-window distance curves into one clip offset (ms) and confidence.

    Windows whose confidence is under ``floor_fraction`` × the clip's 90th-percentile window
    confidence are dropped first (silence, a closed mouth). Each kept window's curve is centred
    on its own median. ``method``:

    * "curve" — confidence-weighted mean of the kept curves; arg-min, refined between steps with
      a parabola (a window's pull grows with the square of its confidence);
    * "curve_uniform" — the same with equal weights (pull ∝ confidence);
    * "curve_norm" — each curve scaled to unit depth first, equal weights (every kept window
      pulls the same);
    * "weighted" — confidence-weighted mean of the kept windows' arg-mins;
    * "filtered" — plain mean of the kept windows' arg-mins;
    * "median" — confidence-weighted median of the kept windows' arg-mins;
    * "mean" — plain mean of every window's arg-min (the naive baseline).

    The clip confidence is the same for every method: how far below its median the equal-weight
    mean curve of the kept windows lies at the chosen offset (distance units, like a window's).
    ``curve`` in the result is the curve the method searched (the equal-weight one for votes).
    """
    if method not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {AGGREGATES}, got {method!r}")
    with warnings.catch_warnings():
        # NaN-aware reductions over shifts no window reaches are expected: they stay NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return _aggregate(curves, shifts_ms, method, floor_fraction, refine, min_coverage)


def _aggregate(curves: np.ndarray, shifts_ms: np.ndarray, method: str, floor_fraction: float, refine: bool,
               min_coverage: float) -> ClipAggregate:
    n, s = curves.shape
    empty = ClipAggregate(None, 0.0, np.full(s, np.nan), np.zeros(n))
    if n == 0:
        return empty
    arg, conf, _mn, usable = window_confidence(curves)
    w = window_weights(conf, usable, floor_fraction)
    if not np.any(w > 0):
        return replace(empty, weights=w)
    valid = np.isfinite(curves)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(np.where(valid, curves, np.nan), axis=1)
    med = np.nan_to_num(med)
    centred = np.where(valid, curves - med[:, None], 0.0)
    keep = (w > 0).astype(np.float64)
    flat = weighted_mean_curve(centred, keep, valid, min_coverage)
    if not np.any(np.isfinite(flat)):
        return replace(empty, weights=w)
    if method == "curve":
        curve = weighted_mean_curve(centred, w, valid, min_coverage)
    elif method == "curve_norm":
        depth = np.where(w > 0, conf, 1.0)
        curve = weighted_mean_curve(centred / depth[:, None], keep, valid, min_coverage)
    else:
        curve = flat
    step = float(shifts_ms[1] - shifts_ms[0]) if shifts_ms.size > 1 else float(MS_PER_COL)
    if method.startswith("curve"):
        i = int(np.nanargmin(curve))
        off = float(shifts_ms[i]) + (parabolic_peak(curve, i) * step if refine else 0.0)
    else:
        off = _vote(method, shifts_ms[arg].astype(np.float64), w, usable)
        i = int(np.argmin(np.abs(shifts_ms - off)))
    at = flat[i] if np.isfinite(flat[i]) else np.nanmin(flat)
    conf_clip = float(np.nanmedian(flat) - at)
    return ClipAggregate(off, conf_clip, curve, w)


def _vote(method: str, offs: np.ndarray, w: np.ndarray, usable: np.ndarray) -> float:
    """The clip offset from the windows' own arg-mins (the methods that vote)."""
    k = w > 0
    if method == "weighted":
        return float(np.sum(w[k] * offs[k]) / np.sum(w[k]))
    if method == "filtered":
        return float(np.mean(offs[k]))
    if method == "median":
        o = np.argsort(offs[k])
        cw = np.cumsum(w[k][o])
        return float(offs[k][o][np.searchsorted(cw, cw[-1] / 2)])
    return float(np.mean(offs[usable])) if np.any(usable) else float(np.mean(offs))  # mean
