"""Media I/O with PyAV: probe, stream frames, decode aligned audio, map time lines, encode mp4.

Conventions used across speakerid:

* **Time zero is the first video frame.** Audio returned by :func:`read_audio` starts at the
  presentation time of the first decoded video frame (padded with silence or trimmed), so audio
  sample ``n`` plays at ``n / 16000`` s after that frame.
* **The model's timeline** is 25 fps from that first frame. :class:`Timeline` maps each 25 fps
  frame to the source frame shown at that time (by timestamps, so 24/29.97/30/50/60 fps and
  variable frame rate all work) and maps source frames back, so results are reported in the
  source's own frame numbers and seconds.
* Inputs are never written to; outputs go to a temporary file beside the target and are renamed
  into place only when complete.
"""
from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from .errors import (
    CorruptMediaError,
    EmptyMediaError,
    InputNotFoundError,
    NoAudioStreamError,
    NoVideoStreamError,
    NotAMediaFileError,
    SpeakerIdError,
    UnsupportedCodecError,
    UnsupportedFrameRateError,
)
from .features import SAMPLE_RATE, VIDEO_FPS
from .outputs import atomic_output, check_output_path  # noqa: F401  (re-exported: writers import them from here)

PathLike = str | os.PathLike

MIN_SOURCE_FPS = 5.0
MAX_SOURCE_FPS = 240.0


@dataclass(frozen=True)
class MediaInfo:
    """What a media file holds, read from its container and first frames."""

    path: str
    container: str
    duration_s: float
    has_video: bool
    width: int = 0
    height: int = 0
    rotation: int = 0
    """Clockwise rotation (0/90/180/270) a player applies; frames from speakerid are upright."""
    fps: float = 0.0
    """Average frame rate of the video stream (frames / second)."""
    num_frames: int = 0
    """Frame count from the container, or an estimate from duration × fps when it has none."""
    video_codec: str = ""
    video_start_s: float = 0.0
    has_audio: bool = False
    audio_rate: int = 0
    audio_channels: int = 0
    audio_codec: str = ""
    audio_start_s: float = 0.0

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) of upright frames, after rotation."""
        if self.rotation in (90, 270):
            return self.height, self.width
        return self.width, self.height

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Frame:
    """One decoded video frame: its index in the source, its time (s from the first frame)."""

    index: int
    time: float
    image: np.ndarray
    """Upright pixels: H×W×3 uint8 BGR (OpenCV order), or H×W uint8 when decoded as gray."""


def _check_path(path: PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputNotFoundError(f"{p}: no such file")
    if not p.is_file():
        raise InputNotFoundError(f"{p}: not a regular file")
    if p.stat().st_size == 0:
        raise EmptyMediaError(f"{p}: file is empty (0 bytes)")
    return p


def _sniff(p: Path) -> str | None:
    """The container a file's first bytes announce (None when they announce none we know)."""
    with open(p, "rb") as fh:
        head = fh.read(16)
    if head[4:8] == b"ftyp" or head[4:8] in (b"moov", b"mdat", b"wide", b"free"):
        return "MP4/MOV"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "Matroska/WebM"
    if head[:4] == b"RIFF":
        return {b"AVI ": "AVI", b"WAVE": "WAV"}.get(head[8:12], "RIFF")
    if head[:4] in (b"OggS", b"fLaC") or head[:3] == b"FLV":
        return head[:4].decode("latin-1").strip()
    return None


@contextlib.contextmanager
def _open(path: PathLike):
    import av

    p = _check_path(path)
    try:
        container = av.open(str(p), mode="r")
    except av.error.FFmpegError as e:
        kind = _sniff(p)
        if kind is not None:
            # the header says it is a media file, but FFmpeg cannot open it: cut short or damaged
            # (e.g. an MP4 whose index, written at the end, was never reached)
            raise CorruptMediaError(f"{p}: looks like {kind} but cannot be opened: truncated or damaged ({e})") from e
        if isinstance(e, av.error.InvalidDataError):
            raise NotAMediaFileError(f"{p}: not a media file FFmpeg can read ({e})") from e
        raise NotAMediaFileError(f"{p}: cannot open as media ({e})") from e
    try:
        yield container
    finally:
        container.close()


