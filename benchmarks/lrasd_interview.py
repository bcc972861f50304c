#!/usr/bin/env python3
"""A real scene with a real listener, in babble: what LR-ASD's activity, fused as
``lrasd_ab.py`` froze it, does to the face that is not speaking.

The composites of ``lrasd_ab.py`` have no silent listener (every tile is a talking face) and its
talking-head clips have one face, so they cannot show the case a shipped fusion must not get
wrong: a listener in a loud room. A two-person interview (split screen, turns of seconds) has
one. It has no labels, so the reference is speakerid's own labels on the clean audio, where its
evidence is strong (one voice at a time); LR-ASD's labels on the clean audio are reported beside.
The listener is whoever the reference does not label while the other face speaks: in a heated
interview that face may be talking over the speaker (``shared/data/multi``'s is, at times:
both mouths move in its first seconds), so read the listener's figures with the frames at hand.

With babble mixed in at each ``--snr``, per variant (shipped; ``a`` = 0.05 gated by the noise and
constant, the variants ``lrasd_ab.py`` measured; LR-ASD alone): the share of the reference
speaker's frames labelled speaking, and the share of the listener's frames (a face present, not
speaking in the reference, while the other one is) labelled speaking.

    python benchmarks/lrasd_interview.py --weights FILE VIDEO [--babble FILE...] [--out F.json]
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
from bench_noise import make_babble, mix  # noqa: E402
from lrasd_ab import alone, fused, load_network, track_activity  # noqa: E402

VARIANTS = (("shipped", 0.0, False), ("a=0.05·noise", 0.05, True), ("a=0.05", 0.05, False))


def labelled(res) -> dict[int, np.ndarray]:
    """Per track id: speaking per source frame of the video (False where the track is absent)."""
    out = {}
    for t in res.tracks:
        m = np.zeros(res.num_frames, bool)
        m[np.asarray(t.frames, np.int64)[np.asarray(t.speaking, bool)]] = True
        out[t.id] = m
    return out


def shares(lab: dict, ref: dict, present: dict) -> dict:
    """Of the reference speaker's frames, the share labelled speaking; of the listener's, too."""
    spk = lst = spk_hit = lst_hit = 0
    for tid, r in ref.items():
        others = np.zeros_like(r)
        for u, q in ref.items():
            if u != tid:
                others |= q
        listen = present[tid] & ~r & others
        got = lab.get(tid, np.zeros_like(r))
        spk += int(r.sum())
        spk_hit += int((got & r).sum())
        lst += int(listen.sum())
        lst_hit += int((got & listen).sum())
    return {"speaker_labelled": spk_hit / max(spk, 1), "listener_labelled": lst_hit / max(lst, 1),
            "speaker_frames": spk, "listener_frames": lst}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("video", type=Path)
    ap.add_argument("--weights", type=Path, required=True, help="LR-ASD checkpoint (finetuning_TalkSet.model)")
    ap.add_argument("--babble", nargs="+", type=Path, default=None)
    ap.add_argument("--snr", nargs="+", type=float, default=[math.inf, 10.0, 5.0, 0.0, -5.0])
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    import torch

    from speakerid.faces import analyze_faces
    from speakerid.media import read_audio
    from speakerid.model import load_model
    from speakerid.speakers import score_faces

    torch.set_num_threads(2)
    net = load_network(a.weights)
    model = load_model()
    fa = analyze_faces(a.video, crop_geometry=model.config.crop_geometry)
    audio = read_audio(a.video, video_start_s=fa.info.video_start_s)
    clean = score_faces(fa, audio, model)
    ref = labelled(clean)
    present = {}
    for t in clean.tracks:
        m = np.zeros(clean.num_frames, bool)
        m[np.asarray(t.frames, np.int64)] = True
        present[t.id] = m
    babble = make_babble(60.0, files=a.babble)
    rows = {}
    for snr in a.snr:
        noisy = audio if math.isinf(snr) else mix(audio, babble, snr, at=0)
        res = score_faces(fa, noisy, model)
        act = track_activity(net, a.video, fa, noisy)
        per = {k: shares(labelled(fused(res, act, w, g)), ref, present) for k, w, g in VARIANTS}
        per["lrasd alone"] = shares(labelled(alone(res, act)), ref, present)
        rows[f"{snr:g}"] = per
        print(f"{snr:g} dB: " + "  ".join(f"{k}: speaker {v['speaker_labelled']:.3f} listener {v['listener_labelled']:.3f}"
                                          for k, v in per.items()), flush=True)
    first = next(iter(rows.values()))["shipped"]
    print(f"reference: {first['speaker_frames']} speaker frames, {first['listener_frames']} listener frames "
          f"({len(clean.tracks)} tracks, {clean.num_frames} frames)")
    if a.out:
        a.out.write_text(json.dumps({"video": a.video.name, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
