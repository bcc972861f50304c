"""Audio aligned to the first video frame: mono 16 kHz for the model, or native for rewriting.

Sample 0 plays at the presentation time of the first video frame (padded with silence, or the
lead trimmed), so audio sample ``n`` plays ``n / rate`` s after that frame. Audio is decoded a
piece at a time; nothing here holds a long file's audio whole.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CorruptMediaError, EmptyMediaError, NoAudioStreamError
from ..timebase import SAMPLE_RATE
from .container import PathLike, _check_codec, _check_path, _open
from .video import first_video_time

SILENCE_DBFS = -55.0
"""Audio whose loudest 0.2 s stays below this level (dB full scale) holds no speech."""
SILENCE_BLOCK = SAMPLE_RATE // 5
"""The 0.2 s stretch (samples) the silence rule reads, aligned at sample 0."""


def _stream_audio(p: Path, meta: dict, *, rate: int | None, mono: bool, video_start_s: float | None) -> Iterator[np.ndarray]:
    """Decode the first audio stream to planar float32 pieces ``(channels, n)``: at ``rate``
    (None = its own) and mixed to mono when asked, else with its own channel layout. ``meta``
    gets ``rate``, ``layout``, ``audio_start_s`` and ``video_start_s`` before the first piece,
    ``cancelled_samples`` as it goes (:class:`_PhaseSafeMono`), and ``listed_s`` (the stream's
    listed duration, 0 if none) when the stream ends."""
    import av

    with _open(p) as c:
        if not c.streams.audio:
            raise NoAudioStreamError(f"{p}: has no audio stream (speech is needed for this)")
        aus = c.streams.audio[0]
        _check_codec(aus, p, "audio")
        meta["video_start_s"] = float(first_video_time(p) if video_start_s is None else video_start_s)
        meta.update(rate=0, layout="", audio_start_s=0.0, cancelled_samples=0)
        resampler = None
        try:
            for f in c.decode(aus):
                if resampler is None:
                    layout = "mono" if mono else f.layout.name
                    meta.update(rate=int(rate or f.sample_rate), layout=layout,
                                audio_start_s=float(f.time) if f.time is not None else 0.0)
                    if mono and len(f.layout.channels) > 1:
                        resampler = _PhaseSafeMono(f.layout.name, meta)
                    else:
                        # planar float keeps channels apart; nothing is mixed unless mono was asked for
                        resampler = _Resampled(av.AudioResampler(format="fltp", layout=layout, rate=meta["rate"]))
                yield from resampler.push(f)
            if resampler is not None:
                yield from resampler.push(None)
        except av.error.FFmpegError as e:
            raise CorruptMediaError(f"{p}: audio decoding failed ({e})") from e
        meta["listed_s"] = float(aus.duration * aus.time_base) if aus.duration and aus.time_base else 0.0


class _Resampled:
    """A resampler's output as float32 ``(channels, n)`` pieces; ``push(None)`` flushes it."""

    def __init__(self, resampler):
        self._r = resampler

    def push(self, frame) -> Iterator[np.ndarray]:
        for g in self._r.resample(frame):
            yield g.to_ndarray().astype(np.float32, copy=False)


MONO_CANCEL_RATIO = 0.01
"""A mono mix this far (−20 dB) below its loudest channel has channels cancelling in it."""


