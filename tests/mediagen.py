"""Generate small test media with PyAV: known frame times, known audio events, odd layouts.

Every generated video frame carries its own index as a 10-bit code of black/white squares, so a
test can read back which source frame it got (see :func:`frame_code`).
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

CODE_BITS = 10
CELL = 16  # pixel size of one code square


def coded_image(index: int, width: int = 192, height: int = 112) -> np.ndarray:
    """A BGR frame: a coloured gradient whose hue moves with ``index`` and the index in binary
    as a row of white (1) / black (0) squares at the top left."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.empty((height, width, 3), np.uint8)
    img[..., 0] = (x * 255 // max(width - 1, 1) + 7 * index) % 256
    img[..., 1] = (y * 255 // max(height - 1, 1)) % 256
    img[..., 2] = 128
    img[: CELL + 4, : CODE_BITS * CELL + 4] = 128
    for b in range(CODE_BITS):
        v = 255 if (index >> b) & 1 else 0
        img[2:2 + CELL, 2 + b * CELL:2 + (b + 1) * CELL] = v
    return img


def frame_code(image: np.ndarray) -> int:
    """Read back the index written by :func:`coded_image` (BGR or gray, any scale ≥ 1/4)."""
    gray = image if image.ndim == 2 else image.mean(axis=2)
    sx, sy = image.shape[1] / 192.0, image.shape[0] / 112.0
    n = 0
    for b in range(CODE_BITS):
        cx = int((2 + b * CELL + CELL / 2) * sx)
        cy = int((2 + CELL / 2) * sy)
        if gray[cy, cx] > 128:
            n |= 1 << b
    return n


def tone_with_clicks(duration_s: float, rate: int, clicks_s: list[float], level: float = 0.01) -> np.ndarray:
    """Quiet noise with a full-scale one-sample click at each time in ``clicks_s``."""
    rng = np.random.default_rng(0)
    a = rng.normal(0, level, int(round(duration_s * rate))).astype(np.float32)
    for t in clicks_s:
        a[int(round(t * rate))] = 0.9
    return a


def write_media(path: Path, *, frame_times: list[float] | None = None, fps: float = 25.0,
                num_frames: int = 50, size: tuple[int, int] = (192, 112), vcodec: str = "libx264",
                pix_fmt: str = "yuv420p", audio: np.ndarray | None = None, audio_rate: int = 16000,
                acodec: str = "aac", audio_start_s: float = 0.0, video: bool = True,
                images=None, time_base: Fraction | None = None, options: dict | None = None,
                codec_options: dict | None = None, display_rotation: int | None = None) -> Path:
    """Write a test file. ``frame_times`` (s) gives each frame's presentation time (VFR);
    otherwise frames are at ``i / fps``. ``images``: an iterable of BGR frames to use instead of
    :func:`coded_image`. ``audio`` (mono float32) starts ``audio_start_s`` after the first frame."""
    path = Path(path)
    if frame_times is None:
        frame_times = [i / fps for i in range(num_frames)]
    with av.open(str(path), mode="w", options=options or {}) as out:
        vs = aus = None
        if video:
            rate = Fraction(fps).limit_denominator(1001)
            vs = out.add_stream(vcodec, rate=rate)
            vs.width, vs.height = size
            vs.pix_fmt = pix_fmt
            if codec_options:
                vs.options = codec_options
            if display_rotation is not None:  # a phone's "turn on playback" display matrix
                vs.set_display_rotation(display_rotation)
            vfr = len(set(np.round(np.diff(frame_times), 6).tolist())) > 1
            tb = time_base or (Fraction(1, 1000) if vfr else Fraction(1) / rate)
            vs.codec_context.time_base = tb
            vs.time_base = tb
        audio = None if audio is None else np.asarray(audio, np.float32)
        channels = 1 if audio is None or audio.ndim == 1 else audio.shape[0]
        layout = "mono" if channels == 1 else "stereo"
        if audio is not None:
            audio = audio.reshape(channels, -1)
            aus = out.add_stream(acodec, rate=audio_rate, layout=layout)
            aus.time_base = Fraction(1, audio_rate)
        if vs is not None:
            imgs = iter(images) if images is not None else None
            for i, t in enumerate(frame_times):
                img = next(imgs) if imgs is not None else coded_image(i, *size)
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="bgr24")
                vf.pts = int(round(t / vs.codec_context.time_base))
                vf.time_base = vs.codec_context.time_base
                for pkt in vs.encode(vf):
                    out.mux(pkt)
            for pkt in vs.encode():
                out.mux(pkt)
        if aus is not None:
            fs = aus.codec_context.frame_size or 1024
            fmt = aus.codec_context.format.name if aus.codec_context.format else "fltp"
            pts0 = int(round(audio_start_s * audio_rate))
            for s in range(0, audio.shape[1], fs):
                chunk = audio[:, s:s + fs]
                if chunk.shape[1] < fs and acodec in ("aac", "libopus", "opus", "vorbis"):
                    chunk = np.concatenate([chunk, np.zeros((channels, fs - chunk.shape[1]), np.float32)], axis=1)
                arr = chunk if fmt.endswith("p") else chunk.T.reshape(1, -1)
                if fmt.startswith("s16"):
                    arr = (np.clip(arr, -1, 1) * 32767).astype(np.int16)
                    af = av.AudioFrame.from_ndarray(arr, format="s16p" if fmt.endswith("p") else "s16", layout=layout)
                elif fmt.startswith("s32"):
                    arr = (np.clip(arr, -1, 1) * (2**31 - 1)).astype(np.int32)
                    af = av.AudioFrame.from_ndarray(arr, format=fmt, layout=layout)
                else:
                    af = av.AudioFrame.from_ndarray(arr.astype(np.float32), format="fltp" if fmt.endswith("p") else "flt",
                                                    layout=layout)
                af.sample_rate = audio_rate
                af.pts = pts0 + s
                af.time_base = Fraction(1, audio_rate)
                for pkt in aus.encode(af):
                    out.mux(pkt)
            for pkt in aus.encode():
                out.mux(pkt)
    return path


def remux(src: Path, dst: Path) -> Path:
    """Copy the streams of ``src`` into another container (by ``dst``'s suffix) without re-encoding."""
    with av.open(str(src)) as inp, av.open(str(dst), mode="w") as out:
        m = {}
        for s in list(inp.streams.video[:1]) + list(inp.streams.audio[:1]):
            m[s.index] = out.add_stream_from_template(s)
        for pkt in inp.demux(*[inp.streams[i] for i in m]):
            if pkt.size == 0:  # the flush packet (real packets may lack a DTS in Matroska)
                continue
            pkt.stream = m[pkt.stream.index]
            out.mux(pkt)
    return dst


def transcode(src: Path, dst: Path, vcodec: str, acodec: str | None, pix_fmt: str = "yuv420p") -> Path:
    """Re-encode ``src`` (all frames, audio at 48 kHz) into ``dst`` with the given codecs."""
    from speakerid.media import iter_frames, probe, read_audio

    info = probe(src)
    imgs = [f.image for f in iter_frames(src)]
    audio = None
    if acodec:
        audio = read_audio(src, sample_rate=48000)
    fast = {"libvpx": {"deadline": "realtime", "cpu-used": "8"}, "libx264": {"preset": "ultrafast"}}
    return write_media(dst, fps=info.fps, num_frames=len(imgs), size=(info.width, info.height), vcodec=vcodec,
                       pix_fmt=pix_fmt, images=imgs, audio=audio, audio_rate=48000, acodec=acodec or "aac",
                       codec_options=fast.get(vcodec))


# --- real-world layouts built from a real talking-face clip ---------------------------------------

def _clip(src: Path):
    from speakerid.media import iter_frames, read_audio

    return [f.image for f in iter_frames(src)], read_audio(src, sample_rate=48000)


def with_brief_second_face(src: Path, dst: Path, first: int = 30, count: int = 15) -> Path:
    """``src`` on the left; on the right, its mirror image for ``count`` frames only (a
    passer-by: a face track far shorter than a second), grey otherwise. Audio: ``src``'s."""
    imgs, audio = _clip(src)
    out = []
    for i, im in enumerate(imgs):
        right = np.ascontiguousarray(im[:, ::-1]) if first <= i < first + count else np.full_like(im, 128)
        out.append(np.concatenate([im, right], axis=1))
    h, w = out[0].shape[:2]
    return write_media(dst, fps=25, num_frames=len(out), size=(w, h), images=out, audio=audio, audio_rate=48000,
                       codec_options={"preset": "ultrafast"})


def with_stereo(src: Path, dst: Path, right_gain: float, acodec: str = "pcm_s16le") -> Path:
    """``src`` with stereo audio (16-bit PCM by default: QuickTime, as broadcast files carry it):
    its sound on the left, times ``right_gain`` on the right (−1: the right channel
    phase-inverted, so a mono mix cancels)."""
    imgs, audio = _clip(src)
    h, w = imgs[0].shape[:2]
    return write_media(dst, fps=25, num_frames=len(imgs), size=(w, h), images=imgs,
                       audio=np.stack([audio, right_gain * audio]), audio_rate=48000, acodec=acodec,
                       codec_options={"preset": "ultrafast"})


def with_silent_first_audio_stream(src: Path, dst: Path) -> Path:
    """``src``'s video with two audio streams: the first silent (an empty or unused track, as
    broadcast files carry), the second ``src``'s sound."""
    imgs, audio = _clip(src)
    h, w = imgs[0].shape[:2]
    with av.open(str(dst), mode="w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"preset": "ultrafast"}
        streams = [out.add_stream("aac", rate=48000, layout="mono") for _ in range(2)]
        for i, img in enumerate(imgs):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="bgr24")
            vf.pts = i
            for pkt in vs.encode(vf):
                out.mux(pkt)
        for pkt in vs.encode():
            out.mux(pkt)
        for st, sound in zip(streams, (np.zeros_like(audio), audio), strict=True):
            fs = st.codec_context.frame_size or 1024
            for s in range(0, sound.size, fs):
                chunk = np.zeros((1, fs), np.float32)
                chunk[0, :min(fs, sound.size - s)] = sound[s:s + fs]
                af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                af.sample_rate, af.pts, af.time_base = 48000, s, Fraction(1, 48000)
                for pkt in st.encode(af):
                    out.mux(pkt)
            for pkt in st.encode():
                out.mux(pkt)
    return dst


def repeated_with_drift(src: Path, dst: Path, delays_ms: list[float]) -> Path:
    """``src`` once per entry of ``delays_ms``, each copy's audio delayed by that much (a file
    whose offset changes along it, as a frame-rate mismatch makes it)."""
    imgs, audio = _clip(src)
    n = len(imgs) * 48000 // 25
    a = np.zeros(n, np.float32)
    a[: min(n, audio.size)] = audio[:n]
    parts = []
    for d in delays_ms:
        k = int(round(d * 48))
        parts.append(np.concatenate([np.zeros(k, np.float32), a])[:n] if k >= 0 else np.concatenate(
            [a[-k:], np.zeros(-k, np.float32)]))
    h, w = imgs[0].shape[:2]
    return write_media(dst, fps=25, num_frames=len(imgs) * len(delays_ms), size=(w, h), images=imgs * len(delays_ms),
                       audio=np.concatenate(parts), audio_rate=48000, codec_options={"preset": "ultrafast"})


def long_gop(src: Path, dst: Path, *, delay_ms: float = 0.0, gop: int = 50, bframes: int = 2,
             acodec: str = "aac") -> Path:
    """``src`` re-encoded with a long GOP and B-frames (Matroska then gives the first packets no
    DTS), its audio delayed by ``delay_ms``."""
    imgs, audio = _clip(src)
    k = int(round(delay_ms * 48))
    a = np.concatenate([np.zeros(k, np.float32), audio])[: audio.size] if k >= 0 else np.concatenate(
        [audio[-k:], np.zeros(-k, np.float32)])
    h, w = imgs[0].shape[:2]
    return write_media(dst, fps=25, num_frames=len(imgs), size=(w, h), images=imgs, audio=a, audio_rate=48000,
                       acodec=acodec, codec_options={"preset": "ultrafast", "g": str(gop), "bf": str(bframes)})
