"""Evaluation of a SyncNet on a cache of held-apart clips: single-window accuracy (absolute, and
relative to each source's own offset) and clip-level offsets of artificially shifted clips. The
distances and the clip aggregate are the library's own (:mod:`speakerid.evidence`)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..evidence import window_confidence, weighted_mean_curve, window_distances
from ..features import COLS_PER_FRAME, WINDOW_COLS
from ..model import Embedder, SyncNet
from .cache import load_clip
from .data import MAX_SHIFT, list_cache, require_geometry

def video_embeddings(model: SyncNet, crops: np.ndarray, starts: np.ndarray, batch: int = 256) -> np.ndarray:
    """Embeddings of the video windows starting at ``starts`` → ``(n, D)`` float32."""
    model.eval()
    return Embedder(model, batch_size=batch).video(crops, starts)


@torch.no_grad()
def clip_distance_curves(model: SyncNet, crops: np.ndarray, mfcc: np.ndarray, starts: np.ndarray,
                         max_shift: int = MAX_SHIFT, batch: int = 256, video: np.ndarray | None = None) -> np.ndarray:
    """Distances of video windows ``starts`` to the audio at every shift in ±max_shift columns
    → ``(n, 2·max_shift+1)``, ``inf`` where the shifted window leaves the audio
    (:func:`speakerid.evidence.window_distances`). ``mfcc``: the whole clip's, already through
    ``model.prepare_mfcc``. ``video``: the windows' embeddings when already computed."""
    model.eval()
    n = starts.size
    if n == 0 or mfcc.shape[1] < WINDOW_COLS:
        return np.full((n, 2 * max_shift + 1), np.inf, np.float32)
    if video is None:
        video = video_embeddings(model, crops, starts, batch)
    audio = Embedder(model, batch_size=batch).sequence(mfcc, prepared=True)  # (T − 19, D)
    d = window_distances(np.asarray(starts, np.int64), video, audio, np.arange(-max_shift, max_shift + 1), chunk=batch)
    d[np.isnan(d)] = np.inf
    return d


NEAR_SEARCH_COLS = 20
"""±200 ms: the diagnostic narrow search of :func:`single_window_accuracy`."""


def single_window_accuracy(curves: np.ndarray, full_only: bool = True) -> dict:
    """Share of windows whose arg-min shift is within ±1 video frame of the truth (0),
    over 10 ms steps and over 40 ms (one-frame) steps.

    Diagnostics beside them (frame steps): ``far_error_share``, the share of windows whose
    arg-min lies beyond ±200 ms (a far shift's audio fits the mouth better than the true one),
    and ``acc_frame_near``, the accuracy when the search is only ±200 ms."""
    S = curves.shape[1]
    ms = (S - 1) // 2
    shifts = np.arange(-ms, ms + 1)
    if full_only:
        curves = curves[np.isfinite(curves).all(1)]
    if curves.shape[0] == 0:
        return {"windows": 0, "acc_10ms": float("nan"), "acc_frame": float("nan")}
    a10 = shifts[curves.argmin(1)]
    fr = (shifts % COLS_PER_FRAME) == 0
    af = shifts[fr][curves[:, fr].argmin(1)]
    near = fr & (np.abs(shifts) <= NEAR_SEARCH_COLS)
    an = shifts[near][curves[:, near].argmin(1)]
    return {"windows": int(curves.shape[0]), "acc_10ms": float((np.abs(a10) <= COLS_PER_FRAME).mean()),
            "acc_frame": float((np.abs(af) <= COLS_PER_FRAME).mean()),
            "far_error_share": float((np.abs(af) > NEAR_SEARCH_COLS).mean()),
            "acc_frame_near": float((np.abs(an) <= COLS_PER_FRAME).mean())}


def aggregate_offset(curves: np.ndarray) -> tuple[int, float]:
    """Confidence-weighted clip offset (columns) from per-window curves: each window's curve is
    weighted by its confidence (median − min distance), the weighted mean curve's arg-min wins;
    shifts seen by fewer than half as many windows as the best-seen shift are not searched.
    Also the windows' mean confidence."""
    _arg, conf, _mn, _usable = window_confidence(curves, min_valid=0.0)
    ok = np.isfinite(curves)
    mean = weighted_mean_curve(np.where(ok, curves, 0.0), conf, ok)
    seen = ok.sum(0)
    mean[seen < max(3, 0.5 * seen.max())] = np.nan
    k = int(np.argmin(np.where(np.isnan(mean), np.inf, mean)))
    return k - (curves.shape[1] - 1) // 2, float(conf.mean())


