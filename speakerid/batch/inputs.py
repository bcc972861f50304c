"""What a batch runs on: its options, the videos its inputs name, their content hashes, a shard."""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputNotFoundError, InvalidSettingError

MEDIA_EXTENSIONS = (".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v", ".mts", ".ts", ".mpg", ".mpeg", ".flv", ".wmv")
TASKS = ("sync", "speakers", "both")
ENGINES = ("local", "ray")
FINISHED = "finished"  # row["state"]: a result (ok or a named error) that a re-run keeps


@dataclass(frozen=True)
class BatchOptions:
    task: str = "sync"
    """``sync`` (offset), ``speakers`` (who speaks) or ``both``."""
    jobs: int = 1
    """Videos processed at once (worker processes, or Ray tasks in flight)."""
    threads: int = 1
    """Torch threads per worker (the CPUs a Ray task asks for)."""
    timeout_s: float | None = None
    """Per video; the worker is killed (the Ray task cancelled) when it runs over."""
    memory_mb: int | None = None
    """Address-space limit per worker; a video that needs more gets status ``MemoryError``."""
    detector: str | None = None
    model: str | None = None
    engine: str = "local"
    """``local`` (a process pool on this machine) or ``ray`` (Ray tasks: a local Ray instance,
    or the cluster at ``ray_address``)."""
    ray_address: str | None = None
    shard: str | None = None
    """``K/N``: process only the K-th of N equal shares of the sorted video list (a Slurm job
    array, a shard per job); the manifest is then merged by ``speakerid batch --merge``."""

    def check(self) -> None:
        if self.task not in TASKS:
            raise InvalidSettingError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.engine not in ENGINES:
            raise InvalidSettingError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.jobs < 1 or self.threads < 1:
            raise InvalidSettingError(f"jobs and threads must be at least 1, got {self.jobs} and {self.threads}")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise InvalidSettingError(f"timeout_s must be positive, got {self.timeout_s}")
        if self.shard is not None:
            parse_shard(self.shard)

    def fingerprint(self) -> str:
        """What changes the results (not how they are computed in parallel, nor where)."""
        from .. import __version__

        key = {"task": self.task, "detector": self.detector or "default", "version": __version__}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def parse_shard(shard: str) -> tuple[int, int]:
    """``"K/N"`` → ``(K, N)``, 1 ≤ K ≤ N; an :class:`InvalidSettingError` otherwise."""
    try:
        k, n = (int(x) for x in str(shard).split("/"))
    except ValueError:
        raise InvalidSettingError(f"shard must be K/N (e.g. 3/10), got {shard!r}") from None
    if not 1 <= k <= n:
        raise InvalidSettingError(f"shard K/N needs 1 ≤ K ≤ N, got {shard!r}")
    return k, n


def take_shard(videos: list[Path], shard: str | None) -> list[Path]:
    """The videos of shard ``K/N``: every N-th of the sorted list, from the K-th (so shards are
    alike in size and a video's shard does not depend on which shard asks)."""
    if shard is None:
        return videos
    k, n = parse_shard(shard)
    return videos[k - 1::n]


def discover(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Media files named by ``inputs``: files as they are, folders searched recursively by
    extension, ``.txt``/``.csv`` files read as lists (one path per line, the first CSV field;
    relative paths from the list's folder). Sorted, each once."""
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
