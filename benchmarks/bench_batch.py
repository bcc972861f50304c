#!/usr/bin/env python3
"""Batch throughput on ../shared/data/eval: videos per minute and seconds of video per second for
``--jobs 1`` (2 torch threads) and ``--jobs 2`` (1 thread each), with the local engine and with
Ray; the cost of a re-run over a finished batch (hashing and the manifest only); and the peak
resident memory of the biggest worker process.

Usage::

    python benchmarks/bench_batch.py [--inputs DIR...] [--task sync] [--engines local ray]
                                     [--json benchmarks/results/bench_batch.json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_INPUTS = [HERE.parent.parent / "shared" / "data" / "eval"]


def _tree_rss(root: int) -> dict[int, int]:
    """Resident bytes of ``root`` and every process below it, from /proc."""
    parent, rss = {}, {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            parent[int(d.name)] = int(fields[1])
            rss[int(d.name)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue
    tree, grew = {root}, True
    while grew:
        more = {p for p, pp in parent.items() if pp in tree} - tree
        grew = bool(more)
        tree |= more
    return {p: rss.get(p, 0) for p in tree}


def one_run(inputs, out: Path, task: str, jobs: int, threads: int, engine: str = "local") -> dict:
    cmd = [sys.executable, "-m", "speakerid", "batch", *map(str, inputs), "--out", str(out), "--task", task,
           "--jobs", str(jobs), "--threads", str(threads), "--engine", engine, "--quiet"]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak: dict[int, int] = {}
    while p.poll() is None:  # the biggest process below the batch (a worker), sampled twice a second
        for pid, b in _tree_rss(p.pid).items():
            peak[pid] = max(peak.get(pid, 0), b)
        time.sleep(0.5)
    err = p.stderr.read()
    wall = time.perf_counter() - t0
    workers = [b for pid, b in peak.items() if pid != p.pid]
    return {"engine": engine, "jobs": jobs, "threads": threads, "wall_s": round(wall, 2), "rc": p.returncode,
            "peak_worker_mb": round(max(workers) / 2**20) if workers else None,
            "peak_batch_mb": round(peak.get(p.pid, 0) / 2**20),
            "summary": err.strip().splitlines()[0] if err.strip() else ""}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inputs", nargs="+", type=Path, default=DEFAULT_INPUTS)
    ap.add_argument("--task", default="sync")
    ap.add_argument("--engines", nargs="+", default=["local", "ray"], choices=["local", "ray"])
    ap.add_argument("--long", nargs="*", type=float, default=[],
                    help="add the bundled example looped to these many minutes each (long files beside short ones)")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    from speakerid.batch import discover
    from speakerid.media import probe

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if a.long:
            import speakerid.examples as examples
            from bench_memory import loop_video

            long_dir = Path(tmp) / "long"
            long_dir.mkdir()
            for i, minutes in enumerate(a.long):
                loop_video(examples.path(), long_dir / f"interview_{i}_{minutes:g}min.mp4", minutes)
            a.inputs = [*a.inputs, long_dir]
        videos = discover(a.inputs)
        seconds = sum(probe(v).duration_s for v in videos)
        for engine, jobs, threads in [(e, j, t) for e in a.engines for j, t in ((1, 2), (2, 1))]:
            out = Path(tmp) / f"{engine}{jobs}"
            r = one_run(a.inputs, out, a.task, jobs, threads, engine)
            r.update(videos=len(videos), video_s=round(seconds, 1), videos_per_min=round(60 * len(videos) / r["wall_s"], 1),
                     video_s_per_s=round(seconds / r["wall_s"], 2))
            manifest = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
            r["ok"] = sum(m["status"] == "ok" for m in manifest)
            again = one_run(a.inputs, out, a.task, jobs, threads, engine)
            r["rerun_s"] = again["wall_s"]
            rows.append(r)
            print(f"{engine}, jobs {jobs} × {threads} thread(s): {r['wall_s']:.1f} s for {len(videos)} videos "
                  f"({seconds:.0f} s of video): {r['videos_per_min']} videos/min, {r['video_s_per_s']}× real time; "
                  f"re-run over the finished batch {r['rerun_s']:.1f} s; biggest worker {r['peak_worker_mb']} MB",
                  flush=True)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"inputs": [str(i) for i in a.inputs], "long_minutes": a.long,
                                      "cpu_count": os.cpu_count(), "rows": rows},
                                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
