"""RowStore: per-window tables on disk, read back a block at a time."""
from __future__ import annotations

import numpy as np
import pytest

import speakerid.rowstore as rs
from speakerid.rowstore import RowStore, StoredRows


def test_append_read_take_and_views():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(1000, 7)).astype(np.float16)
    st = RowStore(7, np.float16)
    rows_a = st.append(data[:300])
    rows_b = st.append(data[300:])
    assert rows_a.tolist() == list(range(300)) and rows_b[0] == 300 and len(st) == 1000
    assert st.nbytes == 1000 * 7 * 2
    np.testing.assert_array_equal(st.read(250, 420), data[250:420])
    np.testing.assert_array_equal(st.read(990, 2000), data[990:])  # clipped at the end
    idx = np.array([999, 3, 3, 500, 0])
    np.testing.assert_array_equal(st.take(idx), data[idx])

    v = st.view()
    assert isinstance(v, StoredRows) and v.shape == (1000, 7) and v.dtype == np.float16 and len(v) == 1000
    np.testing.assert_array_equal(np.asarray(v), data)
    np.testing.assert_array_equal(v[10:20], data[10:20])
    np.testing.assert_array_equal(v[::7], data[::7])
    np.testing.assert_array_equal(v[5], data[5])
    mask = rng.random(1000) < 0.3
    np.testing.assert_array_equal(v[mask], data[mask])
    assert v.astype(np.float32).dtype == np.float32

    # a view on scattered rows (one track's windows among others'), and a subset of it
    mine = np.flatnonzero(np.arange(1000) % 3 == 1)
    w = st.view(mine)
    np.testing.assert_array_equal(np.asarray(w), data[mine])
    np.testing.assert_array_equal(w[40:60], data[mine[40:60]])
    sub = w.subset(np.arange(mine.size) % 2 == 0)
    np.testing.assert_array_equal(np.asarray(sub), data[mine[::2]])
    assert [b for b, _ in w.blocks(100)] == list(range(0, mine.size, 100))
    np.testing.assert_array_equal(np.concatenate([x for _, x in w.blocks(100)]), data[mine])
    st.close()


def test_scattered_reads_go_run_by_run(monkeypatch):
    """Rows spread over a long span are read run by run, not as one big read of the span."""
    data = np.arange(5000 * 4, dtype=np.float32).reshape(5000, 4)
    st = RowStore(4, np.float32)
    st.append(data)
    monkeypatch.setattr(rs, "_MAX_SPAN_BYTES", 64)
    reads = []
    real = st.read
    monkeypatch.setattr(st, "read", lambda a, b: reads.append(b - a) or real(a, b))
    idx = np.array([4999, 0, 1, 2, 2500, 2501, 7])
    np.testing.assert_array_equal(st.take(idx), data[idx])
    assert sorted(reads) == [1, 1, 2, 3]


def test_rejects_wrong_shape_and_out_of_range():
    st = RowStore((2, 3), np.float32)
    st.append(np.zeros((4, 2, 3)))
    with pytest.raises(ValueError, match="do not fit"):
        st.append(np.zeros((4, 3, 2)))
    with pytest.raises(IndexError):
        st.take([4])
    assert st.view().shape == (4, 2, 3)
