#!/usr/bin/env python3
"""Does a turn-model bias that follows each video's own evidence level hold more speech in noise?

In noise a speaking face's calibrated score falls (its sync evidence shrinks against the same
null), so with the fixed bias (``decoding.HMM_BIAS``, the score at which speaking and not are
equally likely) the faces talking in a noisy room are labelled silent. A bias that follows the
video: ``clip(0.5 · quantile_q(all scored faces' calibrated scores), b_min, HMM_BIAS)``, the
midpoint between the null (0) and the video's speaking level, never above the default and never
below ``b_min``. Clean videos keep the default (their speaking level is high); in noise the
bias falls with the evidence.

The rule, written before any run: the variant (q, b_min) with the highest mean F1 over the
tuning group's conditions (sets tuning_25fps and tuning_offscreen; clean, 10, 5 and 0 dB of
babble made of the lrc_ar training voices; AP breaks ties) is checked once on the final group
(final_25fps and final_offscreen; babble made of the tuning group's voices, the people in no
final composite). It is adopted only if there (a) the mean F1 over the 5 and 0 dB conditions
rises by at least 0.02 over the default, and (b) in no condition does a set's AP fall by more
than 0.005, nor the clean F1 by more than 0.005. Off-screen-voice figures are reported beside.

    python benchmarks/sweep_noise_bias.py --tuning VAL/tuning_25fps VAL/tuning_offscreen \
        --final VAL/final_25fps VAL/final_offscreen --final-babble FILE... [--out F.json]

Faces are analysed once per composite; each condition is scored once; only the decoding runs
again for each variant.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import pickle
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_asd import match_item, metrics, offscreen_figures, offscreen_frames, reported_offscreen  # noqa: E402
from bench_noise import make_babble, mix  # noqa: E402
from calibrate_segments import composite_inputs  # noqa: E402

QUANTILES = (0.8, 0.9, 0.95)
BIAS_FLOORS = (0.25, 0.5, 0.75, 1.0)


def video_bias(z: list[np.ndarray], q: float, b_min: float, default: float) -> float:
    """The bias for one video: half its speaking level (the q-quantile of every scored face's
    finite calibrated scores), between ``b_min`` and ``default``."""
    v = np.concatenate([np.asarray(x, np.float64).ravel() for x in z]) if z else np.zeros(0)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return default
    return float(np.clip(0.5 * np.quantile(v, q), b_min, default))


def scored(sets: list[Path], snrs: list[float], babble: np.ndarray, model, keep: Path | None = None) -> dict:
    """{(set, snr): [(SpeakerResult, labels)]}: each composite's faces analysed once, its audio
    with babble mixed in scored once per SNR (the same mixing as bench_noise.py). ``keep``: a
    pickle of the answer, read instead of scoring when it exists."""
    if keep is not None and keep.exists():
        return pickle.loads(keep.read_bytes())
    from speakerid.speakers import score_faces

    out = {}
    for d in sets:
        labels = json.loads((d / "labels.json").read_text())["items"]
        for i, name in enumerate(sorted(labels)):
            fa, audio = composite_inputs(d, name, model, None)
            for snr in snrs:
                res = score_faces(fa, mix(audio, babble, snr, at=i * 7919), model)
                out.setdefault((d.name, snr), []).append((res, labels[name]))
            print(f"  {d.name}/{name} scored at {len(snrs)} SNRs", flush=True)
    if keep is not None:
        keep.write_bytes(pickle.dumps(out))
    return out


def decode(items, q: float | None, b_min: float) -> dict:
    """Figures of one condition's composites decoded with the default bias (``q`` None) or the
    video's own (``video_bias``)."""
    from speakerid.decoding import HMM_BIAS, speaking_posteriors

    per, rep, off = [], [], []
    for res, lab in items:
        tracks = [t for t in res.tracks if t.offset_ms is not None]
        z = [res.diagnostics["calibrated"][t.id] for t in tracks]
        bias = HMM_BIAS if q is None else video_bias(z, q, b_min, HMM_BIAS)
        post = speaking_posteriors([t.frames for t in tracks], z, res.num_frames, res.fps, bias=bias)
        for t, p in zip(tracks, post, strict=True):
            t.scores = p
        res.relabel()
        per.append(match_item(res, lab["frames"]))
        rep.append(reported_offscreen(res, len(lab["frames"])))
        off.append(offscreen_frames(lab))
    m = metrics(per)
    m.update(offscreen_figures(per, off, rep))
    return m


