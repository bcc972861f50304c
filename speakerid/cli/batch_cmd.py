"""``speakerid batch``: the sync and/or speakers pipelines over many files, resumable, on this
machine or a Ray cluster; ``--merge`` joins the manifests of shards, ``--select`` lists the clips
to keep."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from .common import add_model_args, add_run_args


def register(sub) -> None:
    from ..batch import ENGINES, TASKS
    from ..faces.detector import DETECTORS

    p = sub.add_parser("batch", help="run sync and/or speakers over many files (resumable; a manifest row each)",
                       description="Process every video of the inputs (files, folders searched recursively, "
                                   ".txt/.csv lists of paths) into OUT: each video's JSON/RTTM/CSV and one row in "
                                   "OUT/manifest.jsonl (and .parquet). A re-run skips what is done; a killed run "
                                   "loses only the videos in flight. Exit status 1 when any video failed.")
    p.add_argument("inputs", nargs="*", metavar="INPUT")
    p.add_argument("--out", required=True, help="output folder (outputs and manifest)")
    p.add_argument("--task", choices=TASKS, default="sync", help="what to run on each video (default sync)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="videos at once: worker processes, or Ray tasks in flight (default: one per core, each "
                        "with one thread: the fastest measured)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker (default 1)")
    p.add_argument("--timeout-s", type=float, help="stop a video after this many seconds (status timeout)")
    p.add_argument("--memory-mb", type=int, help="memory limit per worker (status MemoryError beyond it)")
    p.add_argument("--detector", choices=DETECTORS, default=None, help=f"face detector (default {DETECTORS[0]})")
    p.add_argument("--engine", choices=ENGINES, default="local",
                   help="local: a process pool here; ray: Ray tasks (pip install 'speakerid[ray]')")
    p.add_argument("--ray-address", metavar="ADDR",
                   help="with --engine ray: the cluster to join (e.g. auto); default: start a local Ray instance")
    p.add_argument("--shard", metavar="K/N", help="process only the K-th of N shares of the inputs (a job array); "
                                                  "merge the shards' manifests with --merge when all have ended")
    p.add_argument("--merge", action="store_true", help="merge OUT's journals (every shard's) into its manifest; "
                                                        "no INPUT")
    p.add_argument("--select", type=float, metavar="MS",
                   help="write OUT/selected.txt: the videos measured ok, not drifting, reliable, with |offset| <= MS")
    add_model_args(p)
    add_run_args(p, force=False)
    p.set_defaults(func=_batch)


def _batch(args) -> int:
    from ..batch import BatchOptions, main_summary, merge_manifest, run
    from ..errors import InvalidSettingError
    from .common import progress_for

    out = Path(args.out)
    if args.merge:
        if args.inputs:
            raise InvalidSettingError("--merge takes no INPUT: it merges what OUT holds")
        rows = merge_manifest(out, every_journal=True)
        print(f"{len(rows)} row(s) in {out / 'manifest.jsonl'}", file=sys.stderr)
    else:
        if not args.inputs:
            raise InvalidSettingError("name at least one INPUT (a file, a folder or a list), or pass --merge")
        opts = BatchOptions(task=args.task, jobs=args.jobs, threads=args.threads, timeout_s=args.timeout_s,
                            memory_mb=args.memory_mb, detector=args.detector, model=args.model, engine=args.engine,
                            ray_address=args.ray_address, shard=args.shard)
        prog = progress_for(args)
        rows = []
        for row in run(args.inputs, out, opts, progress=prog):
            rows.append(row)
            if row["status"] != "ok" and not args.quiet:  # failures as they happen, not only at the end
                print(f"\nspeakerid: failed ({sum(r['status'] != 'ok' for r in rows)} so far): {row['status']}: "
                      f"{row.get('message') or row['path']}", file=sys.stderr)
        prog.close()
    rc = main_summary(rows, out) if not args.merge else 0
    if args.select is not None:
        _select(out, args.select, sharded=not args.merge and args.shard is not None)
    return rc


def _select(out: Path, max_offset_ms: float, *, sharded: bool) -> None:
    from ..batch import latest_rows, read_manifest, select_rows, write_selection

    if sharded:
        print("speakerid: --select skipped for a shard: select after --merge", file=sys.stderr)
        return
    rows = [r for r in latest_rows(read_manifest(out)) if r.get("task") in ("sync", "both")]
    kept = select_rows(rows, max_offset_ms)
    path = write_selection(kept, out / "selected.txt")
    print(f"{len(kept)} of {len(rows)} video(s) selected (ok, reliable, |offset| <= {max_offset_ms:g} ms): {path}",
          file=sys.stderr)
