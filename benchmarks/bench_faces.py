#!/usr/bin/env python3
"""Benchmark the faces stage: decode + detect + track + mouth crops, on ../shared/bench/asd.

Figures per setting (detect_every × detect_width):

* throughput: seconds of video processed per wall-clock second (> 1 = faster than real time);
* tracked: share of labelled faces (tile j at frame i in labels.json) for which some track's
  box centre lies inside that tile at that frame;
* extra: track-frames whose box centre lies in no labelled tile (false tracks).

Usage::

    nice -n 15 python benchmarks/bench_faces.py [--bench ../shared/bench/asd] [--limit N]
        [--every 2 3 5] [--width 384 512] [--threads 2] [--out bench_faces.json]

Prints a table and writes the figures as JSON (``--out``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path


HERE = Path(__file__).resolve().parent
DEFAULT_BENCH = HERE.parent.parent / "shared" / "bench" / "asd"


def score_item(analysis, frames_lab: list[list[dict]]) -> dict:
    """Count labelled faces covered by a track centre, and track-frames outside every tile."""
    n_frames = min(len(frames_lab), analysis.timeline.num_source_frames)
    centres: list[list[tuple[float, float]]] = [[] for _ in range(n_frames)]
    for t in analysis.tracks:
        for f, (x, y, w, h) in zip(t.frames.tolist(), t.boxes.tolist()):
            if f < n_frames:
                centres[f].append((x + w / 2, y + h / 2))
    labelled = tracked = extra = 0
    for i in range(n_frames):
        tiles = [lab["box"] for lab in frames_lab[i]]
        for (x, y, w, h) in tiles:
            labelled += 1
            if any(x <= cx < x + w and y <= cy < y + h for cx, cy in centres[i]):
                tracked += 1
        for cx, cy in centres[i]:
            if not any(x <= cx < x + w and y <= cy < y + h for (x, y, w, h) in tiles):
                extra += 1
    return {"labelled": labelled, "tracked": tracked, "extra": extra}


def detector_only(videos: list[Path], labels: dict, detector: str, width: int, threads: int,
                  step: int = 10) -> dict:
    """The detector alone on every ``step``-th frame: labelled faces found (a detection centred in
    the tile), false positives (centred in no tile), and milliseconds per frame."""
    from speakerid.faces.detector import make_detector
    from speakerid.media import iter_frames

    det = make_detector(detector, input_width=width, threads=threads)
    found = labelled = false = frames = 0
    sizes_missed: list[float] = []
    ms = 0.0
    for v in videos:
        tiles_of = labels[v.name]["frames"]
        for fr in iter_frames(v, indices=range(0, len(tiles_of), step)):
            t0 = time.perf_counter()
            dets = det.detect(fr.image)
            ms += 1000 * (time.perf_counter() - t0)
            frames += 1
            tiles = [lab["box"] for lab in tiles_of[fr.index]]
            centres = [((d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2) for d in dets]
            for (x, y, w, h) in tiles:
                labelled += 1
                hit = any(x <= cx < x + w and y <= cy < y + h for cx, cy in centres)
                found += hit
                if not hit:
                    sizes_missed.append(w * width / fr.image.shape[1])
            false += sum(not any(x <= cx < x + w and y <= cy < y + h for (x, y, w, h) in tiles) for cx, cy in centres)
    return {"detector": detector, "detect_width": width, "frames": frames, "labelled": labelled, "found": found,
            "recall_pct": 100.0 * found / max(labelled, 1), "false_positives": false,
            "ms_per_frame": ms / max(frames, 1), "missed_tile_px_at_width": sizes_missed[:20]}


def run_setting(videos: list[Path], labels: dict, every: int, width: int, threads: int,
                detector: str = "centerface") -> dict:
    from speakerid.faces import analyze_faces
    from speakerid.faces.detector import make_detector

    det = make_detector(detector, input_width=width, threads=threads)
    tot = {"labelled": 0, "tracked": 0, "extra": 0, "video_s": 0.0, "wall_s": 0.0, "cpu_s": 0.0,
           "tracks": 0, "faces": 0}
    per_item = {}
    for v in videos:
        item = labels[v.name]
        t0, c0 = time.perf_counter(), time.process_time()
        a = analyze_faces(v, detector=det, detect_every=every, detect_width=width, crops=True)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        s = score_item(a, item["frames"])
        dur = a.timeline.num_source_frames / float(item.get("fps", 25))
        per_item[v.name] = {**s, "faces": item["faces"], "tracks": len(a.tracks), "video_s": dur,
                            "wall_s": round(wall, 3), "cpu_s": round(cpu, 3)}
        for k in ("labelled", "tracked", "extra"):
            tot[k] += s[k]
        tot["video_s"] += dur
        tot["wall_s"] += wall
        tot["cpu_s"] += cpu
        tot["tracks"] += len(a.tracks)
        tot["faces"] += item["faces"]
        print(f"  every={every} width={width} {v.name}: {item['faces']} faces, {len(a.tracks)} tracks, "
              f"tracked {s['tracked']}/{s['labelled']}, {dur / wall:.2f}x real time", file=sys.stderr)
    return {
        "detector": detector, "detect_every": every, "detect_width": width, "threads": threads, "items": len(videos),
        "throughput_x": tot["video_s"] / tot["wall_s"],
        "throughput_cpu_x": tot["video_s"] / max(tot["cpu_s"], 1e-9),
        "tracked_pct": 100.0 * tot["tracked"] / max(tot["labelled"], 1),
        "extra_track_frames": tot["extra"], "tracks": tot["tracks"], "faces": tot["faces"],
        **{k: round(tot[k], 3) for k in ("labelled", "tracked", "video_s", "wall_s", "cpu_s")},
        "per_item": per_item,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", type=Path, default=DEFAULT_BENCH, help="folder with the asd/ videos and labels.json")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N videos (0 = all)")
    ap.add_argument("--every", type=int, nargs="+", default=[3], help="detect_every values to try")
    ap.add_argument("--width", type=int, nargs="+", default=[512], help="detect_width values to try")
    ap.add_argument("--threads", type=int, default=2, help="threads for the detector")
    ap.add_argument("--detector", nargs="+", default=["retinaface"], help="detector backends to compare")
    ap.add_argument("--out", type=Path, help="write the figures here as JSON")
    a = ap.parse_args(argv)

    labels = json.loads((a.bench / "labels.json").read_text())["items"]
    videos = sorted(a.bench / name for name in labels if (a.bench / name).exists())
    if a.limit:
        videos = videos[: a.limit]
    if not videos:
        print(f"no labelled videos in {a.bench}", file=sys.stderr)
        return 1
    # warm up (session build, first-call allocations) outside the timings
    from speakerid.faces import analyze_faces
    analyze_faces(videos[0], detect_every=5, crops=False)

    for d in a.detector:  # each backend's first call (session build, weights) outside the timings
        analyze_faces(videos[0], detector=d, detect_every=5, crops=False)
    detection = [detector_only(videos, labels, d, w, a.threads) for d in a.detector for w in a.width]
    results = [run_setting(videos, labels, e, w, a.threads, d) for d in a.detector for w in a.width for e in a.every]
    print(f"\ndetector alone, every 10th frame of {len(videos)} video(s) ({os.cpu_count()} CPU cores)")
    print(f"{'detector':>10} {'width':>5} {'found %':>8} {'false +':>7} {'ms/frame':>8}")
    for r in detection:
        print(f"{r['detector']:>10} {r['detect_width']:>5} {r['recall_pct']:>8.2f} {r['false_positives']:>7} "
              f"{r['ms_per_frame']:>8.1f}")
    print(f"\nfaces stage on {len(videos)} video(s) from {a.bench} ({os.cpu_count()} CPU cores)")
    print(f"{'detector':>10} {'every':>5} {'width':>5} {'x real time':>11} {'x (CPU s)':>9} {'tracked %':>9} {'extra':>6} "
          f"{'tracks':>6} {'faces':>5}")
    for r in results:
        print(f"{r['detector']:>10} {r['detect_every']:>5} {r['detect_width']:>5} {r['throughput_x']:>11.2f} "
              f"{r['throughput_cpu_x']:>9.2f} {r['tracked_pct']:>9.2f} {r['extra_track_frames']:>6} {r['tracks']:>6} "
              f"{r['faces']:>5}")
    if a.out:
        out = {"bench": str(a.bench), "cpu_count": os.cpu_count(), "machine": platform.platform(),
               "note": "x real time = seconds of video per wall second; x (CPU s) = per CPU second "
                       "of this process (less sensitive to other jobs on the machine)",
               "detection": detection, "results": results}
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(out, indent=1))
        print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