def table(conds: dict, q, b_min) -> dict:
    return {f"{s}@{snr:g}": decode(items, q, b_min) for (s, snr), items in conds.items()}


def mean_of(figs: dict, key: str, snrs=None) -> float:
    return float(np.mean([m[key] for c, m in figs.items() if snrs is None or float(c.split("@")[1]) in snrs]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tuning", nargs="+", type=Path, required=True)
    ap.add_argument("--final", nargs="+", type=Path, required=True)
    ap.add_argument("--final-babble", nargs="+", type=Path, required=True,
                    help="media files whose speech makes the final group's babble (the tuning group's clips)")
    ap.add_argument("--snr", nargs="+", type=float, default=[math.inf, 10.0, 5.0, 0.0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--keep", type=Path, help="folder for the scored conditions (read back when there)")
    a = ap.parse_args(argv)
    from speakerid.model import load_model

    t0 = time.perf_counter()
    model = load_model()
    tuning = scored(a.tuning, a.snr, make_babble(60.0), model, a.keep and a.keep / "tuning.pkl")
    variants = [(None, 0.0)] + list(itertools.product(QUANTILES, BIAS_FLOORS))
    grid = []
    for q, b_min in variants:
        figs = table(tuning, q, b_min)
        grid.append({"q": q, "b_min": b_min, "f1": mean_of(figs, "f1"), "ap": mean_of(figs, "ap"), "conditions": figs})
        print(f"tuning, q {q} b_min {b_min}: mean F1 {grid[-1]['f1']:.4f} AP {grid[-1]['ap']:.4f}", flush=True)
    best = max(grid[1:], key=lambda g: (round(g["f1"], 4), g["ap"]))
    print(f"chosen on the tuning group: q {best['q']} b_min {best['b_min']}")

    final = scored(a.final, a.snr, make_babble(60.0, files=a.final_babble), model, a.keep and a.keep / "final.pkl")
    check = {"default": table(final, None, 0.0), "chosen": table(final, best["q"], best["b_min"])}
    noisy = {5.0, 0.0}
    gain = mean_of(check["chosen"], "f1", noisy) - mean_of(check["default"], "f1", noisy)
    worst_ap = min(check["chosen"][c]["ap"] - check["default"][c]["ap"] for c in check["default"])
    worst_clean_f1 = min(check["chosen"][c]["f1"] - check["default"][c]["f1"] for c in check["default"]
                         if math.isinf(float(c.split("@")[1])))
    adopt = gain >= 0.02 and worst_ap >= -0.005 and worst_clean_f1 >= -0.005
    print("\n| condition | default AP / F1 / recall / off-screen reported | chosen AP / F1 / recall / off-screen reported |")
    print("|---|---|---|")
    for c in check["default"]:
        d, b = check["default"][c], check["chosen"][c]

        def f(m):
            o = "–" if m.get("offscreen_reported") is None else f"{m['offscreen_reported']:.3f}"
            return f"{m['ap']:.3f} / {m['f1']:.3f} / {m['recall']:.3f} / {o}"
        print(f"| {c} | {f(d)} | {f(b)} |")
    print(f"\nfinal group: mean F1 at 5 and 0 dB {gain:+.4f}; worst AP change {worst_ap:+.4f}; "
          f"worst clean F1 change {worst_clean_f1:+.4f} -> {'adopt' if adopt else 'keep the default'}")
    print(f"{time.perf_counter() - t0:.0f} s")
    if a.out:
        a.out.write_text(json.dumps({"grid": grid, "chosen": {"q": best["q"], "b_min": best["b_min"]},
                                     "final": check, "final_noisy_f1_gain": gain, "final_worst_ap_change": worst_ap,
                                     "final_worst_clean_f1_change": worst_clean_f1, "adopt": adopt},
                                    indent=1, default=lambda v: None if isinstance(v, float) and math.isinf(v) else v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