def _rotation_of(stream, first_frame=None) -> int:
    rot = 0
    if first_frame is not None and getattr(first_frame, "rotation", None) is not None:
        rot = int(first_frame.rotation)
    else:
        try:
            rot = int(float(stream.metadata.get("rotate", 0)))
        except (TypeError, ValueError):
            rot = 0
    # PyAV reports the display matrix angle counter-clockwise; players rotate clockwise.
    return (-rot) % 360 if first_frame is not None else rot % 360


def _check_codec(stream, p: Path, kind: str) -> None:
    try:
        ctx = stream.codec_context
        ok = ctx is not None and ctx.codec is not None
    except Exception:  # noqa: BLE001 - PyAV raises several types for unknown codecs
        ok = False
    if not ok:
        raise UnsupportedCodecError(f"{p}: the {kind} stream's codec cannot be decoded by this FFmpeg build")


def probe(path: PathLike) -> MediaInfo:
    """Read a file's metadata (decodes one video frame for rotation and to prove it decodes)."""
    import av

    p = _check_path(path)
    with _open(p) as c:
        vs = c.streams.video[0] if c.streams.video else None
        aus = c.streams.audio[0] if c.streams.audio else None
        if vs is None and aus is None:
            raise NotAMediaFileError(f"{p}: contains neither a video nor an audio stream")
        duration = float(c.duration) / 1e6 if c.duration else 0.0
        kw: dict = {}
        if vs is not None:
            _check_codec(vs, p, "video")
            fps = float(vs.average_rate) if vs.average_rate else (float(vs.guessed_rate) if vs.guessed_rate else 0.0)
            first = None
            try:
                for first in c.decode(vs):
                    break
            except av.error.FFmpegError as e:
                raise CorruptMediaError(f"{p}: video stream cannot be decoded ({e})") from e
            if first is None:
                raise EmptyMediaError(f"{p}: video stream has no frames")
            vstart = float(first.time or 0.0)
            if vs.duration and vs.time_base:
                vdur = float(vs.duration * vs.time_base)
            else:
                # no per-stream duration (Matroska): the container's end minus the video's start
                cstart = float(c.start_time) / 1e6 if c.start_time is not None else 0.0
                vdur = max(0.0, cstart + duration - vstart) if duration else 0.0
            n = int(vs.frames) if vs.frames else int(round(vdur * fps))
            kw.update(width=first.width, height=first.height, rotation=_rotation_of(vs, first), fps=fps,
                      num_frames=n, video_codec=vs.codec_context.name,
                      video_start_s=float(first.time or 0.0))
            duration = duration or vdur
        if aus is not None:
            _check_codec(aus, p, "audio")
            start = float(aus.start_time * aus.time_base) if aus.start_time is not None and aus.time_base else 0.0
            kw.update(has_audio=True, audio_rate=int(aus.codec_context.sample_rate or aus.rate or 0),
                      audio_channels=int(aus.codec_context.channels or 0) if hasattr(aus.codec_context, "channels") else 0,
                      audio_codec=aus.codec_context.name, audio_start_s=start)
            if not kw["audio_channels"]:
                with contextlib.suppress(Exception):
                    kw["audio_channels"] = aus.codec_context.layout.nb_channels
        return MediaInfo(path=str(p), container=c.format.name, duration_s=duration, has_video=vs is not None, **kw)


def require_video(info: MediaInfo) -> None:
    if not info.has_video:
        raise NoVideoStreamError(f"{info.path}: has no video stream")
    if not (MIN_SOURCE_FPS <= info.fps <= MAX_SOURCE_FPS) and info.fps != 0:
        raise UnsupportedFrameRateError(
            f"{info.path}: frame rate {info.fps:.3f} fps is outside {MIN_SOURCE_FPS:g}–{MAX_SOURCE_FPS:g} fps")


def require_audio(info: MediaInfo) -> None:
    if not info.has_audio:
        raise NoAudioStreamError(f"{info.path}: has no audio stream (speech is needed for this)")


def _upright(img: np.ndarray, rotation: int) -> np.ndarray:
    if rotation == 90:
        return np.ascontiguousarray(np.rot90(img, k=-1))
    if rotation == 180:
        return np.ascontiguousarray(img[::-1, ::-1])
    if rotation == 270:
        return np.ascontiguousarray(np.rot90(img, k=1))
    return img


