#!/usr/bin/env python3
"""How much does speech move the mouth crop's framing? Each crop geometry, on real clips.

For each clip's longest face track, the framing of every frame (``speakerid.faces.mouth.
track_geometry``: crop centre, side) is split into a slow part (a centred 1 s moving mean) and a
fast part (the rest). Printed per clip and geometry:

* ``side %``: standard deviation of the fast part of the crop side, in % of its median;
* ``centre %``: the same for the centre's vertical position, in % of the median face height
  (1 % of the face height is 1.48 px of the 111 px crop);
* ``r(side, loud)``: correlation of the side's fast part with the fast part of the audio's log
  loudness per frame (speech that re-scales the crop shows up here).

The faces stage runs as the training cache runs it (detection every 4th frame at 320 px).

Usage::

    python benchmarks/bench_crop_jitter.py [CLIP ...] [--out results/crop_jitter.json]

Without clips: the first 6 clips of ../shared/data/eval.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from speakerid.faces import analyze_faces  # noqa: E402
from speakerid.faces.mouth import CROP_GEOMETRIES, track_geometry  # noqa: E402
from speakerid.smoothing import centred_mean  # noqa: E402
from speakerid.media import read_audio  # noqa: E402

SAMPLE_RATE = 16000


def _fast(x: np.ndarray, width: int) -> np.ndarray:
    return x - centred_mean(x, width | 1)


def measure(video: str | Path) -> dict:
    a = analyze_faces(video, detect_every=4, detect_width=320, crops=False)
    if not a.tracks:
        return {"clip": Path(video).name, "error": "no face"}
    t = max(a.tracks, key=lambda tr: tr.frames.size)
    fps = a.info.fps or 25.0
    width = max(3, int(round(fps)))
    xyxy = t.boxes.astype(np.float64)
    xyxy[:, 2:] += xyxy[:, :2]
    h = float(np.median(xyxy[:, 3] - xyxy[:, 1]))
    audio = read_audio(video, sample_rate=SAMPLE_RATE, video_start_s=a.info.video_start_s)
    per_frame = SAMPLE_RATE / fps
    rms = np.array([np.sqrt(np.mean(audio[int(f * per_frame):int((f + 1) * per_frame)] ** 2) + 1e-10)
                    if int(f * per_frame) < audio.size else 1e-5 for f in t.frames])
    loud = _fast(np.log(rms), width)
    row = {"clip": Path(video).name, "frames": int(t.frames.size)}
    for g in CROP_GEOMETRIES:
        centres, sides, _ = track_geometry(xyxy, t.landmarks, fps, g)
        fs = _fast(sides, width)
        row[g] = {"side_pct": float(100 * np.std(fs) / np.median(sides)),
                  "centre_pct": float(100 * np.std(_fast(centres[:, 1], width)) / h),
                  "r_side_loud": float(np.corrcoef(fs, loud)[0, 1]) if np.std(fs) > 0 else 0.0}
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="*")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    clips = a.clips or sorted(str(p) for p in (HERE.parent.parent / "shared" / "data" / "eval").glob("*.mp4"))[:6]
    rows = []
    print(f"{'clip':44s} " + "  ".join(f"{g + ': side %  centre %  r(side,loud)':>38s}" for g in CROP_GEOMETRIES))
    for c in clips:
        r = measure(c)
        rows.append(r)
        if "error" in r:
            print(f"{r['clip'][:44]:44s} {r['error']}")
            continue
        print(f"{r['clip'][:44]:44s} " + "  ".join(
            f"{r[g]['side_pct']:>17.2f} {r[g]['centre_pct']:>9.2f} {r[g]['r_side_loud']:>13.2f}" for g in CROP_GEOMETRIES))
    ok = [r for r in rows if "error" not in r]
    if ok:
        print(f"{'mean':44s} " + "  ".join(
            f"{np.mean([r[g]['side_pct'] for r in ok]):>17.2f} {np.mean([r[g]['centre_pct'] for r in ok]):>9.2f} "
            f"{np.mean([r[g]['r_side_loud'] for r in ok]):>13.2f}" for g in CROP_GEOMETRIES))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps({"clips": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
