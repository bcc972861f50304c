"""Shared fixtures: real media, generated with PyAV into temporary folders (never into tests/data).

The one shipped clip, tests/data/grid_s1_lgwg2n.mp4, is from the GRID audio-visual corpus
(speaker 1, sentence "lay green with g two now"; CC-BY-4.0, see NOTICE).
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data"
sys.path.insert(0, str(TESTS))

import mediagen  # noqa: E402

GRID_CLIP = DATA / "grid_s1_lgwg2n.mp4"

# audio events of the generated "late audio" files: clicks at these times of the audio stream
CLICKS_S = [0.5, 1.22]  # + the 0.3 s delay: video frames 20 and 38
AUDIO_DELAY_S = 0.3


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def grid_clip() -> Path:
    assert GRID_CLIP.is_file(), "tests/data/grid_s1_lgwg2n.mp4 is missing"
    return GRID_CLIP


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def cfr30(media_dir) -> Path:
    """2 s at exactly 30 fps, frames coded with their index."""
    return mediagen.write_media(media_dir / "cfr30.mp4", fps=30, num_frames=60)


VFR_TIMES = np.round(np.concatenate([[0.0], np.cumsum(np.random.default_rng(1).choice(
    [1 / 60, 1 / 30, 1 / 20, 0.05], size=59))]), 3)


@pytest.fixture(scope="session")
def vfr(media_dir) -> Path:
    """60 frames at irregular times (17–50 ms apart), ms time base."""
    return mediagen.write_media(media_dir / "vfr.mp4", frame_times=VFR_TIMES.tolist())


@pytest.fixture(scope="session")
def late_audio_mkv(media_dir) -> Path:
    """25 fps video; 48 kHz PCM audio whose first sample plays 0.3 s after the first frame,
    with one-sample clicks at 0.5 s and 1.2 s of the audio stream."""
    a = mediagen.tone_with_clicks(2.0, 48000, CLICKS_S)
    return mediagen.write_media(media_dir / "late_audio.mkv", fps=25, num_frames=75, audio=a, audio_rate=48000,
                                acodec="pcm_s16le", audio_start_s=AUDIO_DELAY_S)


@pytest.fixture(scope="session")
def late_audio_mp4(media_dir) -> Path:
    """The same in MP4 with AAC audio (lossy, with encoder priming)."""
    a = mediagen.tone_with_clicks(2.0, 48000, CLICKS_S)
    return mediagen.write_media(media_dir / "late_audio.mp4", fps=25, num_frames=75, audio=a, audio_rate=48000,
                                acodec="aac", audio_start_s=AUDIO_DELAY_S)


@pytest.fixture(scope="session")
def no_audio(media_dir) -> Path:
    return mediagen.write_media(media_dir / "no_audio.mp4", fps=25, num_frames=20)


@pytest.fixture(scope="session")
def audio_only(media_dir) -> Path:
    a = mediagen.tone_with_clicks(1.0, 16000, [0.5])
    return mediagen.write_media(media_dir / "audio_only.wav", video=False, audio=a, audio_rate=16000,
                                acodec="pcm_s16le")


@pytest.fixture(scope="session")
def slow_fps(media_dir) -> Path:
    """2 fps: below what the 25 fps timeline resamples."""
    return mediagen.write_media(media_dir / "two_fps.mp4", fps=2, num_frames=6)


@pytest.fixture(scope="session")
def zero_byte(media_dir) -> Path:
    p = media_dir / "empty.mp4"
    p.write_bytes(b"")
    return p


@pytest.fixture(scope="session")
def text_as_mp4(media_dir) -> Path:
    p = media_dir / "notes.mp4"
    p.write_text("these are meeting notes, not a video\n" * 20)
    return p


@pytest.fixture(scope="session")
def truncated(media_dir, grid_clip) -> Path:
    """The GRID clip cut at half its bytes (its index, at the front, still lists 75 frames)."""
    b = grid_clip.read_bytes()
    p = media_dir / "truncated.mp4"
    p.write_bytes(b[: len(b) // 2])
    return p


@pytest.fixture(scope="session")
def truncated_index_at_end(media_dir, grid_clip) -> Path:
    """An MP4 whose index (moov, written last) was never reached: FFmpeg cannot open it."""
    full = mediagen.transcode(grid_clip, media_dir / "moov_at_end.mp4", "libx264", "aac")
    b = full.read_bytes()
    assert b.find(b"moov") > len(b) // 2
    p = media_dir / "truncated_moov.mp4"
    p.write_bytes(b[: len(b) // 2])
    return p


@pytest.fixture(scope="session")
def odd_codec(media_dir, grid_clip) -> Path:
    """A Matroska file whose video codec id no FFmpeg decoder knows (V_MPEG4/ISO/AVC renamed)."""
    mkv = mediagen.remux(grid_clip, media_dir / "for_odd.mkv").read_bytes()
    assert b"V_MPEG4/ISO/AVC" in mkv
    p = media_dir / "odd_codec.mkv"
    p.write_bytes(mkv.replace(b"V_MPEG4/ISO/AVC", b"V_QQQQQ/ISO/AVC"))
    return p


@pytest.fixture(scope="session", params=["mkv", "mov", "avi", "webm"])
def other_container(request, media_dir, grid_clip) -> Path:
    """The GRID clip in another container: mkv/mov remuxed (H.264 + AAC copied), avi (MPEG-4
    Part 2 + PCM) and webm (VP8 + Opus) re-encoded."""
    ext = request.param
    if ext in ("mkv", "mov"):
        return mediagen.remux(grid_clip, media_dir / f"grid.{ext}")
    codecs = {"avi": ("mpeg4", "pcm_s16le"), "webm": ("libvpx", "libopus")}[ext]
    return mediagen.transcode(grid_clip, media_dir / f"grid.{ext}", *codecs)


@pytest.fixture(scope="session")
def grid_analysis(grid_clip):
    """analyze_faces on the real GRID clip, with default settings (shared: it takes seconds)."""
    from speakerid.faces import analyze_faces

    return analyze_faces(grid_clip)
