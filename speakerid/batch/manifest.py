"""The batch's record: one JSON line a video in an fsynced journal, merged into ``manifest.jsonl``
and ``manifest.parquet``; and the selection of clips to keep."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ..outputs import atomic_output, host_tag, pid_alive


def _journal_dir(out_dir: Path) -> Path:
    return out_dir / "manifest.journal"


def read_manifest(out_dir: Path) -> list[dict]:
    """Rows of ``manifest.jsonl`` and of any journal not yet merged (a run that was killed)."""
    rows = []
    files = [out_dir / "manifest.jsonl"] + sorted(_journal_dir(out_dir).glob("*.jsonl"))
    for f in files:
        if not f.exists():
            continue
        for line in f.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a kill: the video is simply done again
                continue
    return rows


def _key(row: dict) -> tuple:
    return row.get("sha256"), row.get("settings"), row.get("model")


def _write_parquet(rows: list[dict], path: Path) -> bool:
    """The manifest as Parquet too, where pyarrow is installed (``pip install 'speakerid[batch]'``);
    one column per field, missing fields null."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return False
    names = sorted({k for r in rows for k in r})
    table = pa.Table.from_pylist([{k: r.get(k) for k in names} for r in rows]) if rows else pa.table({})
    with atomic_output(path) as tmp:
        pq.write_table(table, tmp)
    return True


def _journal_name() -> str:
    return f"{time.strftime('%Y%m%dT%H%M%S')}.{host_tag()}.{os.getpid()}.jsonl"


def _journal_finished(j: Path) -> bool:
    """Written by this process, or by one of this host that no longer runs."""
    parts = j.name.split(".")
    if len(parts) != 4 or parts[1] != host_tag() or not parts[2].isdigit():
        return False
    return int(parts[2]) == os.getpid() or not pid_alive(int(parts[2]))


def latest_rows(rows: list[dict]) -> list[dict]:
    """The last row of each video and settings (a video done again after a timeout has two)."""
    latest: dict = {}
    for r in rows:
        latest[(r["path"],) + _key(r)] = r
    return sorted(latest.values(), key=lambda r: r["path"])


def merge_manifest(out_dir: Path, *, every_journal: bool = False) -> list[dict]:
    """Write ``manifest.jsonl`` (and ``manifest.parquet``) from every row so far (the latest per
    video and settings), atomically, then remove the merged journals: those of finished
    batches of this host, or with ``every_journal`` all of them (``speakerid batch --merge``,
    once every shard of the batch has ended, on any host)."""
    merged = latest_rows(read_manifest(out_dir))
    # a journal still being written by another batch (this host's, or a shared folder's) stays
    journals = [j for j in sorted(_journal_dir(out_dir).glob("*.jsonl")) if every_journal or _journal_finished(j)]
    with atomic_output(out_dir / "manifest.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in merged))
    _write_parquet(merged, out_dir / "manifest.parquet")
    for j in journals:
        j.unlink()
    if _journal_dir(out_dir).is_dir() and not any(_journal_dir(out_dir).iterdir()):
        _journal_dir(out_dir).rmdir()
    return merged


def select_rows(rows: list[dict], max_offset_ms: float, *, reliable: bool = True) -> list[dict]:
    """The rows of videos to keep when filtering a talking-face set: measured without error, an
    offset within ±``max_offset_ms``, no drift, and (``reliable``) evidence marked reliable."""
    return [r for r in rows if r.get("status") == "ok" and r.get("offset_ms") is not None
            and abs(r["offset_ms"]) <= max_offset_ms and not r.get("drift") and (r.get("reliable") or not reliable)]


def write_selection(rows: list[dict], path: Path) -> Path:
    """The selected videos' paths, one a line (a list ``speakerid batch`` and most tools read)."""
    with atomic_output(path) as tmp:
        tmp.write_text("".join(r["path"] + "\n" for r in sorted(rows, key=lambda r: r["path"])))
    return path
