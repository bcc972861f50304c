#!/usr/bin/env python3
"""Where to put the clip-confidence threshold of ``measure_sync`` (``MIN_CLIP_CONFIDENCE``).

The threshold separates "this video has lip-sync evidence" from "it has none" (no speech, a
face that is not the speaker, dubbed audio). Its null distribution is easy to make without any
labels: a clip's mouth video against the audio of *another* clip (another person) has no sync
at any shift. This script measures the clip confidence of such mismatched pairs, and of the true
pairs, on training-cache clips (``speakerid.train.cache`` .npz files: not the benchmark), and
prints percentiles. The threshold is set just above the mismatched pairs' 99th percentile.

Usage::

    nice -n 15 python benchmarks/calibrate_sync.py [--cache /work/cache/train] [--weights PT]
        [--per-group 12] [--seconds 3]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    import torch

    from speakerid.model import Embedder, resolve_model
    from speakerid.evidence import aggregate_windows, window_distances
    from speakerid.sync import MIN_CLIP_CONFIDENCE, audio_embeddings
    from speakerid.train.cache import load_clip, usable_windows

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=Path("/work/cache/train"))
    ap.add_argument("--weights")
    ap.add_argument("--per-group", type=int, default=12)
    ap.add_argument("--seconds", type=float, default=3.0, help="use this much of each clip (the bench's short end)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    model = resolve_model(args.weights)
    emb = Embedder(model)
    rng = np.random.default_rng(args.seed)
    clips = []
    for g in sorted(p for p in args.cache.iterdir() if p.is_dir()):
        files = sorted(g.rglob("*.npz"))
        for f in rng.permutation(len(files))[: args.per_group]:
            clips.append(files[int(f)])
    shifts = np.arange(-100, 101)
    shifts_ms = shifts * 10.0
    n_frames = int(args.seconds * 25)
    data = []
    for f in clips:
        try:
            c = load_clip(f)
        except Exception as e:  # noqa: BLE001 - a damaged cache file is skipped, not fatal
            print(f"skip {f}: {e}", file=sys.stderr)
            continue
        w = usable_windows(c)
        w = w[w + 5 <= n_frames]
        if w.size < 20:
            continue
        v = emb.video(c.crops, w)
        a = audio_embeddings(model, c.mfcc[:, : n_frames * 4])
        data.append((f, w, v, a))
    true_c, null_c, true_off = [], [], []
    for i, (f, w, v, a) in enumerate(data):
        agg = aggregate_windows(window_distances(w, v, a, shifts), shifts_ms)
        true_c.append(agg.confidence)
        true_off.append(agg.offset_ms)
        j = (i + 1 + int(rng.integers(len(data) - 1))) % len(data)
        other = data[j][3]
        aggn = aggregate_windows(window_distances(w, v, other, shifts), shifts_ms)
        null_c.append(aggn.confidence)
    t, n = np.array(true_c), np.array(null_c)
    offs = np.array([np.nan if o is None else o for o in true_off])
    res = {"model": getattr(model, "fingerprint", ""), "clips": len(data), "seconds": args.seconds,
           "true": {q: float(np.percentile(t, q)) for q in (1, 5, 10, 50)},
           "null": {q: float(np.percentile(n, q)) for q in (50, 90, 95, 99, 100)},
           "true_abs_offset_le_40ms": float(np.mean(np.abs(offs) <= 40)),
           "current_threshold": MIN_CLIP_CONFIDENCE,
           "true_rejected_at_current": float(np.mean(t < MIN_CLIP_CONFIDENCE)),
           "null_accepted_at_current": float(np.mean(n >= MIN_CLIP_CONFIDENCE))}
    print(json.dumps(res, indent=1))
    if args.out:
        args.out.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
