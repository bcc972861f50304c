"""A stress corpus of real-world file layouts, built from one real talking-face clip with PyAV.

Each :class:`StressCase` names a container, codecs, frame rate, size, audio format and layout
(audio starting before or after the video, rotation, a passer-by, a face entering late, a shot
cut, variable frame rate). The clip's frames are resampled to the case's frame rate by their
times, so every file is in sync by its timestamps: a command that reports an offset must report
about zero. ``tests/test_stress.py`` runs every command on the small cases;
``benchmarks/stress.py`` adds 1080p and 10-minute files made from ../shared/data.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mediagen import write_media


@dataclass(frozen=True)
class StressCase:
    name: str
    ext: str = ".mp4"
    vcodec: str = "libx264"
    fps: float = 25.0
    seconds: float = 3.0
    size: tuple[int, int] | None = None
    """(width, height) of the frame; the clip is scaled to fit and centred (None: its own)."""
    audio_rate: int = 48000
    channels: int = 1
    acodec: str = "aac"
    video_start_s: float = 0.0
    """Presentation time of the first video frame (audio starts at 0)."""
    audio_start_s: float = 0.0
    """Start of the audio after the first video frame."""
    layout: str = "plain"
    """plain, rotated, passer_by, enters_late, shot_cut or vfr."""
    codec_options: dict = field(default_factory=dict)
    expect_offset: bool = True
    """A sync command should find an offset (near zero); False where the file is too short."""


CASES = [
    StressCase("mp4_h264_25_short_gop", codec_options={"g": "12"}),
    StressCase("mkv_h264_long_gop_bframes", ext=".mkv", codec_options={"g": "250", "bf": "2"}),
    StressCase("mov_h264_30_44k_stereo", ext=".mov", fps=30, audio_rate=44100, channels=2),
    StressCase("webm_vp9_24_opus", ext=".webm", vcodec="libvpx-vp9", fps=24, acodec="libopus",
               codec_options={"deadline": "realtime", "cpu-used": "8"}),
    StressCase("avi_mpeg4_2997_8k", ext=".avi", vcodec="mpeg4", fps=30000 / 1001, audio_rate=8000,
               acodec="pcm_s16le"),
    StressCase("mp4_h264_50_16k", fps=50, audio_rate=16000),
    StressCase("mp4_h264_60_48k", fps=60),
    StressCase("mp4_vfr", layout="vfr"),
    StressCase("mp4_audio_starts_first", video_start_s=0.32),
    StressCase("mp4_audio_starts_late", audio_start_s=0.3),
    StressCase("mp4_rotated", layout="rotated"),
    StressCase("mp4_passer_by", layout="passer_by"),
    StressCase("mp4_face_enters_late", seconds=4.0, layout="enters_late"),
    StressCase("mp4_shot_cut", seconds=6.0, layout="shot_cut"),
    StressCase("mp4_1s", seconds=1.0, expect_offset=False),
]


def _clip(src: Path) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    from speakerid.media import iter_frames, read_audio

    frames = list(iter_frames(src))
    return [f.image for f in frames], np.array([f.time for f in frames]), read_audio(src, sample_rate=48000)


def _fit(img: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if size is None:
        return img
    import cv2

    w, h = size
    s = min(w / img.shape[1], h / img.shape[0])
    small = cv2.resize(img, (int(img.shape[1] * s) // 2 * 2, int(img.shape[0] * s) // 2 * 2),
                       interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    out = np.full((h, w, 3), 96, np.uint8)
    y, x = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    out[y:y + small.shape[0], x:x + small.shape[1]] = small
    return out


def build(case: StressCase, src: Path, out_dir: Path) -> Path:
    """Write ``case`` made from the talking clip ``src`` (looped to the case's length)."""
    imgs, times, audio = _clip(src)
    period = len(imgs) / 25.0
    n = int(round(case.seconds * case.fps))
    t = np.arange(n) / case.fps
    if case.layout == "vfr":
        rng = np.random.default_rng(7)
        t = np.round(np.concatenate([[0.0], np.cumsum(rng.choice([1 / 60, 1 / 30, 1 / 20, 0.05], size=4 * n))]), 3)
        t = t[t < case.seconds]
    # each frame and each audio sample shows the clip (looped) at its own presentation time, so
    # the file is in sync by its timestamps whichever stream starts first
    tp = t + case.video_start_s
    src_idx = np.minimum((np.mod(tp, period) * 25).astype(int), len(imgs) - 1)
    rot = case.layout == "rotated"

    def frame(k: int) -> np.ndarray:
        im = imgs[src_idx[k]]
        if case.layout == "passer_by":
            right = np.ascontiguousarray(im[:, ::-1]) if 0.8 <= t[k] < 1.4 else np.full_like(im, 128)
            im = np.concatenate([im, right], axis=1)
        elif case.layout == "enters_late" and t[k] < 1.0:
            im = np.full_like(im, 110)
        elif case.layout == "shot_cut" and t[k] >= case.seconds / 2:
            im = np.ascontiguousarray(np.roll(im[:, ::-1], im.shape[1] // 5, axis=1) // 2 + 40)
        im = _fit(im, case.size)
        # rotated: stored turned a quarter left, with a display matrix that turns it back
        return np.ascontiguousarray(np.rot90(im, 1)) if rot else im

    reps = int(np.ceil((case.seconds + case.video_start_s) / period)) + 1
    a = np.tile(audio[: int(round(period * 48000))], reps)
    a = a[int(round(case.audio_start_s * 48000)): int(round((case.seconds + case.video_start_s) * 48000))]
    if case.audio_rate != 48000:
        import av

        r = av.AudioResampler(format="flt", layout="mono", rate=case.audio_rate)
        f = av.AudioFrame.from_ndarray(a.reshape(1, -1).astype(np.float32), format="flt", layout="mono")
        f.sample_rate = 48000
        a = np.concatenate([g.to_ndarray().reshape(-1) for g in r.resample(f) + r.resample(None)])
    if case.channels == 2:
        a = np.stack([a, 0.7 * a])
    h, w = frame(0).shape[:2]  # frames are made as they are written: a long file is never held
    dst = Path(out_dir) / f"{case.name}{case.ext}"
    write_media(dst, frame_times=tp.tolist(), fps=case.fps, size=(w, h), images=(frame(k) for k in range(len(t))),
                vcodec=case.vcodec, audio=a, audio_rate=case.audio_rate, acodec=case.acodec,
                audio_start_s=case.audio_start_s,
                codec_options={"preset": "ultrafast", **case.codec_options} if case.vcodec == "libx264"
                else case.codec_options, display_rotation=-90 if rot else None)
    return dst
