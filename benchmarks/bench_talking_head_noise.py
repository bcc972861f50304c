#!/usr/bin/env python3
"""A person talking to the camera in a loud room: how much of their speech is labelled theirs.

The stand-in for the real noisy scenes (a man in a busy cafeteria, a woman vlogging from a car):
each eval clip of one group (one face, talking) with babble of four other people mixed in at a
range of SNRs (level against the clip's own speech, as in ``bench_noise.py``). The truth is
which frames are voiced, read by WebRTC's voice activity detector (aggressiveness 2, 30 ms
frames) on the clean audio. Per SNR, over all clips: the share of voiced frames in which the
face is labelled speaking (what the user sees), the share of unvoiced frames labelled speaking,
and the mean reported audio offset's distance from the clean one.

    python benchmarks/bench_talking_head_noise.py [--group final] [--babble FILE...] [--snr inf 10 5 0 -5] [--fixed-smooth] [--out F.json]

(needs webrtcvad; ``--babble`` defaults to the lrc_ar training clips: pass the tuning group's
clips to judge the final group with voices no model and no setting has met.)
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
from bench_noise import SR, make_babble, mix  # noqa: E402
from calibrate_reliability import EVAL, FINAL_GROUP, identity  # noqa: E402


def voiced_frames(audio: np.ndarray, frame_times: np.ndarray, aggressiveness: int = 2) -> np.ndarray:
    """Per video frame (its time in s): whether the 30 ms VAD frame under it is voiced."""
    import webrtcvad

    vad = webrtcvad.Vad(aggressiveness)
    n = int(0.03 * SR)
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    flags = np.array([vad.is_speech(pcm[i:i + n].tobytes(), SR) for i in range(0, pcm.size - n + 1, n)], bool)
    idx = np.clip((frame_times / 0.03).astype(int), 0, max(flags.size - 1, 0))
    return flags[idx] if flags.size else np.zeros(frame_times.size, bool)


def labelled_frames(res) -> np.ndarray:
    """Per source frame: whether any face is labelled speaking."""
    labelled = np.zeros(res.num_frames, bool)
    for t in res.tracks:
        labelled[np.asarray(t.frames, np.int64)[np.asarray(t.speaking, bool)]] = True
    return labelled


def clips(group: str) -> list[Path]:
    out = sorted(p for p in EVAL.glob("*.mp4") if (identity(p.name) in FINAL_GROUP) == (group == "final"))
    if not out:
        raise SystemExit(f"no eval clips in group {group!r} under {EVAL}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--group", choices=("tuning", "final"), default="final")
    ap.add_argument("--babble", nargs="+", type=Path, default=None)
    ap.add_argument("--snr", nargs="+", type=float, default=[math.inf, 10.0, 5.0, 0.0, -5.0])
    ap.add_argument("--model", help="SyncNet checkpoint (default: the packaged weights)")
    ap.add_argument("--fixed-smooth", action="store_true", help="keep the score averaging fixed in noise (--fixed-smooth)")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    from speakerid.faces import analyze_faces
    from speakerid.media import read_audio
    from speakerid.model import load_model
    from speakerid.speakers import score_faces

    t0 = time.perf_counter()
    model = load_model(a.model)
    babble = make_babble(60.0, files=a.babble)
    tally = {snr: {"voiced": 0, "voiced_labelled": 0, "unvoiced": 0, "unvoiced_labelled": 0, "offset_err": []}
             for snr in a.snr}
    rows = []
    for i, video in enumerate(clips(a.group)):
        fa = analyze_faces(video, crop_geometry=model.config.crop_geometry)
        audio = read_audio(video, video_start_s=fa.info.video_start_s)
        clean_offset = None
        for snr in a.snr:
            res = score_faces(fa, mix(audio, babble, snr, at=i * 7919), model, noise_smoothing=not a.fixed_smooth)
            times = np.asarray(res.frame_times, np.float64)
            voiced = voiced_frames(audio, times)
            labelled = labelled_frames(res)
            k = tally[snr]
            k["voiced"] += int(voiced.sum())
            k["voiced_labelled"] += int((voiced & labelled).sum())
            k["unvoiced"] += int((~voiced).sum())
            k["unvoiced_labelled"] += int((~voiced & labelled).sum())
            off = res.offset_ms
            if math.isinf(snr):
                clean_offset = off
            elif off is not None and clean_offset is not None:
                k["offset_err"].append(abs(off - clean_offset))
            rows.append({"video": video.name, "snr": snr, "voiced": int(voiced.sum()),
                         "voiced_labelled": float((voiced & labelled).sum() / max(voiced.sum(), 1)),
                         "unvoiced_labelled": float((~voiced & labelled).sum() / max((~voiced).sum(), 1)),
                         "offset_ms": off})
            print(f"[{i + 1}] {video.name} {snr:g} dB: voiced frames labelled {rows[-1]['voiced_labelled']:.2f}, "
                  f"unvoiced {rows[-1]['unvoiced_labelled']:.2f}, offset {off}", flush=True)
    table = []
    print(f"\n{a.group} group ({len(clips(a.group))} clips)")
    print("| SNR dB | voiced frames labelled speaking | unvoiced frames labelled speaking | offset moved > 40 ms |")
    print("|---|---|---|---|")
    for snr, k in tally.items():
        moved = float(np.mean(np.array(k["offset_err"]) > 40)) if k["offset_err"] else None
        r = {"snr": snr, "voiced_labelled": k["voiced_labelled"] / max(k["voiced"], 1),
             "unvoiced_labelled": k["unvoiced_labelled"] / max(k["unvoiced"], 1), "offset_moved_40": moved}
        table.append(r)
        m = "–" if moved is None else f"{moved:.2f}"
        print(f"| {snr:g} | {r['voiced_labelled']:.3f} | {r['unvoiced_labelled']:.3f} | {m} |")
    print(f"\n{time.perf_counter() - t0:.0f} s")
    if a.out:
        a.out.write_text(json.dumps({"group": a.group, "babble": [str(p) for p in a.babble] if a.babble else "lrc_ar",
                                     "model": a.model or "packaged",
                                     "noise_smoothing": not a.fixed_smooth, "table": table, "rows": rows}, indent=1,
                                    default=lambda v: None if isinstance(v, float) and math.isinf(v) else v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
