#!/usr/bin/env python3
"""Stress corpus: every command on every real-world file layout, as a user runs them.

The small cases of tests/stress_corpus.py (containers mp4/mkv/mov/webm/avi; H.264 with long and
short GOPs, VP9, MPEG-4 part 2; 24–60 fps and VFR; 8–48 kHz audio, stereo; audio starting
before or after the video; rotated; a passer-by; a face entering late; a shot cut; 1 s and 3 s)
built from a talking clip of ../shared/data/eval, plus 1080p and 10-minute files. Each command
runs as its own process (`python -m speakerid …`), so a crash, a hang or a leak shows as it would
for a user. Per file and command: exit status, the error line if any, wall seconds, peak RSS,
whether the outputs decode fully, whether the input is unchanged, and the reported offset
(every file is in sync by its timestamps: an offset should be near 0).

Usage::

    python benchmarks/stress.py [--src CLIP] [--out DIR] [--long-minutes 10] [--skip-long]
        [--json benchmarks/results/stress.json]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import stress_corpus  # noqa: E402
from stress_corpus import StressCase  # noqa: E402

DEFAULT_SRC = HERE.parent.parent / "shared" / "data" / "eval" / "c4ab581d_data__raw__examples__May_5s.mp4"
COMMANDS = ("sync", "fix", "speakers", "render", "tracks")


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def extra_cases(long_minutes: float) -> list[StressCase]:
    out = [StressCase("mp4_1080p_30", fps=30, seconds=10.0, size=(1920, 1080)),
           StressCase("mkv_1080p_vp9_50", ext=".mkv", vcodec="libvpx-vp9", fps=50, seconds=10.0, size=(1920, 1080),
                      codec_options={"deadline": "realtime", "cpu-used": "8"}),
           StressCase("mp4_360p_10s", seconds=10.0, size=(640, 360))]
    if long_minutes:
        out.append(StressCase(f"mp4_{long_minutes:g}min", seconds=60.0 * long_minutes, size=(640, 360),
                              codec_options={"g": "250"}))
    return out


def run_command(cmd: str, video: Path, out_dir: Path) -> dict:
    o = out_dir / f"{video.stem}_{cmd}"
    args = {"sync": ["sync", video, "--json", o.with_suffix(".json")],
            "fix": ["fix", video, "-o", o.with_suffix(video.suffix), "--accept-unreliable"],
            "speakers": ["speakers", video, "--json", o.with_suffix(".json"), "--rttm", o.with_suffix(".rttm")],
            "render": ["render", video, "-o", o.with_suffix(".mp4")],
            "tracks": ["tracks", video, "-o", o.with_suffix(".json")]}[cmd]
    t0 = time.perf_counter()
    err_path = o.with_suffix(".stderr")
    with open(err_path, "w") as err:
        p = subprocess.Popen([sys.executable, "-m", "speakerid", *map(str, args), "--quiet", "--force"],
                             stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)  # this child's own peak RSS
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    stderr = err_path.read_text()
    row = {"command": cmd, "rc": p.returncode, "wall_s": round(wall, 1),
           "peak_rss_mb": round(usage.ru_maxrss / 1024, 0),
           "error": stderr.strip().splitlines()[-1] if p.returncode and stderr.strip() else "",
           "traceback": "Traceback" in stderr}
    if p.returncode == 0:
        from speakerid.media import audio_extent, read_frame_times, verify_written

        if cmd in ("fix", "render"):
            out = o.with_suffix(video.suffix if cmd == "fix" else ".mp4")
            t = read_frame_times(video)
            # a repair's audio covers the whole video; a render's, what the source's covers
            a0, a1 = (0.0, None) if cmd == "fix" else audio_extent(video)
            try:
                verify_written(out, expect_frames=t.size, expect_end_s=float(t[-1]), audio_from_s=a0, audio_to_s=a1)
                row["output_ok"] = True
            except Exception as e:  # reported in the table, not raised
                row["output_ok"] = False
                row["error"] = str(e)
        if cmd == "sync":
            row["offset_ms"] = json.loads(o.with_suffix(".json").read_text())["offset_ms"]
        if cmd == "speakers":
            r = json.loads(o.with_suffix(".json").read_text())
            row["segments"] = len(r["segments"])
            row["offset_ms"] = r["offset_ms"]
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", type=Path, default=DEFAULT_SRC, help="talking-face clip to build the files from")
    ap.add_argument("--out", type=Path, default=Path("/tmp/speakerid-stress"), help="working folder")
    ap.add_argument("--long-minutes", type=float, default=10.0, help="length of the long file (0: none)")
    ap.add_argument("--only", nargs="*", help="case names to run (default: all)")
    ap.add_argument("--json", type=Path, help="write the table here")
    ap.add_argument("--build-one", help=argparse.SUPPRESS)  # (internal) build one case and exit
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    cases = stress_corpus.CASES + extra_cases(a.long_minutes)
    if a.build_one:
        print(stress_corpus.build(next(c for c in cases if c.name == a.build_one), a.src, a.out))
        return 0
    if a.only:
        cases = [c for c in cases if c.name in a.only]
    rows = []
    for case in cases:
        t0 = time.perf_counter()
        # built by a process of its own: a child's peak RSS counts its parent's at the fork, so
        # this one stays small
        video = Path(subprocess.run([sys.executable, __file__, "--build-one", case.name, "--src", str(a.src),
                                     "--out", str(a.out), "--long-minutes", str(a.long_minutes)],
                                    check=True, capture_output=True, text=True).stdout.strip())
        build_s = time.perf_counter() - t0
        sha = _sha(video)
        for cmd in COMMANDS:
            r = {"file": video.name, "seconds": case.seconds, **run_command(cmd, video, a.out)}
            r["input_unchanged"] = _sha(video) == sha
            rows.append(r)
            off = r.get("offset_ms")
            print(f"{video.name:34s} {cmd:8s} rc={r['rc']} {r['wall_s']:7.1f}s {r['peak_rss_mb']:6.0f}MB "
                  f"{'' if off is None else f'offset {off:+.0f} ms '}{'' if r.get('output_ok', True) else 'OUTPUT BAD '}"
                  f"{'TRACEBACK ' if r['traceback'] else ''}{r['error'][:110]}", flush=True)
        print(f"  (built in {build_s:.1f} s)", file=sys.stderr)
    bad = [r for r in rows if r["traceback"] or not r["input_unchanged"] or r.get("output_ok") is False
           or r["rc"] not in (0, 2)]
    print(f"\n{len(rows)} runs over {len(cases)} files: {sum(r['rc'] == 0 for r in rows)} answered, "
          f"{sum(r['rc'] == 2 for r in rows)} named errors, {len(bad)} defects "
          "(traceback, changed input, output that does not decode, other exit status)")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"src": str(a.src), "rows": rows}, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
