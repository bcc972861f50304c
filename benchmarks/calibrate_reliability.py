#!/usr/bin/env python3
"""Calibrate ``SyncResult.p_correct`` / ``reliable`` (speakerid/reliability.py) on shifted clips.

The eval people are split by identity into a **tuning group** (the logistic model and the
reliable threshold are fitted on it) and a **final group** (never fitted on; its figures are
the ones to quote). Each eval clip is cut to 3 s, 5 s and its full length (from its start),
re-encoded once, its faces analysed once, and copies with the audio shifted by known offsets
(±700 ms, seeded) are measured with the shipped pipeline (``measure_sync(copy, analysis=…)``:
the copies share the cut's video stream bit for bit). An answer is right when it is within
±40 ms of the truth after the clip's own offset (the median error over its copies).

Usage::

    python benchmarks/calibrate_reliability.py --rows /tmp/reliability_rows.json   # measure (≈10 min)
    python benchmarks/calibrate_reliability.py --rows /tmp/reliability_rows.json --fit-only
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
EVAL = HERE.parent.parent / "shared" / "data" / "eval"

FINAL_GROUP = {"WDA_AlexandriaOcasioCortez", "RD_Radio2", "May_5s", "face__3", "id06913",
               "misc_Audio_Source_00086", "misc_Audio_Source_00373", "misc_Audio_Source_741400104"}
"""Identities whose clips are never fitted on (8 of the 22 eval clips; every GRID clip is in the
tuning group, since they may share speakers)."""


def identity(name: str) -> str:
    if "__GRID__" in name:
        return "GRID"
    for key in ("WDA_KatieHill", "WDA_AlexandriaOcasioCortez", "RD_Radio2", "May_5s", "face__3", "id04030",
                "id06913", "id2_vcd"):
        if key in name:
            return key
    m = re.search(r"misc_Audio_Source_\d+", name)
    return m.group(0) if m else Path(name).stem


def _tiled(a: np.ndarray, n: int) -> np.ndarray:
    return np.tile(a, n // max(a.size, 1) + 1)[:n].astype(np.float32)


def measure(args) -> list[dict]:
    """Every measurement: per clip and length, ``per_length`` clean shifted copies, ``noisy``
    shifted copies under another person's speech, ``mismatched`` copies with another person's
    speech alone."""
    from speakerid.faces import analyze_faces
    from speakerid.media import NativeAudio, iter_frames, probe, read_audio, remux_with_audio, shift_audio_pieces, write_video
    from speakerid.model import load_model
    from speakerid.sync import measure_sync, shift_sync

    model = load_model(device="cpu")
    rng = np.random.default_rng(args.seed)
    rows = []
    clips = sorted(EVAL.glob("*.mp4"))
    audios = {c.name: read_audio(c) for c in clips}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)

        def with_audio(cut: Path, fa, samples: np.ndarray, name: str):
            """``cut``'s video stream (copied: its face analysis holds) with ``samples`` (16 kHz)."""
            p = tmp / name
            remux_with_audio(cut, p, NativeAudio(samples=samples[None], sample_rate=16000, layout="mono",
                                                 video_start_s=0.0))
            try:
                return measure_sync(p, model=model, analysis=fa)
            finally:
                p.unlink()

        for ci, clip in enumerate(clips):
            info = probe(clip)
            frames = [f.image for f in iter_frames(clip)]
            audio = audios[clip.name]
            full = len(frames) / info.fps
            others = [c for c in clips if identity(c.name) != identity(clip.name)]

            def row(length, r, **extra):
                return {"clip": clip.name, "identity": identity(clip.name),
                        "group": "final" if identity(clip.name) in FINAL_GROUP else "tuning",
                        "length_s": round(length, 2), **extra, "offset_ms": r.offset_ms,
                        "candidate_ms": r.candidate_ms, "status": r.status, "evidence": r.evidence}

            for length in sorted({min(3.0, full), min(5.0, full), full}):
                need = int(round(length * 16000))
                cut = tmp / f"cut_{ci}_{length:.1f}.mp4"
                write_video(cut, frames[: int(round(length * info.fps))], info.fps, audio=audio[:need])
                fa = analyze_faces(cut, crop_geometry=model.config.crop_geometry)
                for k in range(args.per_length):
                    truth = float(rng.integers(-70, 71) * 10)
                    shifted = tmp / f"shift_{ci}_{length:.1f}_{k}.mp4"
                    shift_sync(cut, shifted, truth, overwrite=True)
                    rows.append(row(length, measure_sync(shifted, model=model, analysis=fa), truth_ms=truth))
                    shifted.unlink()
                print(f"[{ci + 1}/{len(clips)}] {clip.name[:50]} {length:.1f} s: "
                      + " ".join("—" if r["offset_ms"] is None else f"{r['offset_ms'] - r['truth_ms']:+.0f}"
                                 for r in rows[-args.per_length:]), file=sys.stderr, flush=True)
                # harder evidence: the shifted speech under another person's (babble at snr_db)
                own = audio[:need].astype(np.float32)
                for k in range(args.noisy):
                    truth = float(rng.integers(-70, 71) * 10)
                    b = _tiled(audios[others[int(rng.integers(len(others)))].name], own.size)
                    snr = float(rng.uniform(*args.snr_db))
                    gain = np.sqrt(np.mean(own ** 2) / max(np.mean(b ** 2), 1e-12)) / 10 ** (snr / 20)
                    mix = np.concatenate(list(shift_audio_pieces([own[None]], 16000, -truth)), axis=1)[0] + gain * b
                    mix = (mix / max(1.0, float(np.abs(mix).max()))).astype(np.float32)
                    r = with_audio(cut, fa, mix, f"noisy_{ci}_{length:.1f}_{k}.mp4")
                    rows.append(row(length, r, truth_ms=truth, snr_db=round(snr, 1)))
                # the same mouths against other people's speech: no offset is right
                for k in range(args.mismatched):
                    other = others[int(rng.integers(len(others)))]
                    r = with_audio(cut, fa, _tiled(audios[other.name], need), f"mismatch_{ci}_{length:.1f}_{k}.mp4")
                    rows.append(row(length, r, truth_ms=None, mismatched_audio=other.name))
    return rows


