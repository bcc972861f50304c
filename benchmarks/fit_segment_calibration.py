#!/usr/bin/env python3
"""Fit a calibration of speaking-segment probabilities on the tuning group, check it on the final
group.

A segment's ``probability`` is its face's mean speaking posterior over the segment. On clean
composites it runs high (``calibrate_segments.py``: 0.85 is a coin toss), and too few segments
fell below 0.9 to fit anything. With babble mixed in (clean, 10, 5, 0 dB) the same composites
give segments across the whole range. The calibration is a logistic model of "the face really
speaks there" (at least half of the segment's frames, as in ``calibrate_segments.py``) on the
logit of the probability and the log of the segment's length.

Tuning group: babble of the lrc_ar training voices; final group: babble of the tuning group's
voices. The rule, written before the final group was looked at: the fitted map replaces the raw
probability only if, on the final group's segments of every set and SNR pooled, both its Brier
score and its expected calibration error (10 equal-width bins) are lower than the raw
probability's, and on the clean final segments alone its ECE is not higher by more than 0.01.

    python benchmarks/fit_segment_calibration.py --tuning VAL/tuning_* --final VAL/final_* \
        --final-babble FILE... [--keep DIR] [--out F.json]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_noise import make_babble  # noqa: E402
from calibrate_reliability import fit_logistic  # noqa: E402
from calibrate_segments import segment_truth  # noqa: E402
from sweep_noise_bias import scored  # noqa: E402

EPS = 1e-4


def rows(conds: dict) -> list[dict]:
    """One row per speaking segment: condition, mean posterior (the uncalibrated probability),
    right, seconds."""
    out = []
    for (s, snr), items in conds.items():
        for res, lab in items:
            for _p, right, sec, posterior in segment_truth(res, lab):
                out.append({"set": s, "snr": snr, "p": posterior, "right": right, "seconds": sec})
    return out


def features(r: list[dict]) -> np.ndarray:
    p = np.clip(np.array([x["p"] for x in r]), EPS, 1 - EPS)
    sec = np.array([x["seconds"] for x in r])
    return np.stack([np.log(p / (1 - p)), np.log(np.maximum(sec, 0.04))], 1)


def fit(r: list[dict]) -> np.ndarray:
    """[bias, logit(p), log(seconds)] by ``calibrate_reliability.fit_logistic``, with a ridge of
    1e-3 per segment on the weights (the intercept is not shrunk)."""
    y = np.array([x["right"] for x in r], float)
    return fit_logistic(features(r), y, l2=1e-3 * y.size, iters=100)


def predict(r: list[dict], w: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-(w[0] + features(r) @ w[1:])))


def calibration(p: np.ndarray, y: np.ndarray) -> dict:
    bins = np.minimum((p * 10).astype(int), 9)
    ece = sum(abs(p[bins == b].mean() - y[bins == b].mean()) * np.sum(bins == b) for b in range(10) if np.any(bins == b))
    return {"segments": int(y.size), "right": float(y.mean()), "mean_p": float(p.mean()),
            "brier": float(np.mean((p - y) ** 2)), "ece": float(ece / max(y.size, 1))}


def report(r: list[dict], w: np.ndarray) -> dict:
    y = np.array([x["right"] for x in r], float)
    raw = np.array([x["p"] for x in r])
    cal = predict(r, w)
    return {"raw": calibration(raw, y), "calibrated": calibration(cal, y)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tuning", nargs="+", type=Path, required=True)
    ap.add_argument("--final", nargs="+", type=Path, required=True)
    ap.add_argument("--final-babble", nargs="+", type=Path, required=True)
    ap.add_argument("--snr", nargs="+", type=float, default=[math.inf, 10.0, 5.0, 0.0])
    ap.add_argument("--keep", type=Path, help="folder for the scored conditions (read back when there)")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    from speakerid.model import load_model

    model = load_model()

    def group(sets, babble, tag):
        out = []
        for d in sets:
            keep = a.keep / f"{tag}_{d.name}.pkl" if a.keep else None
            out += rows(scored([d], a.snr, babble, model, keep))
        return out

    tuning = group(a.tuning, make_babble(60.0), "tuning")
    w = fit(tuning)
    print(f"fitted on {len(tuning)} tuning segments: bias {w[0]:.4f}, logit(p) {w[1]:.4f}, log(seconds) {w[2]:.4f}")
    res = {"coef": {"bias": float(w[0]), "logit_p": float(w[1]), "log_seconds": float(w[2])},
           "tuning": report(tuning, w)}
    final = group(a.final, make_babble(60.0, files=a.final_babble), "final")
    res["final"] = report(final, w)
    res["final_clean"] = report([x for x in final if math.isinf(x["snr"])], w)
    res["final_by_snr"] = {f"{s:g}": report([x for x in final if x["snr"] == s], w) for s in a.snr}
    for k in ("tuning", "final", "final_clean"):
        r, c = res[k]["raw"], res[k]["calibrated"]
        print(f"{k}: {r['segments']} segments, {r['right']:.3f} right; raw mean p {r['mean_p']:.3f} Brier {r['brier']:.4f} "
              f"ECE {r['ece']:.4f}; calibrated mean p {c['mean_p']:.3f} Brier {c['brier']:.4f} ECE {c['ece']:.4f}")
    f, fc = res["final"], res["final_clean"]
    adopt = (f["calibrated"]["brier"] < f["raw"]["brier"] and f["calibrated"]["ece"] < f["raw"]["ece"]
             and fc["calibrated"]["ece"] <= fc["raw"]["ece"] + 0.01)
    res["adopt"] = adopt
    print("adopt the calibration" if adopt else "keep the raw probability")
    if a.out:
        a.out.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
