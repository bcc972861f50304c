#!/usr/bin/env python3
"""Score smoothing that widens with the audio's noise: the variants on the tuning group, the
chosen one against the fixed width on the final group (docs/experiments.md, "Smoothing that
grows with the noise", holds the rule, written before the final group was scored).

Each composite's audio gets babble at each SNR (``bench_noise.mix``); its energy spread D (dB,
``speakers.noise.energy_spread_db``) sets the width: 25 frames from D_hi up, ``w_max`` from D_lo
down, linear between (``speakers.noise.smooth_frames_for``). Each condition is scored with
``noise_smoothing=False`` and the width set
explicitly, so the variants are compared on the same mixtures.

    python benchmarks/sweep_noise_smoothing.py --sets VAL/tuning_25fps VAL/tuning_offscreen \
        [--babble FILE...] [--variants 18:10:75,16:8:75,20:12:75,18:10:50] [--faces-cache DIR] [--out F.json]

Tuning group: the default babble (lrc_ar training voices). Final group: ``--babble`` with the
tuning group's clips and ``--variants`` the chosen one.
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
from bench_asd import match_item, metrics, offscreen_figures, offscreen_frames, reported_offscreen  # noqa: E402
from bench_noise import make_babble, mix  # noqa: E402
from calibrate_segments import composite_inputs  # noqa: E402

BASE_FRAMES = 25


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", nargs="+", type=Path, required=True)
    ap.add_argument("--babble", nargs="+", type=Path, default=None)
    ap.add_argument("--variants", default="18:10:75,16:8:75,20:12:75,18:10:50", help="D_hi:D_lo:w_max,...")
    ap.add_argument("--snr", nargs="+", type=float, default=[math.inf, 10.0, 5.0, 0.0])
    ap.add_argument("--faces-cache", type=Path, help="bench_asd.py's cache of face analyses (one folder per set)")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    from speakerid.model import load_model
    from speakerid.speakers import score_faces
    from speakerid.speakers.noise import FrameEnergyTap, energy_spread_db, smooth_frames_for

    model = load_model()
    babble = make_babble(60.0, files=a.babble)
    variants = [tuple(float(x) for x in v.split(":")) for v in a.variants.split(",")]
    out: dict = {}
    for d in a.sets:
        labels = json.loads((d / "labels.json").read_text())["items"]
        items = []
        for i, name in enumerate(sorted(labels)):
            fa, audio = composite_inputs(d, name, model, a.faces_cache)
            items.append((fa, audio, labels[name], i))
        for snr in a.snr:
            per = {v: ([], [], []) for v in [None, *variants]}
            for fa, audio, lab, i in items:
                x = mix(audio, babble, snr, at=i * 7919)
                tap = FrameEnergyTap([x])
                for _ in tap:
                    pass
                spread = energy_spread_db(tap.energies_db)
                done: dict[int, object] = {}
                for v in per:
                    w = BASE_FRAMES if v is None else smooth_frames_for(spread, BASE_FRAMES, clean_db=v[0],
                                                                        noisy_db=v[1], widest=int(v[2]))
                    if w not in done:
                        done[w] = score_faces(fa, x, model, smooth_frames=w, noise_smoothing=False)
                    res = done[w]
                    per[v][0].append(match_item(res, lab["frames"]))
                    per[v][1].append(reported_offscreen(res, len(lab["frames"])))
                    per[v][2].append(offscreen_frames(lab))
            for v, (p, r, o) in per.items():
                m = metrics(p)
                m.update(offscreen_figures(p, o, r))
                key = "fixed" if v is None else ":".join(f"{x:g}" for x in v)
                out.setdefault(key, {})[f"{d.name}@{snr:g}"] = m
                print(f"{d.name} {snr:g} dB {key}: AP {m['ap']:.4f} F1 {m['f1']:.3f} recall {m['recall']:.3f} "
                      f"off-screen reported {m.get('offscreen_reported')}", flush=True)
    print("\nmean AP over the conditions:")
    for key, conds in out.items():
        print(f"  {key}: {np.mean([m['ap'] for m in conds.values()]):.4f}")
    if a.out:
        a.out.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
