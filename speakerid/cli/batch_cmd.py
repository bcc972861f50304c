"""``speakerid batch``: the sync and/or speakers pipelines over many files, resumable."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from .common import add_model_args, add_run_args


def register(sub) -> None:
    from ..batch import TASKS
    from ..faces.detector import DETECTORS

    p = sub.add_parser("batch", help="run sync and/or speakers over many files (resumable; a manifest row each)",
                       description="Process every video of the inputs (files, folders searched recursively, "
                                   ".txt/.csv lists of paths) into OUT: each video's JSON/RTTM/CSV and one row in "
                                   "OUT/manifest.jsonl. A re-run skips what is done; a killed run loses only the "
                                   "videos in flight. Exit status 1 when any video failed.")
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("--out", required=True, help="output folder (outputs and manifest)")
    p.add_argument("--task", choices=TASKS, default="sync", help="what to run on each video (default sync)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="worker processes (default: one per core, each with one thread: the fastest measured)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker (default 1)")
    p.add_argument("--timeout-s", type=float, help="stop a video after this many seconds (status timeout)")
    p.add_argument("--memory-mb", type=int, help="memory limit per worker (status MemoryError beyond it)")
    p.add_argument("--detector", choices=DETECTORS, default=None, help=f"face detector (default {DETECTORS[0]})")
    add_model_args(p)
    add_run_args(p, force=False)
    p.set_defaults(func=_batch)


def _batch(args) -> int:
    from ..batch import BatchOptions, main_summary, run
    from .common import progress_for

    opts = BatchOptions(task=args.task, jobs=args.jobs, threads=args.threads, timeout_s=args.timeout_s,
                        memory_mb=args.memory_mb, detector=args.detector, model=args.model)
    prog = progress_for(args)
    rows = []
    for row in run(args.inputs, args.out, opts, progress=prog):
        rows.append(row)
        if row["status"] != "ok" and not args.quiet:  # failures as they happen, not only at the end
            print(f"\nspeakerid: failed ({sum(r['status'] != 'ok' for r in rows)} so far): {row['status']}: "
                  f"{row.get('message') or row['path']}", file=sys.stderr)
    prog.close()
    return main_summary(rows, Path(args.out))
