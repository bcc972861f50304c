#!/usr/bin/env python3
"""A learned decision on top of the evidence, against the turn model's hand-set emission.

The turn model (:mod:`speakerid.decoding`) reads a face's calibrated score ``z`` (averaged over
25 frames) as the log-likelihood ratio ``0.5 · (z − 1.25)`` of speaking against not. Here that
ratio is learned instead: a logistic regression per (face, frame) over

* the face's own calibrated score averaged over 7, 25 and 75 frames (short, default, long);
* the best other face's score at the same frame and the same widths (−3 where it is alone);
* whether the audio holds sound at that frame (the library's energy rule),

fitted on composites made only of the tuning group's people, with seeds no validation set uses
(``--train``). Its log-odds less the training prior's become the turn model's evidence, times a
``scale`` that undoes the counting of correlated frames as independent.

The rule, fixed before the final group is read: the feature set and scale with the highest mean
AP over the tuning group's validation sets (``--tuning``) are checked once on the final group's
(``--final``). They replace the hand-set emission only if the final group's mean AP rises by at
least 0.01, no set's AP falls by more than 0.005, and the mean F1 does not fall by more than
0.005.

    python benchmarks/fit_decision_model.py --train SET... --tuning SET... --final SET... \\
        --faces-cache DIR [--out F.json]

(``--faces-cache``: bench_asd.py's cache of face analyses, one folder per set.) Each composite is
scored once per width; the fits and decodings reuse those scores. The fitting composites were
made with ``make_validation_sets.py OUT --groups tuning --count 16 --seed-offset 100`` and
``--seed-offset 200`` (seeds 201–203 and 301–303; the validation sets use 101–103).
"""
from __future__ import annotations

import argparse
import copy
import itertools
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_asd import match_item, metrics  # noqa: E402
from calibrate_reliability import fit_logistic  # noqa: E402
from calibrate_segments import composite_inputs  # noqa: E402
from sweep_decoder import group_arguments  # noqa: E402

WIDTHS = (7, 25, 75)
ALONE = -3.0
"""The other-face feature where no other face is scored at that frame."""
FEATURES = ("own7", "other7", "own25", "other25", "own75", "other75", "sound")
CANDIDATES = {
    "widths": ("own7", "own25", "own75"),
    "widths+others": ("own7", "other7", "own25", "other25", "own75", "other75"),
    "widths+others+sound": FEATURES,
    "long+sound": ("own25", "own75", "sound"),
}
SCALES = (0.2, 0.35, 0.5)


def scored(sets: list[Path], cache: Path, model) -> list:
    """Per composite: the shipped result and the calibrated scores at each width."""
    from speakerid.speakers import score_faces

    out = []
    for d in sets:
        labels = json.loads((d / "labels.json").read_text())["items"]
        for name, lab in sorted(labels.items()):
            fa, audio = composite_inputs(d, name, model, cache)
            z = {w: score_faces(fa, audio, model, smooth_frames=w).diagnostics["calibrated"] for w in WIDTHS}
            out.append((d.name, score_faces(fa, audio, model), z, lab))
        print(f"scored {d.name}: {len(labels)} composites", flush=True)
    return out


def track_truth(track, lab: dict) -> np.ndarray:
    """Per frame of a track: whether the tile its box centre falls in is speaking."""
    frames = lab["frames"]
    f = np.asarray(track.frames)
    b = np.asarray(track.boxes, np.float64)
    cx, cy = b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2
    y = np.zeros(f.size, bool)
    for i in np.flatnonzero(f < len(frames)):
        for tile in frames[f[i]]:
            x0, y0, w, h = tile["box"]
            if x0 <= cx[i] < x0 + w and y0 <= cy[i] < y0 + h:
                y[i] = tile["speaking"]
    return y


def feature_rows(res, z: dict) -> list[tuple]:
    """``(track, features (frames, len(FEATURES)))`` for each scored track."""
    tracks = [t for t in res.tracks if t.offset_ms is not None]
    n = max(1, res.num_frames)
    out = []
    for t in tracks:
        f = np.clip(np.asarray(t.frames), 0, n - 1)
        cols = []
        for w in WIDTHS:
            other = np.full(n, np.nan)
            for u in tracks:
                if u.id != t.id:
                    g = np.clip(np.asarray(u.frames), 0, n - 1)
                    other[g] = np.fmax(other[g], np.asarray(z[w][u.id], np.float64))
            cols += [np.nan_to_num(np.asarray(z[w][t.id], np.float64)), np.nan_to_num(other[f], nan=ALONE)]
        cols.append(res.speech[f].astype(np.float64) if res.speech is not None else np.ones(f.size))
        out.append((t, np.stack(cols, 1)))
    return out


