"""Run the sync and speakers pipelines over many files: resumable, one bad file never stops it.

``speakerid batch INPUT... --out DIR`` (or :func:`run`) expands the inputs (files; folders,
recursively, by media extension; ``.txt``/``.csv`` lists of paths), then processes each video in
a pool of worker processes, each holding the model once. Per video it writes the single-file
commands' outputs under ``DIR`` and one row to the manifest.

* **Journal, then manifest.** Each finished video appends one JSON line to
  ``DIR/manifest.journal/<run>.jsonl`` (flushed and fsynced), so a crash or a kill loses at
  most the videos in flight. When the run ends the journal is merged into ``DIR/manifest.jsonl``
  and, where pyarrow is installed, ``DIR/manifest.parquet`` (both written atomically). The
  journals it holds are then removed, except those of another batch still writing to the folder.
* **Resumable and idempotent.** A video whose content hash, settings and model fingerprint
  already have a finished row (``ok`` or a named error) is skipped; a ``timeout`` or a crashed
  worker is tried again on the next run.
* **Failure isolation.** Errors are recorded, not raised: ``status`` is ``ok``, the error's
  class name, ``timeout`` (``timeout_s`` per video: the worker is killed and replaced),
  ``MemoryError`` (``memory_mb`` per worker) or ``crash`` (the worker died).
"""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from .inputs import ENGINES, FINISHED, MEDIA_EXTENSIONS, TASKS, BatchOptions, content_hash, discover, take_shard
from .manifest import latest_rows, merge_manifest, read_manifest, select_rows, write_selection
from .manifest import _journal_dir, _journal_name, _key
from .video import process_video

__all__ = ["run", "BatchOptions", "discover", "content_hash", "process_video", "read_manifest", "merge_manifest",
           "select_rows", "write_selection", "latest_rows", "main_summary", "TASKS", "ENGINES", "MEDIA_EXTENSIONS", "FINISHED"]


def run(paths: Iterable[str | os.PathLike], out_dir: str | os.PathLike, opts: BatchOptions | None = None,
        progress=None) -> Iterator[dict]:
    """Process every video of ``paths`` (see :func:`discover`; with ``opts.shard``, its share)
    into ``out_dir`` with the local or the Ray engine; yield one row per video as it finishes
    (skipped ones are not yielded). The manifest is merged at the end, also when the caller stops
    early; a shard leaves its journal for ``speakerid batch --merge``."""
    from ..model import resolve_model
    from ..progress import silent

    opts = opts or BatchOptions()
    opts.check()
    progress = progress or silent
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    videos = take_shard(discover(paths), opts.shard)
    settings = opts.fingerprint()
    model_fp = getattr(resolve_model(opts.model), "fingerprint", "") or "unpackaged"
    done = {_key(r) for r in read_manifest(out) if r.get("state") == FINISHED}
    hashes = {str(v): content_hash(v) for v in videos}  # each file read once, here
    todo = [str(v) for v in videos if (hashes[str(v)], settings, model_fp) not in done]
    _journal_dir(out).mkdir(exist_ok=True)
    n_done = len(videos) - len(todo)
    try:
        with open(_journal_dir(out) / _journal_name(), "a") as jf:
            for row in _engine(opts)(out, opts, todo, hashes) if todo else ():
                row.update(settings=settings, model=model_fp, task=opts.task,
                           state=FINISHED if row["status"] not in ("timeout", "crash") else "retry")
                jf.write(json.dumps(row, sort_keys=True) + "\n")
                jf.flush()
                os.fsync(jf.fileno())
                n_done += 1
                progress("batch", n_done, len(videos))
                yield row
    finally:
        if opts.shard is None:
            merge_manifest(out)


def _engine(opts: BatchOptions):
    if opts.engine == "ray":
        from .ray_engine import run_ray

        return run_ray
    from .local import run_local

    return run_local


def main_summary(rows: list[dict], out_dir: Path, stream=sys.stderr) -> int:
    """Print what the batch did; the exit status: 0 when every video is ok, 1 otherwise."""
    bad = [r for r in rows if r["status"] != "ok"]
    stream.write(f"{len(rows)} video(s) processed, {len(bad)} failed; manifest: {out_dir / 'manifest.jsonl'}\n")
    for r in bad[:20]:
        stream.write(f"  {r['status']}: {r.get('message') or r['path']}\n")
    return 1 if bad else 0
