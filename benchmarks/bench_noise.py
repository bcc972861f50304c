#!/usr/bin/env python3
"""Sync and active-speaker figures against noise: babble (several other people talking at once)
mixed into the audio at a range of signal-to-noise ratios.

The babble is the speech of training clips (``../shared/data/train/lrc_ar``: people in no eval
clip), four streams at once, each at the same loudness. Its level is set against the clip's own
speech: the RMS of its loudest half of 20 ms frames. The video is untouched, so each clip's
faces and video embeddings are made once (``speakerid.sync.prepare_sync``,
``speakerid.faces.analyze_faces``) and only the audio is measured again at each SNR.

* sync: the clips of ``../shared/bench/sync``; relative ±40 ms (each source's own offset, read
  on the clean audio, removed), wrong peaks (relative error > 200 ms) and how many of those were
  marked reliable, and the share marked reliable; per group of people (tuning / final, as
  ``calibrate_reliability.py`` splits them);
* speakers: active-speaker composites (``--asd DIR``, e.g. made by ``make_validation_sets.py``),
  AP / F1 / top-1, off-screen voices found.

    python benchmarks/bench_noise.py [--snr inf 20 10 5 0] [--asd DIR ...] [--out results.json]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_asd import match_item, metrics, offscreen_figures, offscreen_frames, reported_offscreen  # noqa: E402
from bench_sync import DEFAULT_BENCH, source_id  # noqa: E402
from calibrate_reliability import FINAL_GROUP, identity  # noqa: E402

BABBLE = HERE.parent.parent / "shared" / "data" / "train" / "lrc_ar"
SR = 16000


def make_babble(seconds: float, streams: int = 4, seed: int = 0, files: list[Path] | None = None) -> np.ndarray:
    """``streams`` people talking at once for ``seconds``: clips' speech (default: the training
    clips of ``BABBLE``) laid end to end per stream, each clip scaled to the same RMS."""
    from speakerid.media import read_audio

    rng = np.random.default_rng(seed)
    files = sorted(files) if files else sorted(BABBLE.glob("*.mp4"))
    n = int(seconds * SR)
    out = np.zeros(n, np.float64)
    for _ in range(streams):
        parts, have = [], 0
        while have < n:
            a = read_audio(files[int(rng.integers(len(files)))]).astype(np.float64)
            if a.size and np.sqrt(np.mean(a ** 2)) > 1e-4:
                parts.append(a / np.sqrt(np.mean(a ** 2)))
                have += a.size
        out += np.concatenate(parts)[:n]
    return out / np.sqrt(np.mean(out ** 2))


def speech_rms(x: np.ndarray) -> float:
    """RMS of the loudest half of the signal's 20 ms frames: the level of its speech."""
    f = x[: x.size // 320 * 320].reshape(-1, 320).astype(np.float64)
    p = np.sort(np.mean(f ** 2, axis=1))
    return float(np.sqrt(np.mean(p[p.size // 2:]))) if p.size else 0.0


def mix(x: np.ndarray, babble: np.ndarray, snr_db: float, at: int) -> np.ndarray:
    if math.isinf(snr_db):
        return x
    b = np.resize(np.roll(babble, -at), x.size)
    return (x + b * speech_rms(x) * 10 ** (-snr_db / 20)).astype(np.float32)


def bench_sync(snrs, babble, limit: int, model=None) -> list[dict]:
    from speakerid.media import read_audio
    from speakerid.sync import SyncInputs, embed_audio, measure_prepared, prepare_sync

    labels = json.loads((DEFAULT_BENCH / "labels.json").read_text())["items"]
    rows = []
    for i, name in enumerate(sorted(labels)[: limit or None]):
        path = DEFAULT_BENCH / name
        inputs = prepare_sync(path, model=model)
        clean = read_audio(path)
        for snr in snrs:
            x = mix(clean, babble, snr, at=i * 7919)
            r = measure_prepared(SyncInputs(video=inputs.video, audio=embed_audio(inputs.video.model, x)),
                                 video_name=name)
            rows.append({"name": name, "source": source_id(name), "snr": snr, "truth": labels[name]["offset_ms"],
                         "offset_ms": r.offset_ms, "reliable": r.reliable, "p_correct": r.p_correct,
                         "group": "final" if identity(name) in FINAL_GROUP else "tuning"})
        print(f"[{i + 1}] {name}: " + ", ".join(
            f"{r['snr']:g} dB {r['offset_ms'] if r['offset_ms'] is None else round(r['offset_ms'])}"
            for r in rows[-len(snrs):]), flush=True)
    return rows


def sync_table(rows: list[dict]) -> list[dict]:
    # each source's own offset, read on the clean audio (as bench_sync's relative figures)
    own = {}
    for src in {r["source"] for r in rows}:
        errs = [r["offset_ms"] - r["truth"] for r in rows
                if r["source"] == src and math.isinf(r["snr"]) and r["offset_ms"] is not None]
        own[src] = float(np.median(errs)) if errs else 0.0
    out = []
    for group in ("tuning", "final", "all"):
        for snr in sorted({r["snr"] for r in rows}, reverse=True):
            sel = [r for r in rows if r["snr"] == snr and (group == "all" or r["group"] == group)]
            err = np.array([abs(r["offset_ms"] - r["truth"] - own[r["source"]]) if r["offset_ms"] is not None else np.inf
                            for r in sel])
            rel = np.array([r["reliable"] for r in sel])
            wrong = err > 200
            out.append({"group": group, "snr": snr, "clips": len(sel), "rel_40": float(np.mean(err <= 40)),
                        "wrong_peaks": int((wrong & np.isfinite(err)).sum()), "wrong_marked_reliable": int((wrong & rel).sum()),
                        "reliable": float(rel.mean()),
                        "right_among_reliable": float(np.mean(err[rel] <= 40)) if rel.any() else None})
    return out


def bench_asd(snrs, babble, sets: list[Path], model_path=None, **settings) -> list[dict]:
    from speakerid.faces import analyze_faces
    from speakerid.media import read_audio
    from speakerid.model import load_model
    from speakerid.speakers import score_faces

    model = load_model(model_path)
    out = []
    for d in sets:
        labels = json.loads((d / "labels.json").read_text())["items"]
        items = []
        for i, name in enumerate(sorted(labels)):
            fa = analyze_faces(d / name, crop_geometry=model.config.crop_geometry)
            items.append((fa, read_audio(d / name, video_start_s=fa.info.video_start_s), labels[name], i))
        for snr in snrs:
            per, rep = [], []
            for fa, audio, lab, i in items:
                res = score_faces(fa, mix(audio, babble, snr, at=i * 7919), model, **settings)
                per.append(match_item(res, lab["frames"]))
                rep.append(reported_offscreen(res, len(lab["frames"])))
            m = metrics(per)
            m.update(offscreen_figures(per, [offscreen_frames(lab) for _, _, lab, _ in items], rep))
            out.append({"set": d.name, "snr": snr, **m})
            print(f"{d.name} {snr:g} dB: AP {m['ap']:.3f} F1 {m['f1']:.3f} top-1 {m['top1']:.3f}", flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--snr", nargs="+", type=float, default=[math.inf, 20.0, 10.0, 5.0, 0.0])
    ap.add_argument("--asd", nargs="*", type=Path, default=[], help="active-speaker sets (folders with labels.json)")
    ap.add_argument("--no-sync", action="store_true")
    ap.add_argument("--limit", type=int, default=0, help="only the first N sync clips")
    ap.add_argument("--model", help="SyncNet checkpoint (default: the packaged weights)")
    ap.add_argument("--babble", nargs="+", type=Path, default=None,
                    help="media files whose speech makes the babble (default: the lrc_ar training clips; "
                         "a model trained with babble has heard those voices as noise)")
    ap.add_argument("--fixed-smooth", action="store_true",
                    help="speakers: keep the score averaging at its default width in noise (the library's --fixed-smooth)")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    babble = make_babble(60.0, files=a.babble)
    res: dict = {"snr_db": a.snr, "babble": f"{len(a.babble)} files, 4 streams" if a.babble else f"{BABBLE.name}, 4 streams", "model": a.model or "packaged",
                 "noise_smoothing": not a.fixed_smooth}
    if not a.no_sync:
        rows = bench_sync(a.snr, babble, a.limit, a.model)
        res["sync"] = sync_table(rows)
        res["sync_rows"] = rows
        print("\n| people | SNR dB | clips | rel ±40 | wrong peaks | of them marked reliable | marked reliable | right among reliable |")
        print("|---|---|---|---|---|---|---|---|")
        for r in res["sync"]:
            rr = "–" if r["right_among_reliable"] is None else f"{r['right_among_reliable']:.3f}"
            print(f"| {r['group']} | {r['snr']:g} | {r['clips']} | {r['rel_40']:.3f} | {r['wrong_peaks']} | "
                  f"{r['wrong_marked_reliable']} | {r['reliable']:.3f} | {rr} |")
    if a.asd:
        res["asd"] = bench_asd(a.snr, babble, a.asd, a.model, noise_smoothing=not a.fixed_smooth)
        print("\n| set | SNR dB | AP | F1 | top-1 | off-screen voice frames reported |")
        print("|---|---|---|---|---|---|")
        for r in res["asd"]:
            o = "–" if r.get("offscreen_reported") is None else f"{r['offscreen_reported']:.3f}"
            print(f"| {r['set']} | {r['snr']:g} | {r['ap']:.3f} | {r['f1']:.3f} | {r['top1']:.3f} | {o} |")
    print(f"\n{time.perf_counter() - t0:.0f} s")
    if a.out:
        a.out.write_text(json.dumps(res, indent=1, default=lambda v: None if isinstance(v, float) and math.isinf(v) else v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
