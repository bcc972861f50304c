#!/usr/bin/env python3
"""Active speaker detection benchmark on multi-face composites (../shared/bench/asd).

Each labelled tile at each frame is matched to the predicted face track whose box centre lies
in the tile at that frame (none → score −inf, label "not speaking"). Reported, pooled over all
(frame, tile) pairs of all items:

* AP        average precision of the per-frame scores against the speaking labels
* accuracy  of the per-frame speaking labels
* F1        of the per-frame speaking labels (speaking = positive class)
* top-1     on frames with exactly one labelled speaker: is the highest-scoring tile that one
* speed     seconds of video per second of processing, end to end from the file (probe, faces,
            mouth crops, audio, SyncNet scoring), on this machine's CPU threads

Usage (from the repository root; run it niced on a shared machine):
    nice -n 15 python benchmarks/bench_asd.py [--bench ../shared/bench/asd] [--model CKPT]
        [--out results.json] [--sweep-smooth 10,25,50,100] [--sweep-threshold 1,2,3]

``--sweep-*`` re-scores the same face analyses with other settings (the face pass runs once per
video); the end-to-end speed is measured with the settings given by --smooth/--threshold.
``--faces-cache DIR`` keeps each video's face analysis (with its mouth crops) and audio there
and reuses them on later runs, to compare SyncNet checkpoints quickly; the speed figure then
counts the faces stage's time as first measured.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from speakerid.faces import analyze_faces  # noqa: E402
from speakerid.media import probe, read_audio, require_audio, require_video  # noqa: E402
from speakerid.model import load_model  # noqa: E402
from speakerid.speakers import (  # noqa: E402
    DECODERS,
    DEFAULT_DECODER,
    DEFAULT_MAX_SHIFT_FRAMES,
    SpeakerResult,
    decoder_settings,
    score_faces,
)


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the precision-recall curve as a step function (as sklearn computes it);
    tied scores form one threshold."""
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels, bool)
    npos = int(labels.sum())
    if npos == 0:
        return float("nan")
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    tp = np.cumsum(y)
    fp = np.cumsum(~y)
    # last index of each run of equal scores
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]
    tp, fp = tp[last], fp[last]
    precision = tp / (tp + fp)
    recall = tp / npos
    prev = np.r_[0.0, recall[:-1]]
    return float(np.sum((recall - prev) * precision))


def match_item(result: SpeakerResult, frames_lab: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scores, predicted labels, true labels), each (frames, tiles), by box-centre matching."""
    n, k = len(frames_lab), len(frames_lab[0])
    scores = np.full((n, k), -np.inf)
    pred = np.zeros((n, k), bool)
    truth = np.array([[t["speaking"] for t in fr] for fr in frames_lab], bool)
    tiles = np.array([[t["box"] for t in fr] for fr in frames_lab], np.float64)  # (n, k, 4)
    for tr in result.tracks:
        f = np.asarray(tr.frames)
        ok = f < n
        f, boxes = f[ok], np.asarray(tr.boxes, np.float64)[ok]
        sc = np.asarray(tr.scores, np.float64)[ok]
        sp = np.asarray(tr.speaking, bool)[ok]
        cx = boxes[:, 0] + boxes[:, 2] / 2
        cy = boxes[:, 1] + boxes[:, 3] / 2
        for j in range(k):
            tb = tiles[f, j]
            inside = (cx >= tb[:, 0]) & (cx < tb[:, 0] + tb[:, 2]) & (cy >= tb[:, 1]) & (cy < tb[:, 1] + tb[:, 3])
            s = np.where(np.isfinite(sc), sc, -np.inf)
            # several tracks in one tile (a split track): keep the highest score
            better = inside & (s > scores[f, j])
            scores[f[better], j] = s[better]
            pred[f[inside], j] |= sp[inside]
    return scores, pred, truth


def offscreen_frames(lab: dict) -> np.ndarray:
    """Per output frame: inside a pause filled by an off-screen voice (speech no face makes)."""
    t = np.arange(len(lab["frames"])) / float(lab["fps"])
    m = np.zeros(t.size, bool)
    for a, b in lab.get("offscreen_voice", []):
        m |= (t >= a) & (t < b)
    return m


def reported_offscreen(res, n: int) -> np.ndarray:
    """Per output frame: inside one of the result's off-screen-voice segments."""
    t = np.arange(n) / float(res.fps)
    m = np.zeros(n, bool)
    for sg in res.offscreen:
        m |= (t >= sg.start - 1e-6) & (t < sg.end - 1e-6)
    return m


