"""The local engine: a pool of worker processes on this machine, each holding the model once, fed
one video at a time so that a stuck or dead worker can be replaced."""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import time
from collections.abc import Iterator
from pathlib import Path

from .inputs import BatchOptions
from .video import crashed_row, load_worker, process_video, stopped_row


def _exit_with_parent(parent: int) -> None:
    """A worker whose batch process is gone (killed) stops at once instead of running on."""
    import threading

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _worker(tasks, results, out_dir: str, opts: BatchOptions, parent: int) -> None:
    _exit_with_parent(parent)
    model, detector = load_worker(opts)
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



def run_local(out_dir: Path, opts: BatchOptions, todo: list[str], hashes: dict[str, str]) -> Iterator[dict]:
    """Each video's row as it finishes, and a row for each one stopped (``timeout``) or lost with
    its worker (``crash``)."""
    pool = _Pool(out_dir, opts)
    waiting = list(todo)
    try:
        while waiting or pool.busy:
            for pid in pool.idle():
                if waiting:
                    video = waiting.pop(0)
                    pool.submit(pid, video, hashes[video])
            for kind, _pid, payload in pool.events(0.5):
                if kind == "done":
                    yield payload
            now = time.monotonic()
            for pid, (video, t0) in list(pool.busy.items()):
                if opts.timeout_s and now - t0 > opts.timeout_s:
                    pool.kill(pid)
                    yield stopped_row(video, hashes[video], opts.timeout_s)
            for pid in pool.dead():
                video = pool.busy.get(pid, (None,))[0]
                pool.kill(pid)
                if video is not None:
                    yield crashed_row(video, hashes[video], "the worker process died")
    finally:
        pool.close()

