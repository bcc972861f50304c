"""Moving means over per-window or per-frame series, correct at every length.

``np.convolve(x, kernel, "same")`` returns ``max(len(x), len(kernel))`` values, so a series
shorter than the kernel (a passer-by's one-second face track) comes back the kernel's length.
These helpers always return one value per input value.

* :func:`centred_mean`: the mean of what a centred window covers (no padding: the ends are not
  pulled towards a repeated edge value). Cepstral normalisation, crop framing, the speaker
  choice of sync.
* :func:`edge_padded_mean`: the same with the edge values repeated, for positions (face boxes),
  where a track's first and last boxes should stay where they were seen.
* :func:`triangle_nanmean`: triangle-weighted and NaN-aware, for speaker scores with gaps.
"""
from __future__ import annotations

import numpy as np


def centred_mean(x: np.ndarray, width: int, axis: int = 0) -> np.ndarray:
    """Centred moving mean along ``axis`` over ``width`` values (an even width reaches one
    further back than forward, as ``np.convolve(…, "same")`` does); near the ends, and for a
    series shorter than ``width``, the mean of the values the window covers. Same shape as
    ``x``; float64. O(n) by cumulative sums."""
    x = np.moveaxis(np.asarray(x, np.float64), axis, 0)
    n = x.shape[0]
    width = max(1, int(width))
    if n == 0 or width == 1:
        return np.moveaxis(x.copy(), 0, axis)
    back = width // 2            # values before i the window covers
    fwd = width - 1 - back       # values after i
    c = np.concatenate([np.zeros((1,) + x.shape[1:]), np.cumsum(x, axis=0)], axis=0)
    i = np.arange(n)
    lo = np.maximum(0, i - back)
    hi = np.minimum(n, i + fwd + 1)
    mean = (c[hi] - c[lo]) / (hi - lo).reshape((-1,) + (1,) * (x.ndim - 1))
    return np.moveaxis(mean, 0, axis)


def edge_padded_mean(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving mean along axis 0 with the edge values repeated (the width made odd, and
    no wider than the series)."""
    if width <= 1 or x.shape[0] < 3:
        return x
    width = min(width | 1, x.shape[0] if x.shape[0] % 2 else x.shape[0] - 1)
    if width <= 1:
        return x
    pad = width // 2
    xp = np.concatenate([np.repeat(x[:1], pad, 0), x, np.repeat(x[-1:], pad, 0)], 0)
    c = np.cumsum(np.concatenate([np.zeros_like(xp[:1]), xp], 0), 0)
    return (c[width:] - c[:-width]) / width


def _box_sums(x: np.ndarray, length: int, lead: int) -> np.ndarray:
    """``y[t] = x[t − lead] + … + x[t − lead + length − 1]`` along axis 0 (zeros outside)."""
    pad = [(lead + 1, length - lead - 1)] + [(0, 0)] * (x.ndim - 1)
    cs = np.cumsum(np.pad(x, pad), axis=0)
    return cs[length:] - cs[:-length]


def triangle_nanmean(x: np.ndarray, width: int) -> np.ndarray:
    """Centred, triangle-weighted moving mean along axis 0 over ``width`` frames, ignoring NaN;
    NaN where the window holds no value.

    The weights fall linearly from the centre (a box mean applied twice, two boxes of about
    ``width / 2`` frames). Half a second from the edge of a speaking turn, a flat 2 s mean still
    carries a quarter of the other side's evidence, this one an eighth: fewer false labels in
    pauses and at turn changes, while a frame's score still draws on ``width`` frames.
    """
    x = np.asarray(x, np.float64)
    if width <= 1 or x.shape[0] == 0:
        return x.copy()
    valid = np.isfinite(x)
    h = width // 2
    a = (width + 1) // 2
    b = width + 1 - a  # the two boxes together reach h frames back and width − h − 1 ahead
    la = a // 2
    # the first box's sums are needed a window beyond the ends too: work on a padded copy
    pad = [(width, width)] + [(0, 0)] * (x.ndim - 1)
    keep = slice(width, width + x.shape[0])
    s = _box_sums(_box_sums(np.pad(np.where(valid, x, 0.0), pad), a, la), b, h - la)[keep]
    n = _box_sums(_box_sums(np.pad(valid.astype(np.float64), pad), a, la), b, h - la)[keep]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 1e-9, s / np.maximum(n, 1e-9), np.nan)