def iter_frames(path: PathLike, *, gray: bool = False, max_width: int | None = None,
                indices: Iterable[int] | None = None) -> Iterator[Frame]:
    """Stream decoded video frames in presentation order, never holding more than one.

    ``time`` is seconds after the first frame. ``max_width`` downscales on decode (cheaper
    than decoding full size then resizing). ``indices``: yield only these source frame numbers
    (all frames are still decoded: H.264 cannot skip), and stop after the last one.
    """
    import av

    p = _check_path(path)
    wanted = None
    last_wanted = None
    if indices is not None:
        wanted = set(int(i) for i in indices)
        last_wanted = max(wanted) if wanted else -1
    with _open(p) as c:
        if not c.streams.video:
            raise NoVideoStreamError(f"{p}: has no video stream")
        vs = c.streams.video[0]
        _check_codec(vs, p, "video")
        vs.thread_type = "AUTO"
        rotation = None
        t0 = None
        idx = -1
        fmt = "gray" if gray else "bgr24"
        try:
            for f in c.decode(vs):
                idx += 1
                if rotation is None:
                    rotation = _rotation_of(vs, f)
                t = float(f.time) if f.time is not None else idx / float(vs.average_rate or VIDEO_FPS)
                if t0 is None:
                    t0 = t
                if wanted is not None:
                    if idx > last_wanted:
                        break
                    if idx not in wanted:
                        continue
                w, h = f.width, f.height
                if max_width and w > max_width:
                    scale = max_width / w
                    f = f.reformat(width=max_width // 2 * 2, height=max(2, int(round(h * scale / 2)) * 2), format=fmt)
                    img = f.to_ndarray()
                else:
                    img = f.to_ndarray(format=fmt)
                yield Frame(index=idx, time=t - t0, image=_upright(img, rotation))
        except av.error.FFmpegError as e:
            raise CorruptMediaError(f"{p}: video decoding failed at frame {idx + 1} ({e})") from e
        if idx < 0:
            raise EmptyMediaError(f"{p}: video stream has no decodable frames")
        if wanted is None:
            _check_complete(p, int(vs.frames or 0), idx + 1)


def _check_complete(p: Path, listed: int, got: int) -> None:
    """A container that lists more frames than could be read was cut short (a truncated MP4
    still opens, its index intact, and decodes up to the cut without an error)."""
    if listed and got < listed - max(2, listed // 20):
        raise CorruptMediaError(f"{p}: truncated or damaged: the container lists {listed} video frames "
                                f"but only {got} could be read")


def read_frame_times(path: PathLike) -> np.ndarray:
    """Presentation times (s, from the first frame) of every video frame, by demuxing only."""
    import av

    p = _check_path(path)
    with _open(p) as c:
        if not c.streams.video:
            raise NoVideoStreamError(f"{p}: has no video stream")
        vs = c.streams.video[0]
        pts = []
        try:
            for pkt in c.demux(vs):
                if pkt.pts is not None and pkt.size:
                    pts.append(pkt.pts)
        except av.error.FFmpegError as e:
            raise CorruptMediaError(f"{p}: demuxing failed ({e})") from e
        if not pts:
            raise EmptyMediaError(f"{p}: video stream has no frames")
        _check_complete(p, int(vs.frames or 0), len(pts))
        t = np.sort(np.asarray(pts, dtype=np.float64)) * float(vs.time_base)
        return t - t[0]


def first_video_time(path: PathLike) -> float:
    """Presentation time of the first decodable video frame of ``path`` (0 for audio-only files).

    Read from a container opened for this alone: seeking an open container back to the start
    after decoding video lands on the video's first keyframe, which skips any audio that
    starts before it."""
    import av

    with _open(path) as c:
        if not c.streams.video:
            return 0.0
        with contextlib.suppress(av.error.FFmpegError):
            for f in c.decode(c.streams.video[0]):
                return float(f.time or 0.0)
    return 0.0


@dataclass
class _DecodedAudio:
    samples: np.ndarray | None
    """planar float32 ``(channels, n)`` as decoded (None when nothing decoded)"""
    rate: int
    layout: str
    audio_start_s: float
    video_start_s: float
    listed_s: float
    """the stream's duration as the container lists it (0 when it lists none)"""

    def aligned(self) -> np.ndarray:
        """Samples with sample 0 at the first video frame: silence in front, or the lead trimmed."""
        lead = int(round((self.audio_start_s - self.video_start_s) * self.rate))
        if lead > 0:
            return np.concatenate([np.zeros((self.samples.shape[0], lead), np.float32), self.samples], axis=1)
        return self.samples[:, -lead:] if lead < 0 else self.samples


def _stream_audio(p: Path, meta: dict, *, rate: int | None, mono: bool, video_start_s: float | None) -> Iterator[np.ndarray]:
    """Decode the first audio stream to planar float32 pieces ``(channels, n)``: at ``rate``
    (None = its own) and mixed to mono when asked, else with its own channel layout. ``meta``
    gets ``rate``, ``layout``, ``audio_start_s`` and ``video_start_s`` before the first piece,
    and ``listed_s`` (the stream's listed duration, 0 if none) when the stream ends."""
    import av

    with _open(p) as c:
        if not c.streams.audio:
            raise NoAudioStreamError(f"{p}: has no audio stream (speech is needed for this)")
        aus = c.streams.audio[0]
        _check_codec(aus, p, "audio")
        meta["video_start_s"] = float(first_video_time(p) if video_start_s is None else video_start_s)
        meta.update(rate=0, layout="", audio_start_s=0.0)
        resampler = None
        try:
            for f in c.decode(aus):
                if resampler is None:
                    layout = "mono" if mono else f.layout.name
                    meta.update(rate=int(rate or f.sample_rate), layout=layout,
                                audio_start_s=float(f.time) if f.time is not None else 0.0)
                    # planar float keeps channels apart; nothing is mixed unless mono was asked for
                    resampler = av.AudioResampler(format="fltp", layout=layout, rate=meta["rate"])
                for g in resampler.resample(f):
                    yield g.to_ndarray().astype(np.float32, copy=False)
            if resampler is not None:
                for g in resampler.resample(None):
                    yield g.to_ndarray().astype(np.float32, copy=False)
        except av.error.FFmpegError as e:
            raise CorruptMediaError(f"{p}: audio decoding failed ({e})") from e
        meta["listed_s"] = float(aus.duration * aus.time_base) if aus.duration and aus.time_base else 0.0


def _decode_audio(p: Path, *, rate: int | None, mono: bool, video_start_s: float | None) -> _DecodedAudio:
    """The whole first audio stream (see :func:`_stream_audio`) in one array."""
    meta: dict = {}
    chunks = list(_stream_audio(p, meta, rate=rate, mono=mono, video_start_s=video_start_s))
    samples = np.concatenate(chunks, axis=1).astype(np.float32, copy=False) if chunks else None
    return _DecodedAudio(samples=samples, rate=meta["rate"], layout=meta["layout"],
                         audio_start_s=meta["audio_start_s"], video_start_s=meta["video_start_s"],
                         listed_s=meta["listed_s"])


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


def read_audio(path: PathLike, *, sample_rate: int = SAMPLE_RATE, video_start_s: float | None = None) -> np.ndarray:
    """Decode the first audio stream to mono float32 at ``sample_rate``, aligned to the video.

    Sample 0 plays at the first video frame's presentation time (``video_start_s``, read from
    the file when not given; 0 for audio-only files). Audio that starts later is padded with
    silence at the front; audio that starts earlier is trimmed. For long files,
    :func:`iter_audio` gives the same samples a piece at a time.
    """
    p = _check_path(path)
    dec = _decode_audio(p, rate=sample_rate, mono=True, video_start_s=video_start_s)
    _check_decoded(p, 0 if dec.samples is None else dec.samples.shape[1], sample_rate, dec.listed_s)
    return dec.aligned()[0]


def iter_audio(path: PathLike, *, sample_rate: int = SAMPLE_RATE, video_start_s: float | None = None) -> Iterator[np.ndarray]:
    """:func:`read_audio`'s samples as consecutive mono float32 pieces (as they decode, ~20–60 ms
    each), so a long file's audio is never held at once. The same checks are made; those that
    need the whole stream (nothing decodable, truncated) raise after the last piece."""
    for x in _aligned_pieces(_check_path(path), {}, rate=sample_rate, mono=True, video_start_s=video_start_s):
        yield x[0]


def _aligned_pieces(p: Path, meta: dict, *, rate: int | None, mono: bool,
                    video_start_s: float | None) -> Iterator[np.ndarray]:
    """:func:`_stream_audio`'s ``(channels, n)`` pieces with sample 0 at the first video frame
    (silence in front, or the lead dropped), as :meth:`_DecodedAudio.aligned` gives them whole;
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


@dataclass
class Timeline:
    """The 25 fps model timeline of a source video, and the maps between the two.

    ``source_times[j]``: time (s from the first frame) of source frame ``j``.
    ``model_to_source[k]``: the source frame shown at model time ``k / 25`` s (nearest in time).
    """

    source_times: np.ndarray
    model_to_source: np.ndarray
    fps: float = VIDEO_FPS

    @classmethod
    def from_times(cls, source_times: np.ndarray, fps: float = VIDEO_FPS) -> Timeline:
        t = np.asarray(source_times, dtype=np.float64)
        if t.size == 0:
            raise EmptyMediaError("video has no frames")
        if t.size > 1 and np.any(np.diff(t) < 0):
            raise ValueError("source_times must be non-decreasing")
        # the last frame lasts as long as the typical frame before it
        last_dur = float(np.median(np.diff(t))) if t.size > 1 else 1.0 / fps
        end = t[-1] + last_dur
        n_model = max(1, int(np.floor(end * fps + 1e-6)))
        mt = np.arange(n_model) / fps
        # nearest source frame by time (ties → the earlier one)
        right = np.clip(np.searchsorted(t, mt, side="left"), 0, t.size - 1)
        left = np.clip(right - 1, 0, t.size - 1)
        pick_left = np.abs(mt - t[left]) <= np.abs(t[right] - mt)
        m2s = np.where(pick_left, left, right).astype(np.int64)
        return cls(source_times=t, model_to_source=m2s, fps=fps)

    @property
    def num_model_frames(self) -> int:
        return int(self.model_to_source.size)

    @property
    def num_source_frames(self) -> int:
        return int(self.source_times.size)

    @property
    def source_fps(self) -> float:
        if self.source_times.size < 2:
            return self.fps
        return float((self.source_times.size - 1) / (self.source_times[-1] - self.source_times[0]))

    def model_time(self, k: np.ndarray | int) -> np.ndarray:
        return np.asarray(k, dtype=np.float64) / self.fps

    def source_to_model(self, j: np.ndarray | int) -> np.ndarray:
        """Model frame nearest in time to source frame(s) ``j`` (clipped to the timeline)."""
        t = self.source_times[np.asarray(j, dtype=np.int64)]
        return np.clip(np.round(t * self.fps).astype(np.int64), 0, self.num_model_frames - 1)

    def model_values_to_source(self, values: np.ndarray) -> np.ndarray:
        """Resample per-model-frame values (first axis) onto every source frame (nearest)."""
        return np.asarray(values)[self.source_to_model(np.arange(self.num_source_frames))]


@dataclass(frozen=True)
class WrittenMedia:
    """What :func:`verify_written` found in a file: every frame decoded, and the audio's extent
    (seconds from the first video frame)."""

    video_frames: int
    video_end_s: float
    audio_start_s: float
    audio_end_s: float


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


def verify_written(path: PathLike, *, expect_frames: int, expect_end_s: float, name: PathLike | None = None,
                   audio_from_s: float = 0.0, audio_to_s: float | None = None,
                   frame_slack: int = 1, audio_slack_s: float = 0.1) -> WrittenMedia:
    """Decode every video frame and the whole audio of a just-written file and check it against
    its source: the same number of frames (± ``frame_slack``), the last frame at the source's
    time (± one frame), and audio from ``audio_from_s`` to ``audio_to_s`` (default: from the
    first frame to the end of the last; ± ``audio_slack_s``), the extent of the source's audio.
    Raises :class:`~speakerid.errors.OutputVerificationError` naming ``name`` (the target the
    file is for) and what is wrong."""
    import av

    from .errors import OutputVerificationError

    p = Path(path)
    label = name if name is not None else p
    n, t0, t_last = 0, None, 0.0
    try:
        with _open(p) as c:
            if not c.streams.video:
                raise OutputVerificationError(f"{label}: the written file has no video stream")
            vs = c.streams.video[0]
            vs.thread_type = "AUTO"
            for f in c.decode(vs):
                t = float(f.time) if f.time is not None else n / float(vs.average_rate or VIDEO_FPS)
                t0 = t if t0 is None else t0
                t_last = t - t0
                n += 1
    except (av.error.FFmpegError, CorruptMediaError, EmptyMediaError) as e:
        raise OutputVerificationError(f"{label}: the written file does not decode ({e})") from e
    if n == 0:
        raise OutputVerificationError(f"{label}: the written file holds no decodable video frame")
    if abs(n - expect_frames) > frame_slack:
        raise OutputVerificationError(f"{label}: the written file decodes to {n} video frames; "
                                      f"the source has {expect_frames}")
    frame_s = t_last / max(1, n - 1)
    if abs(t_last - expect_end_s) > max(frame_s, 0.001) + 1e-3:
        raise OutputVerificationError(f"{label}: the written file's last frame is at {t_last:.3f} s; "
                                      f"the source's is at {expect_end_s:.3f} s")
    try:
        a0, a1 = audio_extent(p)
    except (av.error.FFmpegError, CorruptMediaError, NoAudioStreamError, EmptyMediaError) as e:
        raise OutputVerificationError(f"{label}: the written file's audio does not decode ({e})") from e
    video_end = t_last + frame_s
    want0 = max(0.0, audio_from_s)
    want1 = video_end if audio_to_s is None else min(video_end, audio_to_s)
    if a0 > want0 + audio_slack_s or a1 < want1 - audio_slack_s:
        raise OutputVerificationError(f"{label}: the written file's audio covers {a0:.2f}–{a1:.2f} s; it should "
                                      f"cover {want0:.2f}–{want1:.2f} s of its 0–{video_end:.2f} s of video")
    return WrittenMedia(video_frames=n, video_end_s=t_last, audio_start_s=a0, audio_end_s=a1)


def _fps_fraction(fps: float) -> Fraction:
    for den in (1, 1001):
        num = fps * den
        if abs(num - round(num)) < 1e-3:
            return Fraction(int(round(num)), den)
    return Fraction(fps).limit_denominator(100000)


def write_video(path: PathLike, frames: Iterable[np.ndarray], fps: float, *,
                audio: np.ndarray | None = None, sample_rate: int = SAMPLE_RATE,
                protect: Iterable[PathLike] = (), overwrite: bool = True, crf: int = 23) -> Path:
    """Encode BGR uint8 frames (and optional mono float audio) to an H.264 + AAC mp4, atomically.

    The mp4 plays in browsers (yuv420p, faststart). ``protect``: inputs never to overwrite.
    """
    import av

    target = Path(path)
    with atomic_output(target, protect=protect, overwrite=overwrite) as tmp:
        with av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"}) as out:
            vs = None
            aus = None
            if audio is not None:
                aus = out.add_stream("aac", rate=sample_rate, layout="mono")
            n = 0
            for img in frames:
                if vs is None:
                    h, w = img.shape[:2]
                    vs = out.add_stream("libx264", rate=_fps_fraction(fps))
                    vs.width, vs.height = w // 2 * 2, h // 2 * 2
                    vs.pix_fmt = "yuv420p"
                    vs.options = {"crf": str(crf), "preset": "veryfast"}
                    # Audio before video in the stream list keeps players happy; add order is fixed.
                if img.ndim == 2:
                    img = np.repeat(img[:, :, None], 3, axis=2)
                img = np.ascontiguousarray(img[: vs.height, : vs.width])
                vf = av.VideoFrame.from_ndarray(img, format="bgr24")
                vf.pts = n
                vf.time_base = Fraction(1) / _fps_fraction(fps)
                for pkt in vs.encode(vf):
                    out.mux(pkt)
                n += 1
            if vs is None:
                raise EmptyMediaError(f"{target}: no frames to write")
            for pkt in vs.encode():
                out.mux(pkt)
            if aus is not None:
                _encode_audio(out, aus, audio, sample_rate)
    return target


def _encode_audio(out, aus, audio: np.ndarray, sample_rate: int) -> None:
    import av

    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    frame_size = 1024
    pts = 0
    for start in range(0, audio.size, frame_size):
        chunk = audio[start:start + frame_size]
        af = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="flt", layout="mono")
        af.sample_rate = sample_rate
        af.pts = pts
        af.time_base = Fraction(1, sample_rate)
        pts += chunk.size
        for pkt in aus.encode(af):
            out.mux(pkt)
    for pkt in aus.encode():
        out.mux(pkt)


# --- audio shift / remux (used by speakerid.sync.repair_sync) -------------------------------------

@dataclass(frozen=True)
class NativeAudio:
    """Decoded audio at the stream's own rate and channel layout, aligned to the first video frame.

    ``samples``: float32 ``(channels, n)``; sample 0 plays at the first video frame (as in
    :func:`read_audio`). ``video_start_s``: that frame's presentation time in the file.
    """

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
    """:class:`NativeAudio` that is never held whole: ``pieces()`` decodes the stream again
    each time it is called and gives its samples as ``(channels, n)`` float32 pieces (aligned
    to the first video frame, shifted by ``offset_ms`` as :func:`shift_audio` does), so a
    long file's audio can be rewritten in constant memory."""

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
    """:func:`read_audio_native` and :func:`shift_audio` a piece at a time: the rate, layout and
    alignment are read from the stream's first piece now, the samples each time ``pieces()``
    is iterated."""
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
    """:func:`shift_audio` of the concatenation of ``(channels, n)`` pieces, a piece at a time:
    the same samples and the same length. A positive offset drops the first samples and adds
    silence at the end; a negative one delays the audio through a buffer of the shift's length
    (silence first, the last samples dropped)."""
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


def read_audio_native(path: PathLike) -> NativeAudio:
    """Decode the first audio stream without resampling or down-mixing, aligned to the video."""
    p = _check_path(path)
    dec = _decode_audio(p, rate=None, mono=False, video_start_s=None)
    if dec.samples is None:
        raise EmptyMediaError(f"{p}: audio stream has no decodable samples")
    samples = np.ascontiguousarray(dec.aligned())
    return NativeAudio(samples=samples, sample_rate=dec.rate, layout=_named_layout(dec.layout, samples.shape[0]),
                       video_start_s=dec.video_start_s)


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


def shift_audio(samples: np.ndarray, sample_rate: int, offset_ms: float) -> np.ndarray:
    """Undo an offset of ``offset_ms`` (``t_audio − t_video``) and keep the length.

    A positive offset (audio lags) moves the audio earlier: its first ``offset`` is dropped and
    silence is added at the end. A negative offset (audio leads) delays it: silence in front,
    the tail beyond the original length dropped. Works on ``(n,)`` or ``(channels, n)``.
    """
    x = np.asarray(samples, dtype=np.float32)
    n = x.shape[-1]
    k = int(round(float(offset_ms) * sample_rate / 1000.0))
    out = np.zeros_like(x)
    if k >= 0:
        if k < n:
            out[..., : n - k] = x[..., k:]
    else:
        k = -k
        if k < n:
            out[..., k:] = x[..., : n - k]
    return out


_AUDIO_CODEC_FOR = {".webm": "libopus", ".ogg": "libopus", ".mkv": "aac", ".mp4": "aac", ".m4v": "aac",
                    ".mov": "aac", ".ts": "aac",
                    ".avi": "pcm_s16le"}  # AVI cannot hold the negative start of an encoder with priming (AAC, MP3)


def _format_for(target: Path) -> str | None:
    ext = target.suffix.lower()
    return {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm",
            ".ts": "mpegts", ".avi": "avi"}.get(ext)


def remux_with_audio(src: PathLike, target: PathLike, audio: NativeAudio | NativeAudioStream, *,
                     protect: Iterable[PathLike] = (), overwrite: bool = True,
                     verify: Callable[[Path, bool], None] | None = None) -> bool:
    """Write ``target``: ``src``'s video stream and ``audio`` (re-encoded), atomically.

    The video packets are copied as they are (no re-encode) when the output container accepts
    the codec; otherwise the video is re-encoded with H.264. Audio sample 0 is placed at the
    first video frame's time. ``verify(tmp, copied)`` is called on the complete file before it
    is renamed into place: an exception there removes it. Returns True when the video was copied.
    """
    import av

    src_p = _check_path(src)
    target = Path(target)
    fmt = _format_for(target)
    protect = [src_p, *protect]
    need = src_p.stat().st_size

    def write(copy_video: bool) -> None:
        with atomic_output(target, protect=protect, overwrite=overwrite, need_bytes=need) as tmp:
            _remux(src_p, tmp, fmt, target, audio, copy_video=copy_video)
            if verify is not None:
                verify(tmp, copy_video)

    try:
        write(True)
        return True
    except (av.error.FFmpegError, ValueError) as e:
        if isinstance(e, SpeakerIdError):
            raise
        copy_error = e
    try:
        write(False)
    except av.error.FFmpegError as e:
        raise UnsupportedCodecError(f"{target}: cannot write this container "
                                    f"(copy failed: {copy_error}; re-encode failed: {e})") from e
    return False


def _remux(src: Path, tmp: Path, fmt: str | None, target: Path, audio: NativeAudio | NativeAudioStream, *,
           copy_video: bool) -> None:
    import av

    acodec = _AUDIO_CODEC_FOR.get(target.suffix.lower(), "aac")
    with _open(src) as inp:
        if not inp.streams.video:
            raise NoVideoStreamError(f"{src}: has no video stream")
        ivs = inp.streams.video[0]
        opts = {"movflags": "+faststart"} if fmt in ("mp4", "mov") else {}
        with av.open(str(tmp), mode="w", format=fmt, options=opts) as out:
            if copy_video:
                ovs = out.add_stream_from_template(ivs)
            else:
                rate = ivs.average_rate or ivs.guessed_rate or Fraction(VIDEO_FPS)
                ovs = out.add_stream("libvpx-vp9" if fmt == "webm" else "libx264", rate=rate)
                ovs.width, ovs.height = ivs.codec_context.width // 2 * 2, ivs.codec_context.height // 2 * 2
                ovs.pix_fmt = "yuv420p"
                ovs.options = {"crf": "30", "b:v": "0"} if fmt == "webm" else {"crf": "18", "preset": "veryfast"}
            rate = audio.sample_rate
            if acodec == "libopus" and rate not in (8000, 12000, 16000, 24000, 48000):
                rate = 48000
            layout = audio.layout if audio.channels <= 2 else "stereo"
            oas = out.add_stream(acodec, rate=rate, layout=layout)
            # audio is encoded as the video goes, so the file is interleaved: a player (or a QC
            # tool) reading it front to back finds each second's audio beside its video
            audio_out = _Interleaver(out, _audio_packets(oas, audio, rate, layout))
            if copy_video:
                for pkt in inp.demux(ivs):
                    if pkt.size == 0:  # the demuxer's flush packet (a real packet may lack a DTS:
                        continue      # Matroska gives none to the first frames; the muxer derives it)
                    audio_out.until(_packet_time(pkt))
                    pkt.stream = ovs
                    out.mux(pkt)
            else:
                n = 0
                tb = Fraction(1) / Fraction(ovs.codec_context.framerate or VIDEO_FPS)
                for f in inp.decode(ivs):
                    g = f.reformat(width=ovs.width, height=ovs.height, format="yuv420p")
                    g.pts = n
                    g.time_base = tb
                    n += 1
                    for pkt in ovs.encode(g):
                        audio_out.until(_packet_time(pkt))
                        out.mux(pkt)
                for pkt in ovs.encode():
                    audio_out.until(_packet_time(pkt))
                    out.mux(pkt)
            audio_out.until(math.inf)


def _packet_time(pkt) -> float:
    """A packet's decode time in seconds (its presentation time when it has no decode time)."""
    t = pkt.dts if pkt.dts is not None else pkt.pts
    return float(t * pkt.time_base) if t is not None and pkt.time_base is not None else -math.inf


class _Interleaver:
    """Muxes the packets of an iterator up to a given time, one step behind the video."""

    def __init__(self, out, packets: Iterator):
        self._out = out
        self._packets = packets
        self._next = next(packets, None)

    def until(self, t: float) -> None:
        while self._next is not None and _packet_time(self._next) <= t:
            self._out.mux(self._next)
            self._next = next(self._packets, None)


def _audio_packets(oas, audio: NativeAudio | NativeAudioStream, rate: int, layout: str) -> Iterator:
    """The encoded packets of ``audio`` (resampled to the output's ``rate`` and ``layout``), as
    the samples are decoded."""
    import av

    resampler = av.AudioResampler(format=oas.codec_context.format.name if oas.codec_context.format else "fltp",
                                  layout=layout, rate=rate)
    start = int(round(audio.video_start_s * audio.sample_rate))
    src_layout = "mono" if audio.channels == 1 else "stereo"
    s = 0
    for block in _rechunk(audio.pieces(), 1024):
        if block.shape[0] > 2:  # encoders here take mono/stereo; keep the first two channels
            block = block[:2]
        af = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format="fltp", layout=src_layout)
        af.sample_rate = audio.sample_rate
        af.pts = start + s
        af.time_base = Fraction(1, audio.sample_rate)
        s += block.shape[1]
        for g in resampler.resample(af):
            yield from oas.encode(g)
    for g in resampler.resample(None):
        yield from oas.encode(g)
    yield from oas.encode()
