"""Rows of per-window data kept on disk instead of in memory, for videos of any length.

Long videos make long tables: a 0.5 KB embedding per 0.2 s mouth window per face, an audio
embedding per 20 ms, a distance profile per window. :class:`RowStore` appends such rows to an
anonymous temporary file (removed by the OS when it is closed or the process ends) and reads
back the rows a step of the computation needs, so the memory a pipeline holds does not grow with
the video. Reads go through ``readinto`` rather than a memory map: mapped pages would count as
the process's resident memory once touched.
"""
from __future__ import annotations

import os
import tempfile
import weakref
from collections.abc import Iterator

import numpy as np

__all__ = ["RowStore", "StoredRows"]

_MAX_SPAN_BYTES = 32 << 20
"""An index read covering at most this many bytes is one read of the whole span."""


class RowStore:
    """An append-only table of rows of one shape and dtype in a temporary file.

    ``append`` returns the row numbers it wrote; :meth:`view` gives a lazy, array-like window on
    any rows (:class:`StoredRows`). ``dir``: where the file lives (default: the system's
    temporary directory, ``TMPDIR``).
    """

    def __init__(self, row_shape: int | tuple[int, ...], dtype, *, dir: str | os.PathLike | None = None):
        self.row_shape = (int(row_shape),) if np.isscalar(row_shape) else tuple(int(x) for x in row_shape)
        self.dtype = np.dtype(dtype)
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize
        self._f = tempfile.TemporaryFile(prefix="speakerid-rows-", dir=dir)
        # the file lives as long as the store: closed when the store is collected, without the
        # ResourceWarning an unclosed file gives (results hold views of it, so there is no
        # single point where a caller could close it)
        self._finalizer = weakref.finalize(self, self._f.close)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    @property
    def nbytes(self) -> int:
        return self._n * self.row_bytes

    def append(self, rows: np.ndarray) -> np.ndarray:
        """Write ``rows`` (``(n, *row_shape)``) at the end; returns their row numbers."""
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape[1:] != self.row_shape:
            raise ValueError(f"rows of shape {rows.shape[1:]} do not fit a store of {self.row_shape}")
        self._f.seek(self._n * self.row_bytes)
        self._f.write(memoryview(rows).cast("B"))
        first = self._n
        self._n += rows.shape[0]
        return np.arange(first, self._n, dtype=np.int64)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start … stop − 1`` as a new array."""
        start, stop = max(0, int(start)), min(self._n, int(stop))
        out = np.empty((max(0, stop - start),) + self.row_shape, self.dtype)
        if out.size:
            self._f.seek(start * self.row_bytes)
            buf = memoryview(out).cast("B")
            got = 0
            while got < len(buf):
                k = self._f.readinto(buf[got:])
                if not k:
                    raise OSError("row store file ended early")
                got += k
        return out

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The given rows (any order, repeats allowed) as a new array."""
        rows = np.asarray(rows, np.int64).reshape(-1)
        if rows.size == 0:
            return np.empty((0,) + self.row_shape, self.dtype)
        if rows.min() < 0 or rows.max() >= self._n:
            raise IndexError(f"row out of range of a store of {self._n} rows")
        lo, hi = int(rows.min()), int(rows.max()) + 1
        if (hi - lo) * self.row_bytes <= max(_MAX_SPAN_BYTES, 4 * rows.size * self.row_bytes):
            return self.read(lo, hi)[rows - lo]
        # scattered over a long span: read each run of consecutive rows
        order = np.argsort(rows, kind="stable")
        s = rows[order]
        out = np.empty((rows.size,) + self.row_shape, self.dtype)
        breaks = np.flatnonzero(np.diff(s) > 1) + 1
        for a, b in zip(np.concatenate([[0], breaks]), np.concatenate([breaks, [s.size]]), strict=True):
            block = self.read(int(s[a]), int(s[b - 1]) + 1)
            out[order[a:b]] = block[s[a:b] - s[a]]
        return out

    def view(self, rows: np.ndarray | None = None) -> StoredRows:
        """A lazy array of ``rows`` of this store (default: all rows written so far)."""
        return StoredRows(self, np.arange(self._n, dtype=np.int64) if rows is None else rows)

    def close(self) -> None:
        self._finalizer()


class StoredRows:
    """Some rows of a :class:`RowStore`, used like a read-only array of shape
    ``(len(rows), *row_shape)``: indexing with an int, a slice, an int or bool array reads just
    those rows; ``np.asarray`` reads all of them."""

    def __init__(self, store: RowStore, rows: np.ndarray):
        self.store = store
        self.rows = np.asarray(rows, np.int64)
        # a contiguous run is read with one call whatever the index
        self._start = int(self.rows[0]) if self.rows.size and np.all(np.diff(self.rows) == 1) else None

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.rows.size,) + self.store.row_shape

    @property
    def dtype(self) -> np.dtype:
        return self.store.dtype

    @property
    def ndim(self) -> int:
        return 1 + len(self.store.row_shape)

    def __len__(self) -> int:
        return int(self.rows.size)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, slice):
            a, b, step = key.indices(self.rows.size)
            if step == 1:
                if self._start is not None:
                    return self.store.read(self._start + a, self._start + max(a, b))
                return self.store.take(self.rows[a:b])
            return self.store.take(self.rows[key])
        if isinstance(key, int | np.integer):
            return self.store.take(self.rows[[int(key)]])[0]
        key = np.asarray(key)
        if key.dtype == bool:
            key = np.flatnonzero(key)
        return self.store.take(self.rows[key])

    def subset(self, key) -> StoredRows:
        """A lazy view of some of these rows (``key``: a slice, an int or bool array)."""
        return StoredRows(self.store, self.rows[key])

    def blocks(self, size: int) -> Iterator[tuple[int, np.ndarray]]:
        """``(first index, rows)`` for consecutive blocks of ``size`` rows."""
        for b in range(0, self.rows.size, size):
            yield b, self[b:b + size]

    def astype(self, dtype) -> np.ndarray:
        """All the rows, read and converted."""
        return np.asarray(self, dtype)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[0:self.rows.size]
        return out if dtype is None else out.astype(dtype, copy=False)