class _PhaseSafeMono:
    """FFmpeg's mono mix of a multi-channel stream, except where the channels cancel in it (one
    of a stereo pair phase-inverted, a classic fault of broadcast audio: the mix is silence
    though every channel is loud): there the loudest channel alone, the seconds so taken
    counted in ``meta["cancelled_samples"]``. Elsewhere the samples are the mix's own."""

    def __init__(self, layout: str, meta: dict):
        import av

        rate = meta["rate"]
        self._mix = _Resampled(av.AudioResampler(format="fltp", layout="mono", rate=rate))
        self._channels = _Resampled(av.AudioResampler(format="fltp", layout=layout, rate=rate))
        self._meta = meta
        self._m: list[np.ndarray] = []
        self._c: list[np.ndarray] = []

    def push(self, frame) -> Iterator[np.ndarray]:
        self._m.extend(self._mix.push(frame))
        self._c.extend(self._channels.push(frame))
        m = np.concatenate(self._m, axis=1) if self._m else np.zeros((1, 0), np.float32)
        c = np.concatenate(self._c, axis=1) if self._c else None
        # the two resamplers may hand their samples out in different runs: pair up what both gave
        n = m.shape[1] if frame is None else min(m.shape[1], 0 if c is None else c.shape[1])
        self._m = [m[:, n:]]
        self._c = [] if c is None else [c[:, n:]]
        if n:
            yield self._guarded(m[:, :n], None if c is None or c.shape[1] < n else c[:, :n])

    def _guarded(self, m: np.ndarray, c: np.ndarray | None) -> np.ndarray:
        if c is None:
            return m
        pc = np.mean(np.square(c, dtype=np.float64), axis=1)
        k = int(np.argmax(pc))
        loud = 10.0 * np.log10(pc[k] + 1e-24) > SILENCE_DBFS
        if loud and float(np.mean(np.square(m, dtype=np.float64))) < MONO_CANCEL_RATIO * pc[k]:
            self._meta["cancelled_samples"] += m.shape[1]
            return np.ascontiguousarray(c[k:k + 1])
        return m


def channel_warning(report: dict) -> list[str]:
    """The warning a result carries when a mono mix of the audio cancelled (none otherwise);
    ``report``: the dict given to :func:`iter_audio` / :func:`read_audio`."""
    seconds = report.get("cancelled_samples", 0) / float(report.get("rate") or SAMPLE_RATE)
    if seconds < SILENCE_BLOCK / SAMPLE_RATE:
        return []
    return [f"the audio's channels cancel each other when mixed to mono for {seconds:.1f} s (one is probably "
            f"phase-inverted: a fault to fix in the file); the loudest channel alone was used there"]


def _check_decoded(p: Path, got_samples: int, sample_rate: int, listed_s: float) -> None:
    if got_samples == 0:
        if listed_s > 0:
            raise CorruptMediaError(f"{p}: truncated or damaged: the audio stream lists {listed_s:.2f} s "
                                    "but no samples could be decoded")
        raise EmptyMediaError(f"{p}: audio stream has no decodable samples")
    got_s = got_samples / sample_rate
    if listed_s and got_s < 0.95 * listed_s - 0.1:
        raise CorruptMediaError(f"{p}: truncated or damaged: the audio stream lists {listed_s:.2f} s "
                                f"but only {got_s:.2f} s could be decoded")


def read_audio(path: PathLike, *, sample_rate: int = SAMPLE_RATE, video_start_s: float | None = None,
               report: dict | None = None) -> np.ndarray:
    """Decode the first audio stream to mono float32 at ``sample_rate``, aligned to the video.

    Sample 0 plays at the first video frame's presentation time (``video_start_s``, read from
    the file when not given; 0 for audio-only files). Audio that starts later is padded with
    silence at the front; audio that starts earlier is trimmed. For long files,
    :func:`iter_audio` gives the same samples a piece at a time.

    Several channels are mixed as FFmpeg mixes them to mono, except where they cancel in the
    mix (a phase-inverted channel): there the loudest channel is taken alone. ``report``, a
    dict, gets ``rate`` and ``cancelled_samples`` (how many samples were so taken; see
    :func:`channel_warning`).
    """
    pieces = list(iter_audio(path, sample_rate=sample_rate, video_start_s=video_start_s, report=report))
    return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)


def iter_audio(path: PathLike, *, sample_rate: int = SAMPLE_RATE, video_start_s: float | None = None,
               report: dict | None = None) -> Iterator[np.ndarray]:
    """:func:`read_audio`'s samples as consecutive mono float32 pieces (as they decode, ~20–60 ms
    each), so a long file's audio is never held at once. The same checks are made; those that
    need the whole stream (nothing decodable, truncated) raise after the last piece. ``report``:
    as :func:`read_audio`'s, complete once the last piece is taken."""
    meta = {} if report is None else report
    for x in _aligned_pieces(_check_path(path), meta, rate=sample_rate, mono=True, video_start_s=video_start_s):
        yield x[0]


