"""Writing media: encode frames, remux a video with new audio, verify what was written.

Every write goes to a partial file beside the target (:func:`speakerid.outputs.atomic_output`)
and is renamed into place only when complete; a ``verify`` step can reject it first.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import (
    CorruptMediaError,
    EmptyMediaError,
    NoAudioStreamError,
    NoVideoStreamError,
    OutputVerificationError,
    SpeakerIdError,
    UnsupportedCodecError,
)
from ..outputs import atomic_output
from ..timebase import SAMPLE_RATE, VIDEO_FPS
from .audio import NativeAudio, NativeAudioStream, _rechunk, audio_extent, stream_audio_native
from .container import PathLike, _check_path, _open
from .video import first_video_time

@dataclass(frozen=True)
class WrittenMedia:
    """What :func:`verify_written` found in a file: every frame decoded, and the audio's extent
    (seconds from the first video frame)."""

    video_frames: int
    video_end_s: float
    audio_start_s: float
    audio_end_s: float


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


COPY_AUDIO_CODECS = ("aac", "mp3", "ac3", "eac3", "alac", "opus", "flac")
"""Audio codecs an mp4 takes as they are: copied packet for packet; others are re-encoded to
AAC at the source's own rate and channels."""


def encode_with_source_audio(video: PathLike, tmp: Path, frames: Iterator, *, crf: int = 23) -> None:
    """H.264 (yuv420p, faststart) of ``(time, image)`` pairs at their own times, with ``video``'s
    audio interleaved."""
    import av


    with _open(video) as src:
        ivs = src.streams.video[0]
        tb = ivs.time_base if ivs.time_base else Fraction(1, 90000)
        rate = ivs.average_rate or ivs.guessed_rate or Fraction(25)
        ias = src.streams.audio[0] if src.streams.audio else None
        with av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"}) as out:
            vs = None
            audio = None
            copy = ias is not None and ias.codec_context.name in COPY_AUDIO_CODECS
            if copy:
                oas = out.add_stream_from_template(ias)
                audio = _Interleaver(out, _copied_audio(src, ias, oas))
            elif ias is not None:
                native = stream_audio_native(video)
                layout = native.layout if native.channels <= 2 else "stereo"
                oas = out.add_stream("aac", rate=native.sample_rate, layout=layout)
                audio = _Interleaver(out, _audio_packets(oas, native, native.sample_rate, layout))
            last_pts = -1
            for t, img in frames:
                if vs is None:
                    h, w = img.shape[:2]
                    vs = out.add_stream("libx264", rate=rate)
                    vs.width, vs.height = w // 2 * 2, h // 2 * 2
                    vs.pix_fmt = "yuv420p"
                    vs.time_base = tb
                    vs.codec_context.time_base = tb
                    vs.options = {"crf": str(crf), "preset": "veryfast"}
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img[: vs.height, : vs.width]), format="bgr24")
                # the source's own time (strictly increasing, as the encoder requires)
                last_pts = max(last_pts + 1, int(round(t / tb)))
                vf.pts = last_pts
                vf.time_base = tb
                for pkt in vs.encode(vf):
                    if audio is not None:
                        audio.until(_packet_time(pkt))
                    out.mux(pkt)
            if vs is None:
                raise EmptyMediaError(f"{video}: no frames to write")
            for pkt in vs.encode():
                if audio is not None:
                    audio.until(_packet_time(pkt))
                out.mux(pkt)
            if audio is not None:
                audio.until(math.inf)


def _copied_audio(src, ias, oas) -> Iterator:
    """``src``'s audio packets, re-timed so that 0 is the first video frame (as the rendered
    frames are); packets wholly before that frame are dropped."""

    v0 = first_video_time(src.name)
    with _open(src.name) as c:
        a = c.streams.audio[0]
        shift = int(round(v0 / a.time_base))
        for pkt in c.demux(a):
            if pkt.size == 0 or pkt.pts is None:
                continue
            pkt.pts -= shift
            if pkt.dts is not None:
                pkt.dts -= shift
            if pkt.pts < 0:
                continue
            pkt.stream = oas
            yield pkt
