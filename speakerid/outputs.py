"""Writing output files safely: checked before the work, written atomically, never half-left.

Every file speakerid writes goes through :func:`atomic_output`:

* :func:`check_output_path` runs before any analysis, so a bad target fails at once: it names
  the input it would overwrite, an existing file (unless replacing was asked for), a folder that
  cannot be written, or a disk without room.
* The data goes to a hidden partial file beside the target, named with this host and process
  (``.NAME.HOST.PID.XXXX.speakerid-partial.EXT``), and is renamed onto the target only when
  complete (and verified, where the writer verifies). A partial file left by a process that no
  longer runs on this host (killed with SIGKILL, a power cut) is removed by the next write to
  the same folder.
* SIGINT and SIGTERM during a write are remembered even where a native library swallows the
  ``KeyboardInterrupt``: an interrupted write is never renamed into place, and the interrupt
  is raised again once the partial file is gone.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

from .errors import OutputExistsError, OutputNotWritableError

PathLike = str | os.PathLike

PARTIAL_TAG = ".speakerid-partial"
MIN_FREE_BYTES = 1 << 20
"""A target folder with less free space than this (plus what the caller says it needs) is
refused before the work starts."""

_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.EFBIG}
_written: list[str] = []


def outputs_written() -> list[str]:
    """Targets this process has renamed into place so far, oldest first (the CLI names them
    when a command is interrupted part-way)."""
    return list(_written)


def host_tag() -> str:
    """This host's name as it goes into partial and journal file names."""
    return "".join(ch for ch in socket.gethostname() if ch.isalnum() or ch in "-_")[:40] or "host"


