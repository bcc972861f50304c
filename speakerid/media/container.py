"""Opening media files: probe what a file holds, with errors that name the problem.

Inputs are never written to. Every other media module opens files through :func:`open_media`, so
a truncated, damaged or non-media file gives the same clear error wherever it is first read.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import (
    CorruptMediaError,
    EmptyMediaError,
    InputNotFoundError,
    NoAudioStreamError,
    NoVideoStreamError,
    NotAMediaFileError,
    UnsupportedCodecError,
    UnsupportedFrameRateError,
)

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
    audio_streams: int = 0
    """How many audio streams the file holds; speakerid reads the first."""

    def first_audio_only(self) -> str:
        """What to add to a finding about the audio when the file has other audio streams than
        the one read (broadcast files often carry a music-and-effects track, or one per channel)."""
        if self.audio_streams <= 1:
            return ""
        return (f"; the file has {self.audio_streams} audio streams and only the first is read (to measure "
                f"another, copy it out first: ffmpeg -i IN -map 0:v:0 -map 0:a:K -c copy OUT, K from 1)")

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) of upright frames, after rotation."""
        if self.rotation in (90, 270):
            return self.height, self.width
        return self.width, self.height

    def to_dict(self) -> dict:
        return asdict(self)


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
                      audio_codec=aus.codec_context.name, audio_start_s=start, audio_streams=len(c.streams.audio))
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
