"""Plots of results (matplotlib, imported only when a plot is made)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..outputs import atomic_output
from ..sync.results import SyncResult

PathLike = str | os.PathLike


def plot_sync(result: SyncResult, path: PathLike | None = None, *, max_curves: int = 200, overwrite: bool = True):
    """Figure: (top) distance vs audio shift — each window faint, the aggregate bold — and
    (bottom) each window's offset and confidence over time. Saved to ``path`` (PNG) when given."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, (ax0, ax1) = plt.subplots(2, 1, figsize=(9, 7), constrained_layout=True)
    x = result.shifts_ms
    wc = result.window_curves
    if wc.size:
        sel = np.linspace(0, wc.shape[0] - 1, min(max_curves, wc.shape[0])).astype(int)
        for i in sel:
            ax0.plot(x, wc[i] - np.nanmedian(wc[i]), color="0.6", lw=0.4, alpha=0.35)
    ax0.plot([], [], color="0.6", lw=0.6, label="one window")
    if result.offset_ms is not None:
        ax0.axvline(result.offset_ms, color="C3", ls="--", label=f"offset {result.offset_ms:+.0f} ms")
    elif result.candidate_ms is not None:
        ax0.axvline(result.candidate_ms, color="0.3", ls=":", label=f"weak arg-min {result.candidate_ms:+.0f} ms")
    ax0.set_xlabel("audio shift = offset candidate (ms; negative: audio leads)")
    ax0.set_ylabel("distance − window median")
    ax0.set_title(f"{Path(result.video).name}: {result.status}, confidence {result.confidence:.3f}")
    # the aggregate has its own scale (unit-depth curves for "curve_norm")
    axa = ax0.twinx()
    axa.plot(x, result.curve, color="C0", lw=2)
    axa.set_ylabel(f"aggregate ({result.aggregate})", color="C0")
    ax0.plot([], [], color="C0", lw=2, label=f"aggregate ({result.aggregate})")
    ax0.legend(loc="lower right", fontsize=8)
    w = result.windows
    if len(w):
        t = (w.start_s + w.end_s) / 2
        used = w.weight > 0
        ax1.scatter(t[~used], w.offset_ms[~used], s=8, color="0.7", label="window offset (dropped)")
        ax1.scatter(t[used], w.offset_ms[used], s=10, color="C0", label="window offset (used)")
        if result.offset_ms is not None:
            ax1.axhline(result.offset_ms, color="C3", ls="--", lw=1)
        for s in result.segments:
            if s.offset_ms is not None:
                ax1.hlines(s.offset_ms, s.start_s, s.end_s, color="C2", lw=2)
        ax1.set_ylabel("offset (ms)")
        ax1.set_ylim(-result.search_ms * 1.05, result.search_ms * 1.05)
        ax2 = ax1.twinx()
        ax2.plot(t, w.confidence, color="C1", lw=1, label="confidence")
        ax2.set_ylabel("confidence (median − min)", color="C1")
        ax1.legend(loc="upper left", fontsize=8)
    ax1.set_xlabel("time (s, source)")
    if path is not None:
        with atomic_output(path, protect=[result.video], overwrite=overwrite) as tmp:
            fig.savefig(tmp, dpi=100, format="png")
        plt.close(fig)
    return fig