def offscreen_figures(per: list, offscreen: list[np.ndarray], reported: list[np.ndarray] | None = None) -> dict:
    """How the off-screen voices were read: of their frames, the share given to a face (a face
    labelled speaking), the mean of the best face's score there, and (``reported``) the share
    reported as an off-screen voice, and how much of what was reported so is one."""
    lab = np.concatenate([p[1].any(1)[o] for p, o in zip(per, offscreen, strict=True)]) if per else np.zeros(0, bool)
    best = np.concatenate([np.where(np.isfinite(p[0]), p[0], np.nan).max(1)[o] for p, o in zip(per, offscreen,
                                                                                              strict=True)]) if per else np.zeros(0)
    out = {"offscreen_frames": int(lab.size), "offscreen_given_to_a_face": float(lab.mean()) if lab.size else None,
           "offscreen_best_score_mean": float(np.nanmean(best)) if lab.size and np.isfinite(best).any() else None}
    if reported is not None:
        rep = np.concatenate(reported) if reported else np.zeros(0, bool)
        truth = np.concatenate(offscreen) if offscreen else np.zeros(0, bool)
        out.update(offscreen_reported=float(rep[truth].mean()) if truth.any() else None,
                   reported_offscreen_frames=int(rep.sum()),
                   reported_offscreen_precision=float(truth[rep].mean()) if rep.any() else None)
    return out


