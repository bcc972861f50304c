#!/usr/bin/env python3
"""Benchmark memory against video length: peak RSS of ``detect_speakers`` on long videos.

Long videos are made by looping the bundled example (speakerid/examples/interview_grid.mp4,
10 s, 960×540, 3 faces; video packets copied, audio re-encoded) into a temporary folder. Each run is
a fresh child process; its peak RSS is ``ru_maxrss`` from ``os.wait4``. A sampler thread in the
child also records the peak RSS in each stage (from the progress callback), so what grows
can be told apart.

Modes:

* ``stream``: ``detect_speakers(video)`` as shipped (mouth windows embedded while decoding).
* ``crops``: the former path: ``analyze_faces`` keeps every track's mouth crops, then
  ``score_faces``.
* ``sync``: ``measure_sync(video)`` (the lip-sync offset), for its own memory growth.

Usage::

    nice -n 15 python benchmarks/bench_memory.py [--minutes 1 4 8] [--modes stream crops]
        [--speakerid-path DIR] [--keep DIR] [--out benchmarks/results/bench_memory.json]

``--speakerid-path DIR`` runs the children with the ``speakerid`` package found in DIR first
on ``sys.path`` (e.g. an older copy, to compare). Prints a table and writes JSON (``--out``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_OUT = HERE / "results" / "bench_memory.json"


def loop_video(src: Path, dst: Path, minutes: float) -> Path:
    """Write ``dst``: ``src`` repeated until it lasts ``minutes``. The video packets are copied
    (timestamps shifted by the clip's duration each time); the audio is the clip's own, decoded,
    repeated sample-exactly and encoded once (copied AAC packets would add the codec's padding at
    every join and drift out of sync)."""
    import av
    import numpy as np

    from speakerid.media import NativeAudio, remux_with_audio, stream_audio_native

    video_only = dst.with_name(f".{dst.stem}.video{dst.suffix}")
    with av.open(str(src)) as inp:
        vs = inp.streams.video[0]
        packets = [p for p in inp.demux(vs) if p.dts is not None]
        period_s = float(vs.duration * vs.time_base)
        period = int(vs.duration)
        reps = max(1, int(round(minutes * 60 / period_s)))
        with av.open(str(video_only), mode="w") as out:
            ovs = out.add_stream_from_template(vs)
            for r in range(reps):
                for p in packets:
                    q = av.Packet(bytes(p))
                    q.pts = None if p.pts is None else p.pts + r * period
                    q.dts = p.dts + r * period
                    q.duration = p.duration
                    q.is_keyframe = p.is_keyframe
                    q.time_base = p.time_base
                    q.stream = ovs
                    out.mux(q)
    na = stream_audio_native(src)
    na_samples = np.concatenate(list(na.pieces()), axis=1)
    one = na_samples[:, : int(round(period_s * na.sample_rate))]
    audio = NativeAudio(samples=np.ascontiguousarray(np.tile(one, (1, reps))), sample_rate=na.sample_rate,
                        layout=na.layout, video_start_s=0.0)
    try:
        remux_with_audio(video_only, dst, audio, overwrite=True)
    finally:
        video_only.unlink()
    return dst


CHILD = r"""
import json, os, sys, threading, time
extra = os.environ.get("BENCH_SPEAKERID_PATH")
if extra:
    sys.path.insert(0, extra)
import numpy as np

mode, video, out = sys.argv[1], sys.argv[2], sys.argv[3]
page = os.sysconf("SC_PAGE_SIZE")


def rss_mb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * page / 2**20


stage = ["import"]
peaks = {}
done = threading.Event()


def sample():
    while not done.is_set():
        s, r = stage[0], rss_mb()
        peaks[s] = max(peaks.get(s, 0.0), r)
        time.sleep(0.02)


def progress(name, i, total):
    if name == "mouths" and i >= total:
        name = "audio+mfcc+audio_emb"  # what runs between the faces stage and scoring
    elif name == "scoring" and i >= total:
        name = "profiles+labels"
    stage[0] = name


threading.Thread(target=sample, daemon=True).start()
import speakerid
from speakerid.model import load_model
from speakerid.speakers import detect_speakers, score_faces

net = load_model()
stage[0] = "model loaded"
t0 = time.perf_counter()
c0 = time.process_time()
if mode == "stream":
    r = detect_speakers(video, model=net, progress=progress)
elif mode == "sync":
    from speakerid.sync import measure_sync

    r = measure_sync(video, model=net, progress=progress)
else:
    from speakerid.faces import analyze_faces
    from speakerid.media import probe, read_audio

    a = analyze_faces(video, progress=progress)
    audio = read_audio(video, video_start_s=probe(video).video_start_s)
    r = score_faces(a, audio, net, progress=progress)
wall = time.perf_counter() - t0
cpu = time.process_time() - c0
done.set()
if mode == "sync":  # measure_sync's result: its tracks have no per-frame scores
    scores = {"windows": int(len(r.windows))}
else:
    scores = {str(t.id): np.nan_to_num(np.asarray(t.scores, np.float64), nan=-999.0).tolist() for t in r.tracks}
json.dump({"seconds": wall, "cpu_seconds": cpu, "stage_peak_rss_mb": peaks, "speakerid": speakerid.__file__,
           "num_tracks": len(r.tracks), "num_segments": len(r.segments), "offset_ms": r.offset_ms,
           "scores": scores}, open(out, "w"))
"""


def run_child(mode: str, video: Path, workdir: Path, speakerid_path: str | None) -> dict:
    out = workdir / f"child_{mode}_{video.stem}.json"
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    if speakerid_path:
        env["BENCH_SPEAKERID_PATH"] = str(Path(speakerid_path).resolve())
    p = subprocess.Popen([sys.executable, "-c", CHILD, mode, str(video), str(out)], env=env)
    _pid, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"child {mode} {video.name} failed with exit code {p.returncode}")
    r = json.loads(out.read_text())
    r["peak_rss_mb"] = ru.ru_maxrss / 1024.0  # Linux: KiB
    return r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[1, 4, 8])
    ap.add_argument("--modes", nargs="+", choices=["stream", "crops", "sync"], default=["stream", "crops"])
    ap.add_argument("--speakerid-path", default=None, help="import speakerid from this folder in the children")
    ap.add_argument("--label", default=None, help="name of this set of runs in the JSON (default: the mode)")
    ap.add_argument("--keep", type=Path, default=None, help="make/keep the long videos in this folder")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)

    import speakerid.examples as examples

    src = examples.path("interview_grid")
    tmp = tempfile.TemporaryDirectory(prefix="bench_memory_")
    workdir = Path(tmp.name)
    vids_dir = args.keep or workdir
    vids_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    by_minutes: dict[float, dict[str, dict]] = {}
    for minutes in args.minutes:
        video = vids_dir / f"interview_loop_{minutes:g}min.mp4"
        if not video.exists():
            t = time.perf_counter()
            loop_video(src, video, minutes)
            print(f"made {video.name} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        for mode in args.modes:
            label = mode if not args.label else args.label if len(args.modes) == 1 else f"{args.label}:{mode}"
            print(f"running {label} on {minutes:g} min ...", file=sys.stderr, flush=True)
            r = run_child(mode, video, workdir, args.speakerid_path)
            by_minutes.setdefault(minutes, {})[label] = r
            rows.append({"minutes": minutes, "mode": label, "peak_rss_mb": round(r["peak_rss_mb"], 1),
                         "seconds": round(r["seconds"], 1), "cpu_seconds": round(r["cpu_seconds"], 1),
                         "num_tracks": r["num_tracks"], "offset_ms": r["offset_ms"],
                         "stage_peak_rss_mb": {k: round(v, 1) for k, v in r["stage_peak_rss_mb"].items()}})
    # the modes must agree (the streamed embeddings are float16: scores differ by rounding only)
    for minutes, runs in by_minutes.items():
        if len(runs) > 1:
            import numpy as np

            (la, a), (lb, b) = list(runs.items())[:2]
            diffs = [float(np.max(np.abs(np.asarray(a["scores"][k]) - np.asarray(b["scores"][k]))))
                     for k in a["scores"] if k in b["scores"] and len(a["scores"][k]) == len(b["scores"][k])]
            same = a["scores"].keys() == b["scores"].keys() and len(diffs) == len(a["scores"])
            for row in rows:
                if row["minutes"] == minutes:
                    row[f"max_score_diff_{la}_vs_{lb}"] = max(diffs) if same and diffs else None
    print(f"{'minutes':>7} {'mode':>8} {'peak RSS MB':>12} {'seconds':>8}  stage peaks (MB)")
    for r in rows:
        st = ", ".join(f"{k} {v:.0f}" for k, v in r["stage_peak_rss_mb"].items())
        print(f"{r['minutes']:>7g} {r['mode']:>8} {r['peak_rss_mb']:>12.0f} {r['seconds']:>8.1f}  {st}")
    # several invocations (modes, lengths, checkouts) accumulate in one file: rows merge per
    # (label, minutes), the newest kept
    old = {}
    if args.out.exists():
        try:
            old = json.loads(args.out.read_text())
        except ValueError:
            old = {}
    runs = old.get("runs", {}) if isinstance(old, dict) else {}
    created = time.strftime("%Y-%m-%d %H:%M:%S")
    for mode in sorted({r["mode"] for r in rows}):
        merged = {r["minutes"]: r for r in runs.get(mode, {}).get("rows", [])}
        merged.update({r["minutes"]: r for r in rows if r["mode"] == mode})
        pts = sorted(merged.items())
        # growth: slope of peak RSS between the shortest and the longest video
        growth = None
        if len(pts) > 1:
            (m0, r0), (m1, r1) = pts[0], pts[-1]
            growth = round((r1["peak_rss_mb"] - r0["peak_rss_mb"]) / (m1 - m0), 2)
        runs[mode] = {"rows": [r for _, r in pts], "growth_mb_per_min": growth, "created": created,
                      "speakerid_path": args.speakerid_path}
    for mode, run in sorted(runs.items()):
        if run["growth_mb_per_min"] is not None:
            print(f"growth {mode}: {run['growth_mb_per_min']:.1f} MB per minute of video")
    report = {"benchmark": "bench_memory", "video": "interview_grid looped (960×540, 25 fps, 3 faces)",
              "measure": "peak RSS (ru_maxrss) of a fresh process running detect_speakers, model loaded",
              "machine": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "1"), "runs": runs,
              "rows": [r for run in runs.values() for r in run["rows"]],
              "growth_mb_per_min": {k: v["growth_mb_per_min"] for k, v in runs.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_name(f".{args.out.name}.partial")
    tmp_out.write_text(json.dumps(report, indent=1))
    os.replace(tmp_out, args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
