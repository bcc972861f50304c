"""Audio features: 13 MFCC at 100 Hz, and the one definition of an audio window.

The model's timeline is 25 fps video and 100 Hz MFCC, so one video frame spans exactly four
MFCC columns. Video window ``i`` is frames ``[i, i + 5)`` (0.2 s); the audio window that belongs
to it is MFCC columns ``[4 i, 4 i + 20)``. An audio shift of ``s`` columns (10 ms each) moves
that to ``[4 i + s, 4 i + s + 20)``: positive ``s`` looks later in the audio, which is how a
video whose audio lags (offset_ms > 0) is matched. Every module uses these helpers.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from .smoothing import centred_mean
from .timebase import (  # noqa: F401  (the time base, used with these helpers everywhere)
    COLS_PER_FRAME,
    MFCC_RATE,
    MS_PER_COL,
    SAMPLE_RATE,
    VIDEO_FPS,
    WINDOW_COLS,
    WINDOW_FRAMES,
)

NUM_CEPSTRA = 13
NUM_MEL_FILTERS = 26
"""Mel filterbank bands the cepstra are taken from (DCT-II of their log energies)."""
CEP_LIFTER = 22
"""Sinusoidal lifter applied to the cepstra (python_speech_features' default, stated here so
code that inverts the MFCC, such as the training warp, uses the same value)."""

SILENT_C0 = -30.0
"""c0 (log frame energy) at or below this is digital silence: an all-zero frame gives log(eps) ≈ −36;
the quietest non-silent frames of the training and eval clips reach about −27."""


def compute_mfcc(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """13 MFCC per 10 ms of mono audio, as a float32 array of shape ``(13, T)``.

    Column ``j`` is computed from samples ``[160 j, 160 j + 400)`` (25 ms window). ``T`` is
    ``len(audio) // 160`` rounded as python_speech_features frames it (at least 1 for any
    non-empty input).
    """
    from python_speech_features import mfcc

    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"compute_mfcc expects {SAMPLE_RATE} Hz audio, got {sample_rate} Hz")
    if audio.size == 0:
        return np.zeros((NUM_CEPSTRA, 0), np.float32)
    # One column per started 10 ms hop: T = ceil(n / 160), so 1 s of audio gives exactly 100
    # columns (25 frames × 4). python_speech_features only makes frames whose 25 ms window
    # starts before the last 25 ms (99 for 1 s), so pad the tail with the 15 ms of zeros it
    # would pad with anyway, then keep the columns whose hop starts inside the signal.
    hop = sample_rate // MFCC_RATE
    win = int(0.025 * sample_rate)
    n_cols = max(1, int(np.ceil(audio.size / hop)))
    # python_speech_features holds ~1.5 KB of float64 frames and spectra per column (90 MB per
    # minute of audio), so long audio goes through in chunks of columns. Every column depends
    # only on its own 25 ms and, through the pre-emphasis filter, the one sample before: a
    # chunk starts one hop early and drops that first column, giving the very same numbers.
    out = np.empty((NUM_CEPSTRA, n_cols), np.float32)
    for c0 in range(0, n_cols, MFCC_CHUNK_COLS):
        c1 = min(n_cols, c0 + MFCC_CHUNK_COLS)
        lead = 1 if c0 else 0
        s0, s1 = (c0 - lead) * hop, (c1 - 1) * hop + win
        seg = audio[s0:min(s1, audio.size)]
        if s1 > audio.size:  # the tail: the zeros it would be padded with anyway
            seg = np.concatenate([seg, np.zeros(min(s1 - audio.size, win - hop), np.float32)])
        feats = mfcc(seg, samplerate=sample_rate, winlen=0.025, winstep=0.01, numcep=NUM_CEPSTRA, nfilt=NUM_MEL_FILTERS,
                     nfft=512, ceplifter=CEP_LIFTER)
        out[:, c0:c1] = feats[lead:lead + c1 - c0].T
    return out


def iter_mfcc(pieces: Iterable[np.ndarray], sample_rate: int = SAMPLE_RATE) -> Iterator[np.ndarray]:
    """:func:`compute_mfcc` of the concatenation of ``pieces`` (16 kHz mono samples, e.g. from
    :func:`speakerid.media.iter_audio`), in blocks of ``MFCC_CHUNK_COLS`` columns (the last up
    to two more) as the samples arrive: the same numbers, without ever holding the whole signal.

    A block of columns ``[c0, c1)`` is made as soon as the samples under its last 25 ms window
    have arrived, from the samples one hop before ``c0`` on (pre-emphasis looks one sample back;
    that extra column is dropped). What is left at the end goes through :func:`compute_mfcc`,
    which pads the tail as it does for a whole signal.
    """
    hop = sample_rate // MFCC_RATE
    win = int(0.025 * sample_rate)
    buf = np.zeros(0, np.float32)
    base = 0  # sample number of buf[0]
    c0 = 0    # next column to make
    for x in pieces:
        x = np.asarray(x, np.float32).reshape(-1)
        if x.size:
            buf = np.concatenate([buf, x])
        while True:
            c1 = c0 + MFCC_CHUNK_COLS
            if base + buf.size < (c1 - 1) * hop + win:
                break
            lead = 1 if c0 else 0
            s0 = (c0 - lead) * hop
            seg = buf[s0 - base:(c1 - 1) * hop + win - base]
            yield compute_mfcc(seg, sample_rate)[:, lead:lead + c1 - c0]
            # keep from one hop before the next block (its pre-emphasis sample) on
            drop = (c1 - 1) * hop - base
            buf, base, c0 = buf[drop:], base + drop, c1
    if base + buf.size == 0:
        return
    lead = 1 if c0 else 0
    tail = compute_mfcc(buf[(c0 - lead) * hop - base:], sample_rate)[:, lead:]
    if tail.shape[1]:
        yield tail


def normalize_cepstra(mfcc: np.ndarray, window_cols: int, variance: bool = False) -> np.ndarray:
    """Cepstral mean normalisation: each cepstrum less its mean over a centred window of
    ``window_cols`` columns (fewer at the ends; the whole clip when it is shorter).

    A microphone, a room or a codec adds a near-constant vector to the cepstra; removing the
    local mean leaves what changes with speech, so a model trained on a few recording setups
    meets new ones on the same footing. Works on any length in O(T).

    ``variance``: also divide by the standard deviation over the same window (mean and
    variance normalisation), so a voice's or a recording's range of each cepstrum counts no
    more than another's. A window with (almost) no variation, such as digital silence, is
    divided by ``CVN_FLOOR`` instead.
    """
    m = np.asarray(mfcc, np.float64)
    if m.shape[1] == 0 or window_cols <= 1:
        return np.asarray(mfcc, np.float32)
    width = int(window_cols) | 1  # centred: as many columns before as after
    mean = centred_mean(m, width, axis=1)
    out = m - mean
    if variance:
        var = centred_mean(m * m, width, axis=1) - mean * mean
        out /= np.sqrt(np.maximum(var, CVN_FLOOR ** 2))
    return out.astype(np.float32)


CVN_FLOOR = 0.05
"""Smallest standard deviation :func:`normalize_cepstra` divides by (cepstra of speech vary by
0.5–5 over 3 s; digital silence does not vary at all)."""


MFCC_CHUNK_COLS = 1500
"""Columns (15 s) computed at a time by :func:`compute_mfcc`, bounding its working memory."""


def window_cols(i: int, shift_cols: int = 0) -> tuple[int, int]:
    """MFCC column range ``[start, stop)`` of the audio window for video window ``i``."""
    start = COLS_PER_FRAME * int(i) + int(shift_cols)
    return start, start + WINDOW_COLS


def audio_window(mfcc: np.ndarray, i: int, shift_cols: int = 0) -> np.ndarray | None:
    """The ``(13, 20)`` audio window for video window ``i`` shifted by ``shift_cols``.

    Returns ``None`` when the window would reach outside the audio.
    """
    start, stop = window_cols(i, shift_cols)
    if start < 0 or stop > mfcc.shape[1]:
        return None
    return mfcc[:, start:stop]


def num_windows(num_frames: int, num_cols: int | None = None) -> int:
    """How many full video windows fit ``num_frames`` frames (and ``num_cols`` MFCC columns)."""
    n = max(0, int(num_frames) - WINDOW_FRAMES + 1)
    if num_cols is not None:
        n = min(n, max(0, (int(num_cols) - WINDOW_COLS) // COLS_PER_FRAME + 1))
    return n


def shift_to_ms(shift_cols: int | float) -> float:
    """Audio shift in MFCC columns → offset in ms (``offset_ms = t_audio − t_video``)."""
    return float(shift_cols) * MS_PER_COL


def ms_to_shift(offset_ms: float) -> int:
    """Offset in ms → nearest audio shift in MFCC columns."""
    return int(round(float(offset_ms) / MS_PER_COL))


def reference_span(centre, n: int, width: int):
    """``(lo, hi)``: the frames ``[lo, hi)`` of a track of ``n`` frames whose mean is the mouth
    reference of frame ``centre`` (an int or an array): ``width`` frames centred on it, cut at
    the track's ends. The one definition the network's
    :meth:`~speakerid.model.SyncNet.mouth_reference` and the streaming faces stage share."""
    lo = np.clip(centre - width // 2, 0, n)
    return lo, np.clip(centre - width // 2 + width, 0, n)


MIN_SPAN_S = 0.4
"""Beyond the search range and one window, this much more video is needed, so that every shift
in the range is seen by at least ~10 windows."""


def min_duration_s(search_ms: float) -> float:
    """Shortest clip (video with audio) whose offset can be searched within ±``search_ms``:
    the measurement of sync and the scoring of speakers both need it."""
    return search_ms / 1000.0 + WINDOW_FRAMES / VIDEO_FPS + MIN_SPAN_S


def require_span(name, have_s: float, search_ms: float, *, doing: str, hint: str = "", slack_s: float = 1e-6) -> float:
    """Raise :class:`~speakerid.errors.TooShortError` when ``have_s`` seconds of video with audio
    are fewer than :func:`min_duration_s` needs (``doing`` says for what, ``hint`` what to do);
    return that minimum."""
    from .errors import TooShortError

    need = min_duration_s(search_ms)
    if have_s + slack_s < need:
        raise TooShortError(f"{name}: {have_s:.2f} s of video with audio; {doing} within ±{search_ms:.0f} ms needs "
                            f"at least {need:.2f} s" + (f" ({hint})" if hint else ""))
    return need
