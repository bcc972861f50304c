#!/usr/bin/env python3
"""Batch throughput on ../shared/data/eval: videos per minute and seconds of video per second for
``--jobs 1`` (2 torch threads) and ``--jobs 2`` (1 thread each), the cost of a re-run over a
finished batch (hashing and the manifest only).

Usage::

    python benchmarks/bench_batch.py [--inputs DIR...] [--task sync] [--json benchmarks/results/bench_batch.json]
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


def one_run(inputs, out: Path, task: str, jobs: int, threads: int) -> dict:
    cmd = [sys.executable, "-m", "speakerid", "batch", *map(str, inputs), "--out", str(out), "--task", task,
           "--jobs", str(jobs), "--threads", str(threads), "--quiet"]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, err = p.communicate()
    wall = time.perf_counter() - t0
    return {"jobs": jobs, "threads": threads, "wall_s": round(wall, 2), "rc": p.returncode,
            "summary": err.strip().splitlines()[0] if err.strip() else ""}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inputs", nargs="+", type=Path, default=DEFAULT_INPUTS)
    ap.add_argument("--task", default="sync")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    from speakerid.batch import discover
    from speakerid.media import probe

    videos = discover(a.inputs)
    seconds = sum(probe(v).duration_s for v in videos)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for jobs, threads in ((1, 2), (2, 1)):
            out = Path(tmp) / f"j{jobs}"
            r = one_run(a.inputs, out, a.task, jobs, threads)
            r.update(videos=len(videos), video_s=round(seconds, 1), videos_per_min=round(60 * len(videos) / r["wall_s"], 1),
                     video_s_per_s=round(seconds / r["wall_s"], 2))
            manifest = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
            r["ok"] = sum(m["status"] == "ok" for m in manifest)
            again = one_run(a.inputs, out, a.task, jobs, threads)
            r["rerun_s"] = again["wall_s"]
            rows.append(r)
            print(f"jobs {jobs} × {threads} thread(s): {r['wall_s']:.1f} s for {len(videos)} videos "
                  f"({seconds:.0f} s of video): {r['videos_per_min']} videos/min, {r['video_s_per_s']}× real time; "
                  f"re-run over the finished batch {r['rerun_s']:.1f} s", flush=True)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"inputs": [str(i) for i in a.inputs], "cpu_count": os.cpu_count(), "rows": rows},
                                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
