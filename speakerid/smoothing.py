"""Moving means over per-window or per-frame series, correct at every length.

``np.convolve(x, kernel, "same")`` returns ``max(len(x), len(kernel))`` values, so a series
shorter than the kernel (a passer-by's one-second face track) comes back the kernel's length.
These helpers always return one value per input value, the mean of what the window covers.
"""
from __future__ import annotations

import numpy as np


def centred_mean(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving mean of a 1-D series over ``width`` values (an even width reaches one
    further back than forward, as ``np.convolve(…, "same")`` does); near the ends, and for a
    series shorter than ``width``, the mean of the values the window covers. Same length as
    ``x`` (empty in, empty out)."""
    x = np.asarray(x, np.float64).reshape(-1)
    n = x.size
    width = max(1, int(width))
    if n == 0 or width == 1:
        return x.copy()
    back = width // 2            # values before i the window covers
    fwd = width - 1 - back       # values after i
    c = np.concatenate([[0.0], np.cumsum(x)])
    i = np.arange(n)
    lo = np.maximum(0, i - back)
    hi = np.minimum(n, i + fwd + 1)
    return (c[hi] - c[lo]) / (hi - lo)
