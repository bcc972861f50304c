#!/usr/bin/env python3
"""How far a speaking segment's probability can be taken at its word: per segment of
``detect_speakers`` (turn model), its ``probability`` against whether the face really speaks
there (at least half of the segment's frames labelled speaking for that face's tile), on
validation composites (``make_validation_sets.py``), per group of people.

    python benchmarks/calibrate_segments.py SET... [--faces-cache DIR] [--out F.json]
"""
from __future__ import annotations

import argparse
import json
import pickle
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def segment_truth(res, lab) -> list[tuple[float, bool, float, float]]:
    """(probability, right, seconds, mean posterior) per speaking segment: right when the track's
    tile is labelled speaking in at least half of the segment's frames. The mean posterior is
    the uncalibrated figure (results made before segments carried it give their probability)."""
    frames = lab["frames"]
    tiles = np.array([[t["box"] for t in fr] for fr in frames], np.float64)
    truth = np.array([[t["speaking"] for t in fr] for fr in frames], bool)
    by_id = {t.id: t for t in res.tracks}
    out = []
    for sg in res.segments:
        t = by_id[sg.track]
        f = np.asarray(t.frames)
        times = np.asarray(res.frame_times)[np.clip(f, 0, len(res.frame_times) - 1)]
        sel = (times >= sg.start - 1e-6) & (times < sg.end - 1e-6) & (f < len(frames))
        if not sel.any():
            continue
        fs, boxes = f[sel], np.asarray(t.boxes, np.float64)[sel]
        cx, cy = boxes[:, 0] + boxes[:, 2] / 2, boxes[:, 1] + boxes[:, 3] / 2
        tb = tiles[fs]
        inside = (cx[:, None] >= tb[:, :, 0]) & (cx[:, None] < tb[:, :, 0] + tb[:, :, 2]) & \
                 (cy[:, None] >= tb[:, :, 1]) & (cy[:, None] < tb[:, :, 1] + tb[:, :, 3])
        speaking = (inside & truth[fs]).any(1)
        raw = getattr(sg, "mean_posterior", None)
        out.append((float(sg.probability), bool(speaking.mean() >= 0.5), float(sg.end - sg.start),
                    float(sg.probability if raw is None else raw)))
    return out


def composite_inputs(d: Path, name: str, model, faces_cache: Path | None):
    """(face analysis, audio) of one composite: from bench_asd.py's cache when it holds it."""
    from speakerid.faces import analyze_faces
    from speakerid.media import read_audio

    cached = faces_cache / d.name / f"{name}.d3.stable.pkl" if faces_cache else None
    if cached is not None and cached.exists():
        fa, audio, _ = pickle.loads(cached.read_bytes())
        return fa, audio
    fa = analyze_faces(d / name, crop_geometry=model.config.crop_geometry)
    return fa, read_audio(d / name, video_start_s=fa.info.video_start_s)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sets", nargs="+", type=Path)
    ap.add_argument("--faces-cache", type=Path, help="bench_asd.py's cache of face analyses (one folder per set)")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    from speakerid.model import load_model
    from speakerid.speakers import score_faces

    model = load_model()
    rows = {}
    for d in a.sets:
        labels = json.loads((d / "labels.json").read_text())["items"]
        segs = []
        for name, lab in sorted(labels.items()):
            fa, audio = composite_inputs(d, name, model, a.faces_cache)
            segs += segment_truth(score_faces(fa, audio, model), lab)
        rows[d.name] = segs
    bins = [0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0001]
    report = {}
    for name, segs in rows.items():
        p = np.array([s[0] for s in segs])
        ok = np.array([s[1] for s in segs])
        table = []
        for lo, hi in zip(bins[:-1], bins[1:]):
            m = (p >= lo) & (p < hi)
            table.append({"from": lo, "to": min(hi, 1.0), "segments": int(m.sum()),
                          "mean_probability": float(p[m].mean()) if m.any() else None,
                          "right": float(ok[m].mean()) if m.any() else None})
        ece = float(sum(abs(t["mean_probability"] - t["right"]) * t["segments"] for t in table if t["segments"])
                    / max(1, len(segs)))
        report[name] = {"segments": len(segs), "right": float(ok.mean()) if segs else None, "ece": ece, "bins": table}
        print(f"{name}: {len(segs)} segments, {ok.mean():.3f} right, mean probability {p.mean():.3f}, ECE {ece:.3f}")
        for t in table:
            if t["segments"]:
                print(f"  p {t['from']:.2f}–{t['to']:.2f}: {t['segments']:3d} segments, mean p {t['mean_probability']:.3f}, "
                      f"right {t['right']:.3f}")
    if a.out:
        a.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