def pid_alive(pid: int) -> bool:
    """Whether a process of this host runs with that id."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


def remove_stale_partials(target: PathLike) -> list[Path]:
    """Remove partial files of ``target`` left by speakerid processes of this host that no
    longer run; returns what was removed. Partial files of other hosts (a shared folder) and of
    running processes are left alone."""
    target = Path(target)
    if not target.parent.is_dir():
        return []
    host = host_tag()
    removed = []
    for p in target.parent.glob(f".{target.name}.{host}.*{PARTIAL_TAG}*"):
        rest = p.name[len(f".{target.name}.{host}."):]
        pid_text = rest.split(".", 1)[0]
        if not pid_text.isdigit() or pid_alive(int(pid_text)):
            continue
        with contextlib.suppress(OSError):
            p.unlink()
            removed.append(p)
    return removed


def _existing_folder(target: Path) -> Path:
    d = target.parent
    while not d.exists() and d != d.parent:
        d = d.parent
    return d


def check_writable(target: PathLike, *, need_bytes: int = 0, probe: bool = True) -> None:
    """Raise :class:`OutputNotWritableError` unless a file can be created at ``target``: its
    folder (or the nearest existing folder above it, where the missing ones will be made) takes
    a new file, ``target`` is not a folder, and the disk has ``need_bytes`` free (and 1 MB)."""
    target = Path(target)
    if target.is_dir():
        raise OutputNotWritableError(f"{target}: is a folder, not a file to write")
    d = _existing_folder(target)
    if not d.is_dir():
        raise OutputNotWritableError(f"{target}: cannot be created: {d} is not a folder")
    if probe:
        try:
            fd, name = tempfile.mkstemp(prefix=".speakerid-write-test.", dir=d)
        except OSError as e:
            raise OutputNotWritableError(f"{target}: cannot write in {d}: {e.strerror or e}") from e
        os.close(fd)
        os.unlink(name)
    free = shutil.disk_usage(d).free
    if free < need_bytes + MIN_FREE_BYTES:
        raise OutputNotWritableError(f"{target}: not enough free space in {d} ({free / 1e6:.1f} MB free, "
                                     f"{(need_bytes + MIN_FREE_BYTES) / 1e6:.1f} MB needed)")


def check_output_path(target: PathLike, *, protect: Iterable[PathLike] = (), overwrite: bool = True,
                      need_bytes: int = 0, probe: bool = True) -> None:
    """Raise before the work if ``target`` cannot be written as asked: it is one of ``protect``
    (the inputs: by path, or the same file through a link) → :class:`OutputExistsError`; it
    exists and ``overwrite`` is false → :class:`OutputExistsError`; its folder cannot take it →
    :class:`OutputNotWritableError` (``probe``: by creating a file there and removing it)."""
    target = Path(target)
    for q in protect:
        if Path(q).exists() and target.exists() and os.path.samefile(q, target):
            raise OutputExistsError(f"{target}: refusing to overwrite the input file")
        if Path(q).resolve() == target.resolve():
            raise OutputExistsError(f"{target}: refusing to overwrite the input file")
    if target.exists() and not overwrite:
        raise OutputExistsError(f"{target}: exists (pass overwrite=True / --force to replace it)")
    check_writable(target, need_bytes=need_bytes, probe=probe)


def _tmp_beside(target: Path, keep_suffix: bool = True) -> Path:
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.{host_tag()}.{os.getpid()}.",
                                    suffix=PARTIAL_TAG + (target.suffix if keep_suffix else ""), dir=target.parent)
    except OSError as e:
        raise OutputNotWritableError(f"{target}: cannot write in {target.parent}: {e.strerror or e}") from e
    os.close(fd)
    # mkstemp makes the file private (0600); an output should get the usual permissions
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)
    return Path(name)


class _InterruptWatch:
    """Notes SIGINT/SIGTERM while a write runs (main thread only), then lets the signal act as
    before: SIGINT raises ``KeyboardInterrupt``; SIGTERM raises it too, so the partial file is
    removed instead of the process dying mid-write."""

    def __init__(self):
        self.interrupted = False
        self._old: dict = {}

    def _handler(self, signum, frame):
        self.interrupted = True
        raise KeyboardInterrupt(f"signal {signum}")

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                old = signal.getsignal(sig)
                if old in (signal.SIG_IGN, None):
                    continue  # a process that ignores the signal keeps ignoring it
                self._old[sig] = old
                signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


@contextlib.contextmanager
def atomic_output(target: PathLike, *, protect: Iterable[PathLike] = (), overwrite: bool = True,
                  need_bytes: int = 0, keep_suffix: bool = True):
    """Yield a temporary path beside ``target``; when the block ends without an error (and
    without an interrupt, even one a native library swallowed), rename it onto ``target``.

    Refuses to write over any path in ``protect`` (the inputs), and over an existing ``target``
    when ``overwrite`` is false. On error or interrupt the partial file is removed. A failing
    disk (full, read-only, quota) raises :class:`OutputNotWritableError` naming the target.
    ``keep_suffix=False`` gives the partial file no extension of the target's (where a folder of
    such files is listed by extension, as the training cache is).
    """
    target = Path(target)
    # the partial file itself proves the folder writable: no separate probe
    check_output_path(target, protect=protect, overwrite=overwrite, need_bytes=need_bytes, probe=False)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputNotWritableError(f"{target}: cannot create its folder: {e.strerror or e}") from e
    remove_stale_partials(target)
    tmp = _tmp_beside(target, keep_suffix)
    try:
        with _InterruptWatch() as watch:
            try:
                yield tmp
            except OSError as e:
                if getattr(e, "errno", None) in _WRITE_ERRNOS:
                    raise OutputNotWritableError(f"{target}: writing failed: {e.strerror or e}") from e
                raise
            if watch.interrupted:
                raise KeyboardInterrupt("interrupted while writing")
            if not overwrite and target.exists():
                raise OutputExistsError(f"{target}: appeared while it was being written")
            os.replace(tmp, target)
            _written.append(str(target))
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(target: PathLike, text: str, *, protect: Iterable[PathLike] = (), overwrite: bool = True) -> Path:
    """Write ``text`` (UTF-8) to ``target`` through :func:`atomic_output`."""
    with atomic_output(target, protect=protect, overwrite=overwrite) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return Path(target)
