"""Refinement and alignment: score every training window with a trained model, measure each clip's
own offset, and find the distance that separates positives from far negatives."""
from __future__ import annotations

import time

import numpy as np
import torch

from ..evidence import weighted_mean_curve, window_confidence
from ..features import COLS_PER_FRAME
from ..model import SyncNet
from .data import MAX_SHIFT, ClipData
from .evaluate import clip_distance_curves

ALIGN_MIN_WINDOWS = 10
"""A clip with fewer usable windows keeps its alignment: too little evidence to move it."""


def clip_alignment(curves: np.ndarray, max_cols: int, min_windows: int = ALIGN_MIN_WINDOWS) -> int | None:
    """A clip's own audio offset in columns (``t_audio − t_video``) from its windows' distance
    curves (``(n, 2·MAX_SHIFT+1)``, ``inf`` outside the audio): the arg-min, within ±``max_cols``,
    of the windows' confidence-weighted mean curve (confidence = median − min of the window's
    own curve, so silent windows count little). Only shifts that at least half of the windows
    can reach are compared: short clips see few shifts. 0 with fewer than ``min_windows``
    windows; None when the minimum lies on the edge of the range (the clip's offset is larger
    than the range, or the clip has no sync signal)."""
    n, S = curves.shape
    if n < min_windows:
        return 0
    ms = (S - 1) // 2
    _arg, conf, _mn, _usable = window_confidence(curves, min_valid=0.0)
    ok = np.isfinite(curves)
    mean = weighted_mean_curve(np.where(ok, curves, 0.0), conf, ok)
    shifts = np.arange(-ms, ms + 1)
    usable = (np.abs(shifts) <= max_cols) & (ok.sum(0) * 2 >= n) & np.isfinite(mean)
    if not usable.any():
        return 0
    k = int(shifts[np.argmin(np.where(usable, mean, np.inf))])
    reach = shifts[usable]
    if k <= reach.min() + 1 or k >= reach.max() - 1:  # on the edge: the true minimum may lie beyond
        return None
    return k


@torch.no_grad()
def score_training_windows(model: SyncNet, clips: list[ClipData], far_min: int = 10 * COLS_PER_FRAME,
                           log=print, align_cols: int = 0) -> tuple[list[np.ndarray], np.ndarray, list[int | None]]:
    """Positive distance of every usable training window, a sample of far-negative distances
    (``far_min`` columns or more from the positive, valid ones) for the threshold, and each
    clip's alignment. With ``align_cols`` > 0 the alignment is measured (:func:`clip_alignment`)
    and the positives are taken at it; otherwise it is the clip's current one."""
    pos, negs, offsets = [], [], []
    t0 = time.time()
    shifts = np.arange(-MAX_SHIFT, MAX_SHIFT + 1)
    for k, c in enumerate(clips):
        if c.windows.size == 0:
            pos.append(np.zeros(0, np.float32))
            offsets.append(c.offset)
            continue
        cur = clip_distance_curves(model, c.crops, c.mfcc, c.windows)
        off = clip_alignment(cur, align_cols) if align_cols > 0 else c.offset
        offsets.append(off)
        at = 0 if off is None else off
        pos.append(cur[:, MAX_SHIFT + at].copy())
        far = cur[:, np.abs(shifts - at) >= far_min]
        negs.append(far[np.isfinite(far)][::7])
        if (k + 1) % 200 == 0:
            log(f"  scored {k + 1}/{len(clips)} clips, {time.time() - t0:.0f}s", flush=True)
    return pos, np.concatenate(negs) if negs else np.zeros(0, np.float32), offsets


def refinement_threshold(pos: np.ndarray, neg: np.ndarray) -> float:
    """Distance that best separates positives from far negatives: arg-max of
    P(d_pos ≤ t) − P(d_neg ≤ t) (Youden's J; the Bayes threshold for equal priors)."""
    ts = np.linspace(0, 2, 801)
    cp = np.searchsorted(np.sort(pos), ts, side="right") / max(1, pos.size)
    cn = np.searchsorted(np.sort(neg), ts, side="right") / max(1, neg.size)
    return float(ts[np.argmax(cp - cn)])