def metrics(items: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict:
    s = np.concatenate([x[0].reshape(-1) for x in items])
    p = np.concatenate([x[1].reshape(-1) for x in items])
    t = np.concatenate([x[2].reshape(-1) for x in items])
    tp = int((p & t).sum())
    fp = int((p & ~t).sum())
    fn = int((~p & t).sum())
    f1 = 2 * tp / max(1, 2 * tp + fp + fn)
    hits = total = 0
    for sc, _, tr in items:
        one = tr.sum(1) == 1
        if not one.any():
            continue
        best = np.argmax(sc[one], axis=1)
        top_is_finite = np.isfinite(sc[one].max(1))
        hits += int(((best == np.argmax(tr[one], axis=1)) & top_is_finite).sum())
        total += int(one.sum())
    return {"ap": average_precision(s, t), "accuracy": float((p == t).mean()), "f1": f1,
            "precision": tp / max(1, tp + fp), "recall": tp / max(1, tp + fn),
            "top1": hits / max(1, total), "pairs": int(t.size), "positives": int(t.sum()), "top1_frames": total}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", default=str(ROOT.parent / "shared" / "bench" / "asd"))
    ap.add_argument("--model", help="SyncNet checkpoint (default: the packaged weights)")
    ap.add_argument("--decoder", choices=DECODERS, default=DEFAULT_DECODER)
    ap.add_argument("--smooth", type=int, default=None, help="default: the decoder's")
    ap.add_argument("--threshold", type=float, default=None, help="default: the decoder's")
    ap.add_argument("--max-shift", type=int, default=DEFAULT_MAX_SHIFT_FRAMES)
    ap.add_argument("--window-step", type=int, default=1)
    ap.add_argument("--detect-every", type=int, default=3)
    ap.add_argument("--detector", default="retinaface", help="face detector backend (centerface, retinaface)")
    ap.add_argument("--overlap", action="store_true", help="allow several faces speaking at once (not exclusive)")
    ap.add_argument("--competition", type=float, default=None,
                    help="share of the best other face's score taken off each face's (default: the library's)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N items")
    ap.add_argument("--sweep-smooth", default="", help="comma-separated smoothing windows to re-score with")
    ap.add_argument("--sweep-threshold", default="", help="comma-separated thresholds to re-score with")
    ap.add_argument("--sweep-shift", default="", help="comma-separated max shifts (frames) to re-score with")
    ap.add_argument("--out", help="write the figures as JSON here")
    ap.add_argument("--faces-cache", type=Path, help="keep each video's face analysis and audio here, reuse them later")
    a = ap.parse_args(argv)
    # the decoder's defaults where not given, resolved (and checked) as the library does
    a.threshold, a.smooth, _ = decoder_settings(a.decoder, a.threshold, a.smooth, a.competition,
                                                exclusive=not a.overlap)

    import torch

    bench = Path(a.bench)
    labels = json.loads((bench / "labels.json").read_text())["items"]
    names = sorted(labels)[: a.limit or None]
    model = load_model(a.model, device="cpu")
    fp = getattr(model, "fingerprint", "")
    print(f"bench {bench} ({len(names)} items), model {a.model or 'packaged'} fingerprint {fp}, "
          f"torch threads {torch.get_num_threads()}, decoder {a.decoder}, smooth {a.smooth}, threshold {a.threshold}, "
          f"max shift {a.max_shift}, "
          f"competition {'default' if a.competition is None else a.competition}")

    kept = []
    rows = []
    competition = None
    per = []
    reported = []
    t_video = t_proc = 0.0
    geometry = model.config.crop_geometry
    tag = "" if geometry == "mouth" else f".{geometry}"  # crops are cut the way the model was trained
    for name in names:
        path = bench / name
        lab = labels[name]
        det_tag = "" if a.detector == "retinaface" else f".{a.detector}"
        cached = a.faces_cache / f"{name}.d{a.detect_every}{tag}{det_tag}.pkl" if a.faces_cache else None
        t0 = time.perf_counter()
        if cached is not None and cached.exists():
            # faces and audio do not depend on the SyncNet weights (crops kept, nothing streamed)
            fa, audio, front_s = pickle.loads(cached.read_bytes())
            t0 -= front_s
        else:
            info = probe(path)
            require_video(info)
            require_audio(info)
            fa = analyze_faces(path, detect_every=a.detect_every, crop_geometry=geometry, detector=a.detector)
            audio = read_audio(path, video_start_s=info.video_start_s)
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                cached.write_bytes(pickle.dumps((fa, audio, time.perf_counter() - t0)))
        res = score_faces(fa, audio, model, threshold=a.threshold, smooth_frames=a.smooth,
                          max_shift_frames=a.max_shift, window_step=a.window_step, exclusive=not a.overlap,
                          decoder=a.decoder, competition=a.competition)
        competition = res.competition  # as the library resolved it (its default depends on --overlap)
        el = time.perf_counter() - t0
        dur = res.num_frames / res.fps
        t_video += dur
        t_proc += el
        kept.append((fa, audio, lab))
        m = match_item(res, lab["frames"])
        per.append(m)
        reported.append(reported_offscreen(res, len(lab["frames"])))
        mi = metrics([m])
        offs = [t.offset_ms for t in res.tracks]
        row = {"item": name, "fps": res.fps, "faces": lab["faces"], "tracks": len(res.tracks), "seconds": round(dur, 2),
               "speed_x": round(dur / el, 2), "offset_ms": res.offset_ms, "track_offsets_ms": offs,
               **{k: round(v, 4) if isinstance(v, float) else v for k, v in mi.items()}}
        rows.append(row)
        print(f"{name:<22} {lab['faces']}f {len(res.tracks)}t fps {res.fps:5.2f} AP {mi['ap']:.3f} acc {mi['accuracy']:.3f} "
              f"F1 {mi['f1']:.3f} top1 {mi['top1']:.3f} speed {dur / el:4.2f}x offsets {offs}", flush=True)
    tot = metrics(per)
    tot.update(offscreen_figures(per, [offscreen_frames(lab) for _, _, lab in kept], reported))
    speed = t_video / max(t_proc, 1e-9)
    print()
    print("| set | items | AP | accuracy | F1 | top-1 | speed (video s / s) |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {bench.name} | {len(names)} | {tot['ap']:.3f} | {tot['accuracy']:.3f} | {tot['f1']:.3f} | {tot['top1']:.3f} | {speed:.2f}x |")
    if tot["offscreen_frames"]:
        print(f"off-screen voice: {tot['offscreen_frames']} frames, {tot['offscreen_given_to_a_face']:.3f} of them given "
              f"to a face (best face's mean score there {tot['offscreen_best_score_mean']:.3f}), "
              f"{tot['offscreen_reported']:.3f} reported as an off-screen voice")
    if tot["reported_offscreen_frames"]:
        print(f"reported as an off-screen voice: {tot['reported_offscreen_frames']} frames, "
              f"{tot['reported_offscreen_precision']:.3f} of them one")

    sweeps = []
    sm_list = [int(x) for x in a.sweep_smooth.split(",") if x] or [a.smooth]
    th_list = [float(x) for x in a.sweep_threshold.split(",") if x] or [a.threshold]
    sh_list = [int(x) for x in a.sweep_shift.split(",") if x] or [a.max_shift]
    if len(sm_list) * len(th_list) * len(sh_list) > 1:
        print()
        print("| smooth | max shift | threshold | AP | accuracy | F1 | top-1 |")
        print("|---|---|---|---|---|---|---|")
        for sh in sh_list:
            for sm in sm_list:
                res_list = [score_faces(fa, au, model, threshold=0.0, smooth_frames=sm, max_shift_frames=sh,
                                        window_step=a.window_step, exclusive=not a.overlap,
                                        decoder=a.decoder, competition=a.competition) for fa, au, _ in kept]
                for th in th_list:
                    ms = []
                    for r, (_, _, lab) in zip(res_list, kept, strict=True):
                        r.relabel(th)
                        ms.append(match_item(r, lab["frames"]))
                    mm = metrics(ms)
                    sweeps.append({"smooth": sm, "max_shift": sh, "threshold": th, **mm})
                    print(f"| {sm} | {sh} | {th:g} | {mm['ap']:.3f} | {mm['accuracy']:.3f} | {mm['f1']:.3f} | {mm['top1']:.3f} |",
                          flush=True)
    if a.out:
        out = {"bench": str(bench), "model": a.model or "packaged", "fingerprint": fp,
               "settings": {"decoder": a.decoder, "exclusive": not a.overlap, "competition": competition,
                            "smooth": a.smooth, "threshold": a.threshold, "max_shift": a.max_shift,
                            "window_step": a.window_step, "detect_every": a.detect_every},
               "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
               "total": {**tot, "speed_x": speed, "video_s": t_video, "processing_s": t_proc},
               "items": rows, "sweeps": sweeps}
        Path(a.out).write_text(json.dumps(out, indent=1))
        print(f"\nwrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
