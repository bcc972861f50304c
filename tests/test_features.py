"""speakerid.features: 13 MFCC at 100 Hz and the one audio-window definition [4i, 4i+20)."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import AUDIO_DELAY_S, CLICKS_S

from speakerid import features as F
from speakerid.media import read_audio


def test_constants():
    assert (F.SAMPLE_RATE, F.MFCC_RATE, F.VIDEO_FPS) == (16000, 100, 25)
    assert (F.COLS_PER_FRAME, F.WINDOW_FRAMES, F.WINDOW_COLS) == (4, 5, 20)


@pytest.mark.parametrize("i, shift, expect", [(0, 0, (0, 20)), (1, 0, (4, 24)), (7, 0, (28, 48)),
                                              (10, 3, (43, 63)), (10, -5, (35, 55)), (0, -1, (-1, 19))])
def test_window_cols(i, shift, expect):
    assert F.window_cols(i, shift) == expect


def test_audio_window_slices_and_edges():
    mfcc = np.arange(13 * 100, dtype=np.float32).reshape(13, 100)
    w = F.audio_window(mfcc, 3)
    assert w.shape == (13, 20)
    np.testing.assert_array_equal(w, mfcc[:, 12:32])
    np.testing.assert_array_equal(F.audio_window(mfcc, 3, 2), mfcc[:, 14:34])
    assert F.audio_window(mfcc, 0, -1) is None  # before the audio
    assert F.audio_window(mfcc, 20) is not None  # cols [80, 100): the last full window
    assert F.audio_window(mfcc, 21) is None
    assert F.audio_window(mfcc, 20, 1) is None


def test_num_windows():
    assert F.num_windows(5) == 1
    assert F.num_windows(4) == 0
    assert F.num_windows(0) == 0
    assert F.num_windows(100) == 96
    # audio-limited: 100 cols hold windows 0..20
    assert F.num_windows(100, 100) == 21
    assert F.num_windows(25, 100) == 21
    assert F.num_windows(100, 19) == 0
    # every window counted has its audio inside the MFCC
    for n_frames, n_cols in [(30, 120), (30, 119), (50, 150), (7, 40)]:
        n = F.num_windows(n_frames, n_cols)
        if n:
            assert F.window_cols(n - 1)[1] <= n_cols and n - 1 + F.WINDOW_FRAMES <= n_frames
        assert F.window_cols(n)[1] > n_cols or n + F.WINDOW_FRAMES > n_frames


def test_shift_ms_sign_convention():
    # +s columns = audio looked up later = audio lags = positive offset_ms
    assert F.shift_to_ms(1) == 10.0
    assert F.shift_to_ms(-4) == -40.0
    assert F.ms_to_shift(120) == 12
    assert F.ms_to_shift(-300) == -30
    assert F.ms_to_shift(14) == 1
    assert F.ms_to_shift(F.shift_to_ms(-7)) == -7


def test_mfcc_shape_and_rate():
    for n in (16000, 16159, 16160, 48000, 400, 1):
        m = F.compute_mfcc(np.zeros(n, np.float32) + 1e-3)
        assert m.shape == (13, int(np.ceil(n / 160))), n
        assert m.dtype == np.float32
    assert F.compute_mfcc(np.zeros(0, np.float32)).shape == (13, 0)
    with pytest.raises(ValueError):
        F.compute_mfcc(np.zeros(100, np.float32), sample_rate=44100)


def test_mfcc_column_timing():
    # a 10 ms burst at 0.50 s: column j covers samples [160 j, 160 j + 400), so the energy
    # coefficient (c0 = log energy) is highest in the columns 48..50 that see the burst
    rng = np.random.default_rng(0)
    audio = rng.normal(0, 1e-3, 16000).astype(np.float32)
    audio[8000:8160] += rng.normal(0, 0.5, 160).astype(np.float32)
    m = F.compute_mfcc(audio)
    loud = np.nonzero(m[0] > m[0].min() + 0.5 * (m[0].max() - m[0].min()))[0]
    assert loud.min() >= 48 and loud.max() <= 50


def test_click_lands_in_the_window_of_its_video_frame(late_audio_mkv):
    """End to end: a click the file plays at video time t shows in MFCC column ~100·t, which
    lies in the first four columns of window i = 25·t (through read_audio's alignment and the
    [4i, 4i+20) definition)."""
    audio = read_audio(late_audio_mkv)
    m = F.compute_mfcc(audio)
    for c in CLICKS_S:
        t = AUDIO_DELAY_S + c  # video time of the click: 0.8 s and 1.52 s (frames 20, 38)
        frame = int(round(t * F.VIDEO_FPS))
        col = int(round(t * 100))
        lo = col - 6
        peak = lo + int(np.argmax(m[0, lo: lo + 12]))
        # a 25 ms analysis window starting at 160 j sees the click at sample 100 t for j in
        # (100 t − 2.5, 100 t]: the energy peak is one of those columns
        assert col - 2 <= peak <= col, (peak, t)
        start, stop = F.window_cols(frame)
        assert start - 2 <= peak < start + F.COLS_PER_FRAME
        assert stop - start == 20


def test_cepstral_mean_normalisation_removes_a_channel_offset():
    rng = np.random.default_rng(1)
    speech = rng.normal(0, 3, (13, 700)).astype(np.float32)
    channel = rng.normal(0, 10, (13, 1)).astype(np.float32)  # a microphone: a constant cepstral vector
    a = F.normalize_cepstra(speech, 301)
    b = F.normalize_cepstra(speech + channel, 301)
    np.testing.assert_allclose(a, b, atol=1e-4)
    # each column less the mean of its centred neighbourhood (shorter at the ends)
    j = 5
    np.testing.assert_allclose(a[:, j], speech[:, j] - speech[:, :j + 151].mean(1), atol=1e-4)
    assert F.normalize_cepstra(speech[:, :0], 301).shape == (13, 0)


def test_cepstral_variance_normalisation_removes_a_range_and_survives_silence():
    rng = np.random.default_rng(2)
    speech = rng.normal(0, 3, (13, 700)).astype(np.float32)
    gain = rng.uniform(0.3, 3.0, (13, 1)).astype(np.float32)   # a voice with a wider or narrower range
    channel = rng.normal(0, 10, (13, 1)).astype(np.float32)
    a = F.normalize_cepstra(speech, 301, variance=True)
    b = F.normalize_cepstra(speech * gain + channel, 301, variance=True)
    np.testing.assert_allclose(a, b, atol=1e-3)
    # unit variance over each column's own neighbourhood (here: the middle column's)
    j = 350
    seg = speech[:, j - 150:j + 151].astype(np.float64)
    np.testing.assert_allclose(a[:, j], (speech[:, j] - seg.mean(1)) / seg.std(1), atol=1e-3)
    # without variance it is the mean normalisation alone
    np.testing.assert_allclose(F.normalize_cepstra(speech, 301, variance=False), F.normalize_cepstra(speech, 301))
    # digital silence (no variation): finite, zero, not blown up
    silent = np.full((13, 400), -36.0, np.float32)
    out = F.normalize_cepstra(silent, 301, variance=True)
    assert np.isfinite(out).all() and np.abs(out).max() < 1e-3


def test_mfcc_in_chunks_is_exactly_the_one_pass_mfcc(grid_clip, monkeypatch):
    """Long audio is computed a chunk of columns at a time (bounded memory); each chunk starts
    one hop early for the pre-emphasis filter, so the numbers are bit for bit the same."""
    audio = read_audio(grid_clip)
    rng = np.random.default_rng(3)
    for n in (audio.size, audio.size - 77, 37 * 160, 37 * 160 + 1, 74 * 160 + 241):
        x = audio[:n] if n <= audio.size else rng.normal(0, 0.1, n).astype(np.float32)
        whole = F.compute_mfcc(x)  # the GRID clip is 3 s: one chunk
        monkeypatch.setattr(F, "MFCC_CHUNK_COLS", 37)
        chunked = F.compute_mfcc(x)
        monkeypatch.undo()
        assert chunked.shape == whole.shape == (F.NUM_CEPSTRA, int(np.ceil(n / 160)))
        np.testing.assert_array_equal(chunked, whole)


def test_mfcc_from_pieces_is_exactly_the_one_pass_mfcc(grid_clip, monkeypatch):
    """iter_mfcc (streamed audio of a long video) gives compute_mfcc's numbers, bit for bit,
    whatever the pieces' sizes and wherever its blocks of columns fall."""
    audio = read_audio(grid_clip)
    monkeypatch.setattr(F, "MFCC_CHUNK_COLS", 37)  # many blocks from a 3 s clip
    rng = np.random.default_rng(5)
    for n in (audio.size, audio.size - 77, 37 * 160, 37 * 160 + 1, 400, 100, 0):
        x = audio[:n]
        whole = F.compute_mfcc(x)
        for piece in (1, 333, 160 * 37, max(n, 1)):
            # random cut points, or a piece every 97 samples
            inner = rng.integers(0, n + 1, n // piece + 1) if piece > 1 else np.arange(0, n, 97)
            cuts = np.unique(np.concatenate([[0, n], inner]))
            pieces = [x[a:b] for a, b in zip(cuts[:-1], cuts[1:])]
            blocks = list(F.iter_mfcc(pieces))
            got = np.concatenate(blocks, axis=1) if blocks else np.zeros((F.NUM_CEPSTRA, 0), np.float32)
            assert all(b.shape[1] <= 37 + 2 for b in blocks)  # the last may hold the 2 padded columns too
            assert got.shape == whole.shape, (n, piece)
            np.testing.assert_array_equal(got, whole)