CLIP_OFFSETS_MS = (-400, -200, -120, -80, -40, 0, 40, 80, 120, 200, 400)


def shift_mfcc(mfcc: np.ndarray, offset_cols: int, fill: np.ndarray) -> np.ndarray:
    """MFCC of the same clip with its audio delayed by ``offset_cols`` (offset_ms = 10·cols:
    positive = audio lags the video)."""
    T = mfcc.shape[1]
    out = np.repeat(fill[:, None], T, 1).astype(np.float32)
    if abs(offset_cols) >= T:  # shifted wholly out of the clip
        return out
    if offset_cols >= 0:
        out[:, offset_cols:] = mfcc[:, :T - offset_cols]
    else:
        out[:, :T + offset_cols] = mfcc[:, -offset_cols:]
    return out


def evaluate(model: SyncNet, cache_dir: str | os.PathLike, split: str = "eval", log=print,
             clip_level: bool = True) -> dict:
    """Single-window accuracy and the cache-level clip offset check on ``cache_dir/<split>``."""
    from .cache import usable_windows

    paths = list_cache(cache_dir, split)
    curves_all, per_group = [], {}
    clip_rows = []
    for p in paths:
        c = load_clip(p)
        require_geometry(c, model.config.crop_geometry)
        w = usable_windows(c)
        if w.size == 0:
            continue
        # audio outside the clip after an artificial shift: the clip's mean (raw MFCC space)
        fill = c.mfcc.mean(1) if model.config.cmn_cols else model.mfcc_mean.float().cpu().numpy()
        vemb = video_embeddings(model, c.crops, w)
        cur = clip_distance_curves(model, c.crops, model.prepare_mfcc(c.mfcc), w, video=vemb)
        curves_all.append(cur)
        src = Path(p).stem
        per_group.setdefault(_eval_source(src), []).append(cur)
        if clip_level:
            for off in CLIP_OFFSETS_MS:
                m2 = model.prepare_mfcc(shift_mfcc(c.mfcc, off // 10, fill))
                cc = clip_distance_curves(model, c.crops, m2, w, video=vemb)
                est, conf = aggregate_offset(cc)
                clip_rows.append({"clip": src, "offset_ms": off, "est_ms": est * 10, "conf": conf})
    if not curves_all:
        return {"windows": 0}
    res = {"split": split, "clips": len(curves_all)}
    res.update(single_window_accuracy(np.concatenate(curves_all)))
    res["by_source"] = {k: single_window_accuracy(np.concatenate(v)) for k, v in sorted(per_group.items())}
    res.update(relative_accuracy(per_group))
    if clip_rows:
        err = np.array([abs(r["est_ms"] - r["offset_ms"]) for r in clip_rows])
        res["clip_level"] = {"n": len(clip_rows), "within_40ms": float((err <= 40).mean()),
                             "within_80ms": float((err <= 80).mean()), "mae_ms": float(err.mean())}
        res["clip_level_rows"] = clip_rows
    return res


def _eval_source(stem: str) -> str:
    """Source family of an eval clip (from its file name), for per-source figures."""
    s = stem.lower()
    if "grid" in s or "vcd" in s:
        return "grid"
    if "misc_audio_source" in s:
        return "misc_audio_source"
    if "__id0" in s:
        return "voxceleb"
    if "wda_" in s or "rd_radio" in s:
        return "hdtf"
    return "other"


def relative_accuracy(curves_by_source: dict[str, list[np.ndarray]]) -> dict:
    """Single-window accuracy after removing each source's own offset: the median over that
    source's clips of the clip-level estimate (confidence-weighted aggregate) of the unshifted
    clip. Some eval sources are not in sync themselves (see docs/model.md)."""
    out, offsets, hits, n = {}, {}, 0, 0
    for src, curves in sorted(curves_by_source.items()):
        est = [aggregate_offset(c)[0] for c in curves if np.isfinite(c).any()]
        off = int(np.median(est)) if est else 0
        offsets[src] = off * 10
        allc = np.concatenate(curves)
        allc = allc[np.isfinite(allc).all(1)]
        if allc.shape[0] == 0:
            continue
        ms = (allc.shape[1] - 1) // 2
        am = allc.argmin(1) - ms
        ok = np.abs(am - off) <= COLS_PER_FRAME
        out[src] = float(ok.mean())
        hits += int(ok.sum())
        n += ok.size
    return {"acc_10ms_relative": hits / max(1, n), "by_source_relative": out, "source_offsets_ms": offsets}
