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

import hashlib
import json
import multiprocessing as mp
import os
import queue
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidSettingError, SpeakerIdError
from .outputs import atomic_output, host_tag, pid_alive

MEDIA_EXTENSIONS = (".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v", ".mts", ".ts", ".mpg", ".mpeg", ".flv", ".wmv")
TASKS = ("sync", "speakers", "both")
FINISHED = "finished"  # row["state"]: a result (ok or a named error) that a re-run keeps


@dataclass(frozen=True)
class BatchOptions:
    task: str = "sync"
    """``sync`` (offset), ``speakers`` (who speaks) or ``both``."""
    jobs: int = 1
    """Worker processes."""
    threads: int = 1
    """Torch threads per worker."""
    timeout_s: float | None = None
    """Per video; the worker is killed and replaced when it runs over."""
    memory_mb: int | None = None
    """Address-space limit per worker; a video that needs more gets status ``MemoryError``."""
    detector: str | None = None
    model: str | None = None

    def check(self) -> None:
        if self.task not in TASKS:
            raise InvalidSettingError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.jobs < 1 or self.threads < 1:
            raise InvalidSettingError(f"jobs and threads must be at least 1, got {self.jobs} and {self.threads}")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise InvalidSettingError(f"timeout_s must be positive, got {self.timeout_s}")

    def fingerprint(self) -> str:
        """What changes the results (not how they are computed in parallel)."""
        from . import __version__

        key = {"task": self.task, "detector": self.detector or "default", "version": __version__}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def discover(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Media files named by ``inputs``: files as they are, folders searched recursively by
    extension, ``.txt``/``.csv`` files read as lists (one path per line, the first CSV field;
    relative paths from the list's folder). Sorted, each once."""
    from .errors import InputNotFoundError

    out: dict[str, Path] = {}
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            for f in p.rglob("*"):
                if f.is_file() and f.suffix.lower() in MEDIA_EXTENSIONS:
                    out[str(f.resolve())] = f
        elif p.suffix.lower() in (".txt", ".csv") and p.is_file():
            for line in p.read_text().splitlines():
                name = line.split(",")[0].strip().strip('"')
                if not name or name.startswith("#") or name.lower() in ("path", "file", "video"):
                    continue
                f = Path(name) if Path(name).is_absolute() else p.parent / name
                out[str(f.resolve())] = f
        elif p.exists():
            out[str(p.resolve())] = p
        else:
            raise InputNotFoundError(f"{p}: no such file or folder")
    return [out[k] for k in sorted(out)]


def content_hash(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# one video


def process_video(path: Path, out_dir: Path, opts: BatchOptions, model, detector=None,
                  sha256: str | None = None) -> dict:
    """Run the task on one video and write its outputs; errors become the row's status.
    ``detector``: a face detector object (default: ``opts.detector`` by name); ``sha256``: the
    file's content hash when the caller has it (hashed here otherwise)."""
    detector = detector or opts.detector
    from .media import probe

    t0 = time.perf_counter()
    row: dict = {"path": str(path), "status": "ok", "message": ""}
    try:
        row["size"] = path.stat().st_size
        row["sha256"] = sha256 or content_hash(path)
        stem = f"{path.stem}-{row['sha256'][:8]}"
        info = probe(path)
        row.update(duration_s=round(info.duration_s, 3), fps=round(info.fps, 4))
        outputs = []
        if opts.task in ("sync", "both"):
            from .sync import measure_sync

            r = measure_sync(path, model=model, detector=detector)
            o = out_dir / f"{stem}.sync.json"
            r.to_json(o)
            outputs.append(str(o))
            row.update(offset_ms=r.offset_ms, confidence=round(r.confidence, 4), p_correct=r.p_correct,
                       reliable=r.reliable, sync_status=r.status, drift=r.drift)
        if opts.task in ("speakers", "both"):
            from .speakers import detect_speakers

            s = detect_speakers(path, model=model, detector=detector)
            for suffix, write in ((".speakers.json", s.to_json), (".rttm", s.to_rttm), (".csv", s.to_csv)):
                o = out_dir / f"{stem}{suffix}"
                write(o)
                outputs.append(str(o))
            row.update(tracks=len(s.tracks), speaking_segments=len(s.segments),
                       speakers_offset_ms=s.offset_ms, warnings=s.warnings)
        row["outputs"] = outputs
    except SpeakerIdError as e:
        row.update(status=type(e).__name__, message=str(e))
    except MemoryError:
        row.update(status="MemoryError", message="ran out of memory (the per-worker limit, or the machine's)")
    row["wall_s"] = round(time.perf_counter() - t0, 3)
    return row


# ---------------------------------------------------------------------------------------------
# workers


def _exit_with_parent(parent: int) -> None:
    """A worker whose batch process is gone (killed) stops at once instead of running on."""
    import threading

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _worker(tasks, results, out_dir: str, opts: BatchOptions, parent: int) -> None:
    import torch

    _exit_with_parent(parent)
    if opts.memory_mb:
        import resource

        limit = int(opts.memory_mb) << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    torch.set_num_threads(opts.threads)
    from .model import resolve_model

    from .faces.detector import DETECTORS, make_detector

    model = resolve_model(opts.model)
    # the detector too keeps to the worker's threads (its own default is every core)
    detector = make_detector(opts.detector or DETECTORS[0], threads=opts.threads)
    results.put(("ready", os.getpid(), None))
    while True:
        item = tasks.get()
        if item is None:
            return
        video, sha = item
        results.put(("start", os.getpid(), video))
        row = process_video(Path(video), Path(out_dir), opts, model, detector, sha256=sha)
        results.put(("done", os.getpid(), row))


class _Pool:
    """Worker processes fed one video at a time, so that a stuck or dead one can be replaced."""

    def __init__(self, out_dir: Path, opts: BatchOptions):
        self._ctx = mp.get_context("spawn")
        self._out, self._opts = str(out_dir), opts
        self._results = self._ctx.Queue()
        self._workers: dict[int, tuple] = {}  # pid → (process, its task queue)
        self._idle_pending: set[int] = set()  # started, model not loaded yet
        self.busy: dict[int, tuple[str, float]] = {}  # pid → (video, start)
        for _ in range(opts.jobs):
            self._spawn()

    def _spawn(self) -> None:
        tq = self._ctx.Queue()
        p = self._ctx.Process(target=_worker, args=(tq, self._results, self._out, self._opts, os.getpid()),
                              daemon=True)
        p.start()
        self._workers[p.pid] = (p, tq)
        self._idle_pending.add(p.pid)

    def idle(self) -> list[int]:
        return [pid for pid in self._workers if pid not in self.busy and pid not in self._idle_pending]

    def submit(self, pid: int, video: str, sha256: str) -> None:
        self.busy[pid] = (video, time.monotonic())
        self._workers[pid][1].put((video, sha256))

    def kill(self, pid: int) -> None:
        """Stop a stuck or dead worker and start another in its place."""
        p, _ = self._workers.pop(pid)
        p.kill()
        p.join(5)
        self.busy.pop(pid, None)
        self._idle_pending.discard(pid)
        self._spawn()

    def events(self, wait: float) -> Iterator[tuple]:
        try:
            kind, pid, payload = self._results.get(timeout=wait)
        except queue.Empty:
            return
        if kind == "ready":
            self._idle_pending.discard(pid)
        elif kind == "done":
            self.busy.pop(pid, None)
        yield kind, pid, payload

    def dead(self) -> list[int]:
        return [pid for pid, (p, _) in self._workers.items() if not p.is_alive()]

    def close(self) -> None:
        for p, tq in self._workers.values():
            tq.put(None)
        for p, _ in self._workers.values():
            p.join(10)
            if p.is_alive():
                p.kill()


# ---------------------------------------------------------------------------------------------
# manifest


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


def merge_manifest(out_dir: Path) -> list[dict]:
    """Write ``manifest.jsonl`` from every row so far (the latest per video and settings),
    atomically, then remove the merged journals."""
    rows = read_manifest(out_dir)
    latest: dict = {}
    for r in rows:
        latest[(r["path"],) + _key(r)] = r
    merged = sorted(latest.values(), key=lambda r: r["path"])
    # a journal still being written by another batch (this host's, or a shared folder's) stays
    journals = [j for j in sorted(_journal_dir(out_dir).glob("*.jsonl")) if _journal_finished(j)]
    with atomic_output(out_dir / "manifest.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in merged))
    _write_parquet(merged, out_dir / "manifest.parquet")
    for j in journals:
        j.unlink()
    if _journal_dir(out_dir).is_dir() and not any(_journal_dir(out_dir).iterdir()):
        _journal_dir(out_dir).rmdir()
    return merged


def run(paths: Iterable[str | os.PathLike], out_dir: str | os.PathLike, opts: BatchOptions | None = None,
        progress=None) -> Iterator[dict]:
    """Process every video of ``paths`` (see :func:`discover`) into ``out_dir``; yield one row
    per video as it finishes (skipped ones are not yielded). The manifest is merged at the end,
    also when the caller stops early."""
    from .model import resolve_model
    from .progress import silent

    opts = opts or BatchOptions()
    opts.check()
    progress = progress or silent
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    videos = discover(paths)
    settings = opts.fingerprint()
    model_fp = getattr(resolve_model(opts.model), "fingerprint", "") or "unpackaged"
    done = {_key(r) for r in read_manifest(out) if r.get("state") == FINISHED}
    hashes = {str(v): content_hash(v) for v in videos}  # each file read once, here
    todo = [v for v in videos if (hashes[str(v)], settings, model_fp) not in done]
    journal = _journal_dir(out)
    journal.mkdir(exist_ok=True)
    jpath = journal / _journal_name()
    failures = 0
    pool = _Pool(out, opts) if todo else None
    try:
        with open(jpath, "a") as jf:
            def record(row: dict) -> dict:
                nonlocal failures
                row.update(settings=settings, model=model_fp, task=opts.task,
                           state=FINISHED if row["status"] not in ("timeout", "crash") else "retry")
                failures += row["status"] != "ok"
                jf.write(json.dumps(row, sort_keys=True) + "\n")
                jf.flush()
                os.fsync(jf.fileno())
                progress("batch", len(videos) - len(todo) + n_done + 1, len(videos))
                return row

            queue_ = list(map(str, todo))
            n_done = 0
            while queue_ or (pool and pool.busy):
                for pid in pool.idle():
                    if queue_:
                        video = queue_.pop(0)
                        pool.submit(pid, video, hashes[video])
                for kind, pid, payload in pool.events(0.5):
                    if kind == "done":
                        yield record(payload)
                        n_done += 1
                now = time.monotonic()
                for pid, (video, t0) in list(pool.busy.items()):
                    if opts.timeout_s and now - t0 > opts.timeout_s:
                        pool.kill(pid)
                        yield record({"path": video, "status": "timeout", "sha256": hashes[video],
                                      "message": f"still running after {opts.timeout_s:g} s: stopped"})
                        n_done += 1
                for pid in pool.dead():
                    video = pool.busy.get(pid, (None,))[0]
                    pool.kill(pid)
                    if video is not None:
                        yield record({"path": video, "status": "crash", "sha256": hashes[video],
                                      "message": "the worker process died"})
                        n_done += 1
    finally:
        if pool is not None:
            pool.close()
        merge_manifest(out)


def main_summary(rows: list[dict], out_dir: Path, stream=sys.stderr) -> int:
    """Print what the batch did; the exit status: 0 when every video is ok, 1 otherwise."""
    bad = [r for r in rows if r["status"] != "ok"]
    stream.write(f"{len(rows)} video(s) processed, {len(bad)} failed; manifest: {out_dir / 'manifest.jsonl'}\n")
    for r in bad[:20]:
        stream.write(f"  {r['status']}: {r.get('message') or r['path']}\n")
    return 1 if bad else 0