def _aligned_pieces(p: Path, meta: dict, *, rate: int | None, mono: bool,
                    video_start_s: float | None) -> Iterator[np.ndarray]:
    """:func:`_stream_audio`'s ``(channels, n)`` pieces with sample 0 at the first video frame
    (silence in front, or the lead dropped);
    the checks that need the whole stream (nothing decodable, truncated) raise after the last."""
    got = 0
    skip = None  # samples to drop at the front (audio before the first video frame)
    for piece in _stream_audio(p, meta, rate=rate, mono=mono, video_start_s=video_start_s):
        got += piece.shape[1]
        if skip is None:
            lead = int(round((meta["audio_start_s"] - meta["video_start_s"]) * meta["rate"]))
            if lead > 0:  # audio starts after the first frame: silence in front
                yield np.zeros((piece.shape[0], lead), np.float32)
            skip = max(0, -lead)
        x = piece
        if skip:
            k = min(skip, x.shape[1])
            x, skip = x[:, k:], skip - k
        if x.shape[1]:
            yield x
    _check_decoded(p, got, meta.get("rate") or 1, meta.get("listed_s", 0.0))


def audio_extent(path: PathLike) -> tuple[float, float]:
    """Where the first audio stream starts and ends, in seconds from the first video frame
    (every sample decoded: a container's listed duration can be wrong)."""
    meta: dict = {}
    got = 0
    for x in _stream_audio(_check_path(path), meta, rate=SAMPLE_RATE, mono=True, video_start_s=None):
        got += x.shape[1]
    if got == 0:
        raise EmptyMediaError(f"{path}: audio stream has no decodable samples")
    a0 = meta.get("audio_start_s", 0.0) - meta.get("video_start_s", 0.0)
    return a0, a0 + got / SAMPLE_RATE


@dataclass(frozen=True)
class NativeAudio:
    """Audio held in memory for :func:`~speakerid.media.write.remux_with_audio`: ``samples``
    float32 ``(channels, n)`` at ``sample_rate``, sample 0 placed at the first video frame
    (``video_start_s`` in the output's time)."""

    samples: np.ndarray
    sample_rate: int
    layout: str
    video_start_s: float

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    def pieces(self) -> Iterator[np.ndarray]:
        yield self.samples


@dataclass(frozen=True)
class NativeAudioStream:
    """A file's audio at its own rate and channel layout, never held whole: ``pieces()`` decodes
    the stream again each time it is called and gives its samples as ``(channels, n)`` float32
    pieces, aligned to the first video frame and shifted by ``offset_ms``
    (:func:`shift_audio_pieces`), so a long file's audio can be rewritten in constant memory."""

    path: Path
    sample_rate: int
    layout: str
    channels: int
    video_start_s: float
    offset_ms: float = 0.0

    def pieces(self) -> Iterator[np.ndarray]:
        raw = _aligned_pieces(self.path, {}, rate=None, mono=False, video_start_s=None)
        return shift_audio_pieces(raw, self.sample_rate, self.offset_ms)


def stream_audio_native(path: PathLike, offset_ms: float = 0.0) -> NativeAudioStream:
    """The audio of ``path`` as it is (no resampling or down-mixing), aligned to the first video
    frame and shifted to undo ``offset_ms``: the rate, layout and alignment are read from the
    stream's first piece now, the samples each time ``pieces()`` is iterated."""
    p = _check_path(path)
    meta: dict = {}
    gen = _aligned_pieces(p, meta, rate=None, mono=False, video_start_s=None)
    try:
        first = next(gen)
    except StopIteration:  # (the generator raises EmptyMediaError itself when nothing decodes)
        raise EmptyMediaError(f"{p}: audio stream has no decodable samples") from None
    finally:
        gen.close()
    channels = int(first.shape[0])
    return NativeAudioStream(path=p, sample_rate=int(meta["rate"]), layout=_named_layout(str(meta["layout"]), channels),
                             channels=channels, video_start_s=float(meta["video_start_s"]), offset_ms=float(offset_ms))