def fit(items: list, names: tuple) -> tuple[np.ndarray, float]:
    cols = [FEATURES.index(c) for c in names]
    xs, ys = [], []
    for _, res, z, lab in items:
        for t, x in feature_rows(res, z):
            xs.append(x[:, cols])
            ys.append(track_truth(t, lab))
    x, y = np.concatenate(xs), np.concatenate(ys).astype(np.float64)
    return fit_logistic(x, y, l2=1e-3 * y.size), float(y.mean())


def decode(items: list, model: tuple | None = None) -> dict:
    """Metrics per set: the shipped decoding (``model`` None) or the learned evidence."""
    from speakerid.decoding import speaking_posteriors

    per: dict[str, list] = {}
    for set_name, res, z, lab in items:
        if model is not None:
            names, coef, prior, scale = model
            cols = [FEATURES.index(c) for c in names]
            res = copy.deepcopy(res)
            rows = feature_rows(res, z)
            llr = [coef[0] + x[:, cols] @ coef[1:] - np.log(prior / (1 - prior)) for _, x in rows]
            post = speaking_posteriors([t.frames for t, _ in rows], llr, res.num_frames, res.fps, scale=scale,
                                       bias=0.0)
            for (t, _), p in zip(rows, post, strict=True):
                t.scores = np.where(np.isfinite(t.scores), p, np.nan).astype(np.float32)
            res.relabel()
        per.setdefault(set_name, []).append(match_item(res, lab["frames"]))
    return {k: metrics(v) for k, v in per.items()}


def summary(ms: dict) -> dict:
    return {"ap": float(np.mean([m["ap"] for m in ms.values()])), "f1": float(np.mean([m["f1"] for m in ms.values()])),
            "top1": float(np.mean([m["top1"] for m in ms.values()])),
            "sets": {k: {q: m[q] for q in ("ap", "f1", "top1")} for k, m in ms.items()}}


def line(label: str, s: dict) -> str:
    sets = "  ".join(f"{k}: {v['ap']:.3f}/{v['f1']:.3f}/{v['top1']:.3f}" for k, v in s["sets"].items())
    return f"{label:<32} AP {s['ap']:.4f} F1 {s['f1']:.4f} top-1 {s['top1']:.4f}   ({sets}; AP/F1/top-1)"


def main(argv=None) -> int:
    ap = group_arguments(argparse.ArgumentParser(description=__doc__.split("\n\n")[0]))
    ap.add_argument("--train", nargs="+", type=Path, required=True, help="composites to fit on (tuning-group people)")
    a = ap.parse_args(argv)
    from speakerid.model import load_model

    model = load_model()
    train = scored(a.train, a.faces_cache, model)
    tuning = scored(a.tuning, a.faces_cache, model)
    shipped = summary(decode(tuning))
    print(line("tuning group, shipped", shipped))
    grid = []
    for name, scale in itertools.product(CANDIDATES, SCALES):
        coef, prior = fit(train, CANDIDATES[name])
        s = summary(decode(tuning, (CANDIDATES[name], coef, prior, scale)))
        grid.append({"features": name, "scale": scale, "coef": coef.tolist(), "prior": prior, **s})
        print(line(f"tuning group, {name} × {scale}", s), flush=True)
    best = max(grid, key=lambda g: (round(g["ap"], 4), g["f1"]))
    print(f"chosen: {best['features']} × {best['scale']} (coefficients {np.round(best['coef'], 3).tolist()})")
    final = scored(a.final, a.faces_cache, model)
    f_shipped = summary(decode(final))
    f_best = summary(decode(final, (CANDIDATES[best["features"]], np.asarray(best["coef"]), best["prior"],
                                    best["scale"])))
    print(line("final group, shipped", f_shipped))
    print(line("final group, learned", f_best))
    worst = min(f_best["sets"][k]["ap"] - f_shipped["sets"][k]["ap"] for k in f_shipped["sets"])
    adopt = f_best["ap"] - f_shipped["ap"] >= 0.01 and worst >= -0.005 and f_best["f1"] - f_shipped["f1"] >= -0.005
    print(f"mean AP {f_best['ap'] - f_shipped['ap']:+.4f}, worst set {worst:+.4f}, mean F1 "
          f"{f_best['f1'] - f_shipped['f1']:+.4f}: {'adopt' if adopt else 'keep the hand-set emission'}")
    if a.out:
        a.out.write_text(json.dumps({"tuning_shipped": shipped, "grid": grid, "chosen": best,
                                     "final_shipped": f_shipped, "final_learned": f_best, "adopt": adopt}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
