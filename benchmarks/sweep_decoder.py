#!/usr/bin/env python3
"""The turn model's settings (scale, bias, switches per second) chosen on the tuning group's
validation sets and checked, once, on the final group's.

The rule, fixed before looking: the setting with the highest mean AP over the tuning group's sets
(mean F1 breaks ties) replaces the default only if, on the final group's sets, neither its mean
AP nor its mean F1 is below the default's.

    python benchmarks/sweep_decoder.py --tuning SET... --final SET... --faces-cache DIR [--out F.json]

(``--faces-cache``: bench_asd.py's cache of face analyses, one folder per set.) The faces are
scored once per composite; only the decoding runs again for each setting.
"""
from __future__ import annotations

import argparse
import itertools
import json
import pickle
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_asd import match_item, metrics  # noqa: E402

SCALES = (0.35, 0.5, 0.7)
BIASES = (0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
SWITCHES = (0.15, 0.25, 0.4)


def scored(sets: list[Path], cache: Path, model) -> dict:
    from speakerid.speakers import score_faces

    out = {}
    for d in sets:
        labels = json.loads((d / "labels.json").read_text())["items"]
        items = []
        for name, lab in sorted(labels.items()):
            fa, audio, _ = pickle.loads((cache / d.name / f"{name}.d3.stable.pkl").read_bytes())
            items.append((score_faces(fa, audio, model), lab))
        out[d.name] = items
    return out


def decode(items, scale: float, bias: float, switch: float) -> dict:
    from speakerid.decoding import speaking_posteriors

    per = []
    for res, lab in items:
        tracks = [t for t in res.tracks if t.offset_ms is not None]
        z = [res.diagnostics["calibrated"][t.id] for t in tracks]
        post = speaking_posteriors([t.frames for t in tracks], z, res.num_frames, res.fps, scale=scale, bias=bias,
                                   switch_per_s=switch)
        for t, p in zip(tracks, post, strict=True):
            t.scores = p
        res.relabel()
        per.append(match_item(res, lab["frames"]))
    return metrics(per)


def group_arguments(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of a choice made on the tuning group and checked on the final group."""
    ap.add_argument("--tuning", nargs="+", type=Path, required=True, help="the tuning group's validation sets")
    ap.add_argument("--final", nargs="+", type=Path, required=True, help="the final group's, read once at the end")
    ap.add_argument("--faces-cache", type=Path, required=True, help="bench_asd.py's cache (one folder per set)")
    ap.add_argument("--out", type=Path, help="write the figures as JSON here")
    return ap


def main(argv=None) -> int:
    a = group_arguments(argparse.ArgumentParser(description=__doc__.split("\n\n")[0])).parse_args(argv)
    from speakerid.decoding import HMM_BIAS, HMM_SCALE, HMM_SWITCH_PER_S
    from speakerid.model import load_model

    model = load_model()
    tuning = scored(a.tuning, a.faces_cache, model)
    grid = []
    for scale, bias, switch in itertools.product(SCALES, BIASES, SWITCHES):
        ms = {name: decode(items, scale, bias, switch) for name, items in tuning.items()}
        grid.append({"scale": scale, "bias": bias, "switch_per_s": switch,
                     "ap": float(np.mean([m["ap"] for m in ms.values()])),
                     "f1": float(np.mean([m["f1"] for m in ms.values()])),
                     "top1": float(np.mean([m["top1"] for m in ms.values()])), "sets": ms})
    default = next(g for g in grid if (g["scale"], g["bias"], g["switch_per_s"]) == (HMM_SCALE, HMM_BIAS,
                                                                                     HMM_SWITCH_PER_S))
    best = max(grid, key=lambda g: (round(g["ap"], 4), g["f1"]))
    print(f"tuning group, default (scale {HMM_SCALE}, bias {HMM_BIAS}, switch {HMM_SWITCH_PER_S}): AP {default['ap']:.3f} "
          f"F1 {default['f1']:.3f} top-1 {default['top1']:.3f}")
    print(f"tuning group, best (scale {best['scale']}, bias {best['bias']}, switch {best['switch_per_s']}): "
          f"AP {best['ap']:.3f} F1 {best['f1']:.3f} top-1 {best['top1']:.3f}")
    final = scored(a.final, a.faces_cache, model)
    check = {}
    for label, g in (("default", default), ("best", best)):
        ms = {name: decode(items, g["scale"], g["bias"], g["switch_per_s"]) for name, items in final.items()}
        check[label] = {"ap": float(np.mean([m["ap"] for m in ms.values()])),
                        "f1": float(np.mean([m["f1"] for m in ms.values()])),
                        "top1": float(np.mean([m["top1"] for m in ms.values()])), "sets": ms}
        print(f"final group, {label}: AP {check[label]['ap']:.3f} F1 {check[label]['f1']:.3f} "
              f"top-1 {check[label]['top1']:.3f}")
    adopt = best is not default and check["best"]["ap"] >= check["default"]["ap"] and \
        check["best"]["f1"] >= check["default"]["f1"]
    print("adopt the best setting" if adopt else "keep the default")
    if a.out:
        a.out.write_text(json.dumps({"grid": [{k: v for k, v in g.items() if k != "sets"} for g in grid],
                                     "default": {k: v for k, v in default.items() if k != "sets"},
                                     "best": {k: v for k, v in best.items() if k != "sets"},
                                     "final": check, "adopt": adopt}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
