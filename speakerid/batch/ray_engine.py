"""The Ray engine: each video a Ray task, on a local Ray instance or an existing cluster.

The per-video function is the local engine's (:func:`.video.process_video`); each Ray worker
process loads the model once, for all the tasks it runs. At most ``jobs`` tasks are in flight,
so a task's start is its submission (a timeout counts from it) and the cluster's queue holds no
more than the batch can use. Rows come back to the driver, which writes the same journal and
manifest as the local engine; the outputs are written by the tasks, so ``out_dir`` must be a
folder every node sees (a shared filesystem) when the cluster has several machines.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from .inputs import BatchOptions
from .video import crashed_row, load_worker, process_video, stopped_row

_LOADED: dict = {}  # per Ray worker process: options key → (model, detector)


def _task(video: str, sha256: str, out_dir: str, opts: BatchOptions) -> dict:
    key = (opts.model, opts.detector, opts.threads, opts.memory_mb)
    if key not in _LOADED:
        _LOADED[key] = load_worker(opts)
    model, detector = _LOADED[key]
    return process_video(Path(video), Path(out_dir), opts, model, detector, sha256=sha256)


def run_ray(out_dir: Path, opts: BatchOptions, todo: list[str], hashes: dict[str, str]) -> Iterator[dict]:
    """Each video's row as its task finishes, and a row for each task cancelled (``timeout``) or
    lost (``crash``: the worker died, or Ray could not run it)."""
    try:
        import ray
    except ImportError:
        from ..errors import InvalidSettingError

        raise InvalidSettingError("the ray engine needs Ray: pip install 'speakerid[ray]'") from None
    started = not ray.is_initialized()
    if started:
        if opts.ray_address:
            ray.init(address=opts.ray_address, log_to_driver=False)
        else:  # a local instance sized to the batch
            ray.init(num_cpus=opts.jobs * opts.threads, include_dashboard=False, log_to_driver=False)
    remote = ray.remote(num_cpus=opts.threads, max_retries=0)(_task)
    waiting = list(todo)
    running: dict = {}  # ObjectRef → (video, submitted)
    try:
        while waiting or running:
            while waiting and len(running) < opts.jobs:
                video = waiting.pop(0)
                running[remote.remote(video, hashes[video], str(out_dir), opts)] = (video, time.monotonic())
            done, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
            for ref in done:
                video, _t0 = running.pop(ref)
                try:
                    yield ray.get(ref)
                except (ray.exceptions.RayError, OSError) as e:  # the worker died, or the task could not run
                    yield crashed_row(video, hashes[video], f"the Ray task failed: {type(e).__name__}: {e}"[:500])
            now = time.monotonic()
            for ref, (video, t0) in list(running.items()):
                if opts.timeout_s and now - t0 > opts.timeout_s:
                    ray.cancel(ref, force=True)
                    running.pop(ref)
                    yield stopped_row(video, hashes[video], opts.timeout_s)
    finally:
        for ref in running:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()