def label(rows: list[dict]) -> None:
    """``right``: within ±40 ms of the truth after the clip's own offset."""
    by_clip: dict[str, list[float]] = {}
    for r in rows:  # the clip's own offset, from its clean copies
        if r["offset_ms"] is not None and r["truth_ms"] is not None and "snr_db" not in r:
            by_clip.setdefault(r["clip"], []).append(r["offset_ms"] - r["truth_ms"])
    own = {c: float(np.median(e)) for c, e in by_clip.items()}
    for r in rows:
        r["own_ms"] = own.get(r["clip"], 0.0)
        if r["truth_ms"] is None:  # another person's audio: any offset is wrong
            r["error_ms"] = None if r["offset_ms"] is None else float("inf")
        else:
            r["error_ms"] = None if r["offset_ms"] is None else r["offset_ms"] - r["truth_ms"] - r["own_ms"]
        r["right"] = r["error_ms"] is not None and abs(r["error_ms"]) <= 40


FEATURES = ("log_confidence", "second_peak", "log_windows")


def features(r: dict) -> list[float]:
    ev = r["evidence"]
    return [math.log(max(ev["confidence"], 1e-4)), ev["second_peak"], math.log(max(ev["windows"], 1))]


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, iters: int = 50) -> np.ndarray:
    """Newton's method for L2-regularised logistic regression; returns [bias, weights…]."""
    X = np.hstack([np.ones((x.shape[0], 1)), x])
    w = np.zeros(X.shape[1])
    for _ in range(iters):
        p = 1 / (1 + np.exp(-X @ w))
        g = X.T @ (p - y) + l2 * np.r_[0, w[1:]]
        H = (X * (p * (1 - p))[:, None]).T @ X + l2 * np.diag(np.r_[0, np.ones(len(w) - 1)])
        step = np.linalg.solve(H, g)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def report(rows: list[dict], w: np.ndarray, thr: float, group: str, noisy: bool | None = None) -> dict:
    mm = [r for r in rows if r["group"] == group and r["truth_ms"] is None]
    sel = [r for r in rows if r["group"] == group and r["truth_ms"] is not None and (noisy is None or
                                                                                    ("snr_db" in r) == noisy)]
    ans = [r for r in sel if r["offset_ms"] is not None]
    p = [1 / (1 + math.exp(-(w[0] + np.dot(w[1:], features(r))))) for r in ans]
    rel = [r for r, q in zip(ans, p) if q >= thr]
    wrong_rel = [r for r in rel if not r["right"]]
    far_rel = [r for r in rel if abs(r["error_ms"]) > 200]
    out = {"group": group, "audio": {None: "all", False: "clean", True: "babble"}[noisy], "clips": len({r["clip"] for r in sel}), "measurements": len(sel), "answered": len(ans),
           "right_pct": 100 * np.mean([r["right"] for r in ans]) if ans else float("nan"),
           "reliable": len(rel), "reliable_pct_of_all": 100 * len(rel) / max(len(sel), 1),
           "right_among_reliable_pct": 100 * (1 - len(wrong_rel) / max(len(rel), 1)),
           "wrong_peaks_over_200ms": sum(abs(r["error_ms"]) > 200 for r in ans),
           "wrong_peaks_marked_reliable": len(far_rel),
           "mismatched_audio": len(mm), "mismatched_reported": sum(r["offset_ms"] is not None for r in mm),
           "mismatched_marked_reliable": sum(r["offset_ms"] is not None and 1 / (1 + math.exp(
               -(w[0] + np.dot(w[1:], features(r))))) >= thr for r in mm)}
    for length in sorted({r["length_s"] for r in sel}):
        s_all = [r for r in sel if r["length_s"] == length]
        s_rel = [r for r, q in zip(ans, p) if q >= thr and r["length_s"] == length]
        out[f"reliable_pct_{length:g}s"] = 100 * len(s_rel) / max(len(s_all), 1)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=Path, required=True, help="measurements (written, or read with --fit-only)")
    ap.add_argument("--fit-only", action="store_true")
    ap.add_argument("--per-length", type=int, default=6, help="shifted copies per clip and length")
    ap.add_argument("--noisy", type=int, default=4, help="shifted copies under babble per clip and length")
    ap.add_argument("--snr-db", type=float, nargs=2, default=(-5.0, 5.0), help="babble SNR range (dB)")
    ap.add_argument("--mismatched", type=int, default=2, help="copies with another person's audio per clip and length")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--precision", type=float, default=0.99, help="right among reliable, on the tuning group")
    a = ap.parse_args(argv)
    if a.fit_only:
        rows = json.loads(a.rows.read_text())
    else:
        rows = measure(a)
        a.rows.write_text(json.dumps(rows, indent=1))
    label(rows)
    tune = [r for r in rows if r["group"] == "tuning" and r["offset_ms"] is not None]
    x = np.array([features(r) for r in tune])
    y = np.array([float(r["right"]) for r in tune])
    w = fit_logistic(x, y)
    p = 1 / (1 + np.exp(-(w[0] + x @ w[1:])))
    # the lowest threshold at which the tuning group's reliable answers are right often enough
    thr = 0.5
    for t in np.round(np.arange(0.5, 0.995, 0.01), 2):
        m = p >= t
        if m.sum() and y[m].mean() >= a.precision:
            thr = float(t)
            break
    print("P_COEF = {" + ", ".join([f'"bias": {w[0]:.4f}'] + [f'"{k}": {v:.4f}' for k, v in zip(FEATURES, w[1:])])
          + "}")
    print(f"RELIABLE_P = {thr:.2f}")
    for g in ("tuning", "final"):
        for noisy in (False, True, None):
            print(json.dumps(report(rows, w, thr, g, noisy)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