def _named_layout(layout: str, channels: int) -> str:
    """An encoder needs a named layout; containers such as AVI store only a channel count
    ("1 channels")."""
    if layout and not layout.endswith("channels"):
        return layout
    return {1: "mono", 2: "stereo"}.get(channels, "stereo")


def shift_audio_pieces(pieces: Iterable[np.ndarray], sample_rate: int, offset_ms: float) -> Iterator[np.ndarray]:
    """The concatenation of ``(channels, n)`` pieces with an offset of ``offset_ms``
    (``t_audio − t_video``) undone, a piece at a time, keeping the length. A positive offset
    (audio lags) moves the audio earlier: its first samples are dropped and silence is added at
    the end. A negative one delays it through a buffer of the shift's length (silence first,
    the last samples dropped)."""
    k = int(round(float(offset_ms) * sample_rate / 1000.0))
    n_in = 0
    held = None
    channels = 1
    for x in pieces:
        x = np.asarray(x, np.float32)
        channels = x.shape[0]
        n_in += x.shape[1]
        if k >= 0:
            drop = max(0, min(x.shape[1], k - (n_in - x.shape[1])))  # still inside the first k
            if x.shape[1] > drop:
                yield x[:, drop:]
        else:
            held = np.zeros((channels, -k), np.float32) if held is None else held
            buf = np.concatenate([held, x], axis=1)
            if buf.shape[1] > -k:
                yield buf[:, :buf.shape[1] + k]
            held = buf[:, buf.shape[1] + k:]
    if k > 0 and n_in:
        yield np.zeros((channels, min(k, n_in)), np.float32)


def _rechunk(pieces: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """``(channels, n)`` pieces as consecutive blocks of ``size`` samples (the last shorter)."""
    buf = []
    have = 0
    for x in pieces:
        while x.shape[1]:
            take = min(size - have, x.shape[1])
            buf.append(x[:, :take])
            have += take
            x = x[:, take:]
            if have == size:
                yield buf[0] if len(buf) == 1 else np.concatenate(buf, axis=1)
                buf, have = [], 0
    if have:
        yield np.concatenate(buf, axis=1)


class BlockPower:
    """Passes audio pieces through unchanged, keeping the mean square of every block of
    ``size`` samples (blocks aligned at sample 0, so any cut into pieces gives the same blocks;
    a last partial block is left out). Samples are taken as ``dtype``, the powers in float64."""

    def __init__(self, pieces: Iterable[np.ndarray], size: int, dtype=np.float32):
        self._pieces = pieces
        self.size = int(size)
        self._dtype = dtype
        self._rest = np.zeros(0, dtype)
        self._powers: list[np.ndarray] = []

    def __iter__(self) -> Iterator[np.ndarray]:
        for x in self._pieces:
            buf = np.concatenate([self._rest, np.asarray(x, self._dtype).reshape(-1)])
            n = buf.size // self.size
            if n:
                blk = buf[: n * self.size].reshape(n, self.size).astype(np.float64)
                self._powers.append(np.mean(blk * blk, axis=1))
            self._rest = buf[n * self.size:]
            yield x
        self._pieces = ()  # the caller's array or stream is not held beyond its use

    @property
    def powers(self) -> np.ndarray:
        return np.concatenate(self._powers) if self._powers else np.zeros(0)

    def loudest_db(self, span: int = SILENCE_BLOCK) -> float:
        """The power (dB full scale) of the loudest stretch of ``span`` samples (a multiple of
        the block size, aligned at sample 0; -inf when there is none)."""
        k = span // self.size
        if k < 1 or span % self.size:
            raise ValueError(f"span must be a multiple of the block size {self.size}, got {span}")
        p = self.powers
        n = p.size // k
        if n == 0:
            return float("-inf")
        return float(10.0 * np.log10(p[:n * k].reshape(n, k).mean(axis=1).max() + 1e-24))

    @property
    def silent(self) -> bool:
        """No 0.2 s of the audio reaches ``SILENCE_DBFS`` (audio shorter than 0.2 s included):
        the silence rule sync and speakers share. Needs a block size dividing 0.2 s."""
        return self.loudest_db(SILENCE_BLOCK) < SILENCE_DBFS
