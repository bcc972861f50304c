"""speakerid.media: probing, frame streaming, aligned audio, the 25 fps timeline, atomic mp4 output."""
from __future__ import annotations

import os
from fractions import Fraction

import numpy as np
import pytest
from conftest import AUDIO_DELAY_S, CLICKS_S, VFR_TIMES, sha256

import mediagen
from speakerid import errors
from speakerid.media import (
    Timeline,
    atomic_output,
    iter_audio,
    iter_frames,
    probe,
    read_audio,
    read_frame_times,
    require_audio,
    require_video,
    write_video,
)

SR = 16000


# ---------------------------------------------------------------- the 25 fps timeline

def _nearest_brute(times: np.ndarray, n_model: int) -> np.ndarray:
    """For each model frame k, the source frame whose time is nearest k/25 (first on ties)."""
    return np.array([int(np.argmin(np.abs(times - k / 25.0))) for k in range(n_model)])


@pytest.mark.parametrize("fps, frac", [(24, Fraction(24)), (25, Fraction(25)), (29.97, Fraction(30000, 1001)),
                                       (30, Fraction(30)), (50, Fraction(50)), (60, Fraction(60))])
def test_timeline_constant_rates(fps, frac):
    n = int(round(4 * float(frac)))  # 4 s of video
    times = np.array([float(j / frac) for j in range(n)])
    tl = Timeline.from_times(times)
    # 4 s of source → 100 model frames (29.97: 119 frames last until 3.971 s → 99)
    expect_model = int(np.floor((n / float(frac)) * 25 + 1e-6))
    assert tl.num_model_frames == expect_model
    assert tl.num_source_frames == n
    np.testing.assert_array_equal(tl.model_to_source, _nearest_brute(times, expect_model))
    assert tl.source_fps == pytest.approx(float(frac), rel=1e-9)
    # each model frame shows a frame at most half a source frame away in time
    err = np.abs(times[tl.model_to_source] - np.arange(expect_model) / 25.0)
    assert err.max() <= 0.5 / float(frac) + 1e-9
    if float(frac) >= 25:
        # going there and back lands on the same model frame
        np.testing.assert_array_equal(tl.source_to_model(tl.model_to_source), np.arange(expect_model))


def test_timeline_known_values():
    t30 = Timeline.from_times(np.arange(60) / 30.0)
    assert t30.model_to_source[:7].tolist() == [0, 1, 2, 4, 5, 6, 7]  # 1.2 k rounded
    t50 = Timeline.from_times(np.arange(100) / 50.0)
    assert t50.model_to_source.tolist() == list(range(0, 100, 2))
    t24 = Timeline.from_times(np.arange(48) / 24.0)
    assert t24.num_model_frames == 50
    # 24 fps shows one source frame twice per second of 25 model frames: 0.96 k rounded
    assert t24.model_to_source[10:15].tolist() == [10, 11, 12, 12, 13]
    assert t24.model_to_source[-1] == 47
    # per-model values back onto every source frame
    vals = np.arange(t30.num_model_frames) * 10
    back = t30.model_values_to_source(vals)
    assert back.shape == (60,)
    assert back[:7].tolist() == [0, 10, 20, 20, 30, 40, 50]  # source j → model round(j·25/30)


def test_timeline_vfr_synthetic():
    times = VFR_TIMES
    tl = Timeline.from_times(times)
    np.testing.assert_array_equal(tl.model_to_source, _nearest_brute(times, tl.num_model_frames))
    assert tl.num_model_frames == int(np.floor((times[-1] + np.median(np.diff(times))) * 25 + 1e-6))
    # never further from the model time than half the widest source gap
    err = np.abs(times[tl.model_to_source] - np.arange(tl.num_model_frames) / 25.0)
    assert err.max() <= np.diff(times).max() / 2 + 1e-9
    assert np.all(np.diff(tl.model_to_source) >= 0)


def test_timeline_rejects_bad_times():
    with pytest.raises(errors.EmptyMediaError):
        Timeline.from_times(np.array([]))
    with pytest.raises(ValueError):
        Timeline.from_times(np.array([0.0, 0.1, 0.05]))


# ---------------------------------------------------------------- real files: probe and frames

def test_probe_30fps(cfr30):
    info = probe(cfr30)
    assert (info.fps, info.num_frames, info.width, info.height) == (30.0, 60, 192, 112)
    assert info.duration_s == pytest.approx(2.0, abs=0.04)
    assert info.video_codec == "h264" and not info.has_audio and info.rotation == 0
    assert info.display_size == (192, 112)


def test_30fps_frames_and_timeline(cfr30):
    np.testing.assert_allclose(read_frame_times(cfr30), np.arange(60) / 30.0, atol=1e-6)
    frames = list(iter_frames(cfr30))
    assert [f.index for f in frames] == list(range(60))
    assert [mediagen.frame_code(f.image) for f in frames] == list(range(60))
    np.testing.assert_allclose([f.time for f in frames], np.arange(60) / 30.0, atol=1e-6)
    assert frames[0].image.shape == (112, 192, 3) and frames[0].image.dtype == np.uint8
    tl = Timeline.from_times(np.array([f.time for f in frames]))
    assert tl.num_model_frames == 50
    assert tl.model_to_source[:7].tolist() == [0, 1, 2, 4, 5, 6, 7]


def test_vfr_file_keeps_its_timestamps(vfr):
    info = probe(vfr)
    assert info.num_frames == 60
    np.testing.assert_allclose(read_frame_times(vfr), VFR_TIMES, atol=1e-6)
    frames = list(iter_frames(vfr))
    assert [mediagen.frame_code(f.image) for f in frames] == list(range(60))
    np.testing.assert_allclose([f.time for f in frames], VFR_TIMES, atol=1e-6)
    tl = Timeline.from_times(np.array([f.time for f in frames]))
    np.testing.assert_array_equal(tl.model_to_source, _nearest_brute(VFR_TIMES, tl.num_model_frames))


def test_iter_frames_options(cfr30):
    want = [0, 7, 31, 59]
    got = list(iter_frames(cfr30, indices=want))
    assert [f.index for f in got] == want
    assert [mediagen.frame_code(f.image) for f in got] == want
    small = list(iter_frames(cfr30, max_width=96, indices=[5]))[0]
    assert small.image.shape == (56, 96, 3)
    assert mediagen.frame_code(small.image) == 5
    gray = list(iter_frames(cfr30, gray=True, indices=[9]))[0]
    assert gray.image.shape == (112, 192) and gray.image.dtype == np.uint8
    assert mediagen.frame_code(gray.image) == 9


def test_other_containers(other_container):
    info = probe(other_container)
    assert (info.width, info.height) == (360, 288)
    assert info.fps == pytest.approx(25.0)
    assert info.num_frames == 75
    assert info.has_audio
    frames = list(iter_frames(other_container, gray=True))
    assert len(frames) == 75
    assert frames[-1].time == pytest.approx(74 / 25, abs=1e-3)
    audio = read_audio(other_container)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.size - 3 * SR) < 0.05 * SR
    assert 0.01 < float(np.abs(audio).max()) <= 1.0


# ---------------------------------------------------------------- audio alignment

def _click_positions(audio: np.ndarray, n: int) -> list[int]:
    """Positions of the ``n`` strongest isolated peaks."""
    a = np.abs(audio).copy()
    out = []
    for _ in range(n):
        i = int(np.argmax(a))
        out.append(i)
        a[max(0, i - 400):i + 400] = 0
    return sorted(out)


def test_late_audio_aligned_to_one_sample(late_audio_mkv):
    info = probe(late_audio_mkv)
    assert info.video_start_s == 0.0
    assert info.audio_start_s == pytest.approx(AUDIO_DELAY_S, abs=1e-3)
    assert info.audio_rate == 48000 and info.audio_channels == 1
    audio = read_audio(late_audio_mkv)
    # sample 0 = first video frame: 0.3 s of silence, then the stream (2 s)
    assert abs(audio.size - round((AUDIO_DELAY_S + 2.0) * SR)) <= 1
    assert not np.any(audio[: int(AUDIO_DELAY_S * SR) - 1])
    expect = [round((AUDIO_DELAY_S + c) * SR) for c in CLICKS_S]
    got = _click_positions(audio, 2)
    assert all(abs(g - e) <= 1 for g, e in zip(got, expect)), (got, expect)


def test_audio_aligned_to_a_given_video_start(late_audio_mkv):
    # aligned to a "video" that starts when the audio does: the clicks at their stream times
    audio = read_audio(late_audio_mkv, video_start_s=AUDIO_DELAY_S)
    got = _click_positions(audio, 2)
    assert all(abs(g - round(c * SR)) <= 1 for g, c in zip(got, CLICKS_S)), got
    # aligned to a start 0.6 s after the audio's: the first 0.6 s (and the first click) are dropped
    audio = read_audio(late_audio_mkv, video_start_s=AUDIO_DELAY_S + 0.6)
    assert abs(audio.size - round(1.4 * SR)) <= 1
    assert abs(_click_positions(audio, 1)[0] - round((CLICKS_S[1] - 0.6) * SR)) <= 1


def test_late_audio_aac_mp4(late_audio_mp4):
    # AAC adds encoder priming and a lossy transient: alignment within 1 ms
    audio = read_audio(late_audio_mp4)
    expect = [round((AUDIO_DELAY_S + c) * SR) for c in CLICKS_S]
    got = _click_positions(audio, 2)
    assert all(abs(g - e) <= SR // 1000 for g, e in zip(got, expect)), (got, expect)


def test_iter_audio_gives_read_audios_samples_piece_by_piece(late_audio_mkv, late_audio_mp4):
    """The streamed decode (long videos) is the whole decode cut in pieces: the same silence in
    front of late audio, the same trim after a later video start, the same samples."""
    cases = [(late_audio_mkv, None), (late_audio_mp4, None), (late_audio_mkv, AUDIO_DELAY_S + 0.6),
             (late_audio_mkv, AUDIO_DELAY_S + 0.0101)]
    for path, start in cases:
        whole = read_audio(path, video_start_s=start)
        pieces = list(iter_audio(path, video_start_s=start))
        assert len(pieces) > 5 and all(p.dtype == np.float32 and p.ndim == 1 for p in pieces)
        np.testing.assert_array_equal(np.concatenate(pieces), whole)


def test_streamed_native_audio_is_the_whole_decode_shifted(late_audio_mkv, late_audio_mp4, grid_clip):
    """repair_sync's audio is decoded, shifted and re-encoded a piece at a time
    (stream_audio_native): the whole unshifted decode, shifted, with the same rate and layout,
    for audio that starts late (silence in front) and for shifts either way."""
    from speakerid.media import stream_audio_native

    for path in (late_audio_mkv, late_audio_mp4, grid_clip):
        whole = stream_audio_native(path)
        samples = np.concatenate(list(whole.pieces()), axis=1)
        assert samples.shape[0] == whole.channels
        for off in (0.0, 120.0, -200.0, 33.3):
            st = stream_audio_native(path, off)
            assert (st.sample_rate, st.layout, st.channels) == (whole.sample_rate, whole.layout, whole.channels)
            assert st.video_start_s == whole.video_start_s
            pieces = list(st.pieces())
            assert len(pieces) > 5
            np.testing.assert_array_equal(np.concatenate(pieces, axis=1), _shifted(samples, whole.sample_rate, off))


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_rewritten_audio_is_interleaved_with_the_video(tmp_path, suffix):
    """remux_with_audio (repair_sync's writer) encodes the audio as the video goes: in a 16 s
    file no stretch of the byte stream holds more than ~1 s of one stream's packets (the muxer
    alone would write the first ~10 s or more of video before any audio). The .webm target
    re-encodes the video (VP9), the .mp4 one copies it."""
    import av

    from speakerid.media import remux_with_audio, stream_audio_native, write_video

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (64, 96, 3), dtype=np.uint8) for _ in range(400)]
    t = np.arange(400 * 640) / 16000.0
    src = tmp_path / "src.mp4"
    write_video(src, frames, 25, audio=(0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32))
    out = tmp_path / f"out{suffix}"
    remux_with_audio(src, out, stream_audio_native(src, 120.0))
    with av.open(str(out)) as c:
        pkts = sorted((p.pos, p.stream.type, float(p.pts * p.time_base)) for p in c.demux()
                      if p.pos is not None and p.pos >= 0 and p.pts is not None)
    kinds = {k for _, k, _ in pkts}
    assert kinds == {"video", "audio"}
    # the longest run of one stream's packets in file order, in seconds of that stream
    longest, run_start = 0.0, 0
    for i in range(1, len(pkts) + 1):
        if i == len(pkts) or pkts[i][1] != pkts[run_start][1]:
            longest = max(longest, pkts[i - 1][2] - pkts[run_start][2])
            run_start = i
    assert longest < 1.5, longest
    assert read_audio(out).size == pytest.approx(400 * 640, abs=1024 * 2)


def _shifted(x: np.ndarray, rate: int, offset_ms: float) -> np.ndarray:
    """Reference: ``x`` (channels, n) with an offset undone, the length kept (a positive offset
    drops the first samples and adds silence at the end; a negative one delays the audio)."""
    n = x.shape[-1]
    k = int(round(offset_ms * rate / 1000.0))
    out = np.zeros_like(x)
    if 0 <= k < n:
        out[..., : n - k] = x[..., k:]
    elif -n < k < 0:
        out[..., -k:] = x[..., : n + k]
    return out


@pytest.mark.parametrize("offset_ms", [0.0, 0.5, 7.0, -7.0, 40.0, -40.0, 500.0, -500.0])
def test_shift_audio_pieces_matches_shift_audio(offset_ms):
    """Any cut of the signal into pieces, shifts shorter and longer than a piece and than the
    whole signal (500 ms of 300 samples at 1 kHz)."""
    from speakerid.media import shift_audio_pieces

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 300)).astype(np.float32)
    for cuts in ([], [1, 2, 3], sorted(rng.choice(300, 20, replace=False).tolist()), [150]):
        out = list(shift_audio_pieces(np.split(x, cuts, axis=1), 1000, offset_ms))
        got = np.concatenate(out, axis=1) if out else np.zeros((2, 0), np.float32)
        np.testing.assert_array_equal(got, _shifted(x, 1000, offset_ms))


def test_audio_only_and_no_audio(audio_only, no_audio):
    info = probe(audio_only)
    assert not info.has_video and info.has_audio and info.audio_rate == 16000
    a = read_audio(audio_only)
    assert a.size == SR and abs(_click_positions(a, 1)[0] - SR // 2) <= 1
    with pytest.raises(errors.NoVideoStreamError, match="audio_only.wav"):
        require_video(info)
    with pytest.raises(errors.NoVideoStreamError, match="audio_only.wav"):
        next(iter_frames(audio_only))
    info = probe(no_audio)
    assert info.has_video and not info.has_audio
    require_video(info)
    assert len(list(iter_frames(no_audio))) == 20
    with pytest.raises(errors.NoAudioStreamError, match="no_audio.mp4"):
        require_audio(info)
    with pytest.raises(errors.NoAudioStreamError, match="no_audio.mp4"):
        read_audio(no_audio)


# ---------------------------------------------------------------- bad input

BAD = [
    ("zero_byte", errors.EmptyMediaError),
    ("text_as_mp4", errors.NotAMediaFileError),
    ("truncated", errors.CorruptMediaError),
    ("truncated_index_at_end", errors.CorruptMediaError),
    ("odd_codec", errors.UnsupportedCodecError),
]


@pytest.mark.parametrize("fixture, error", BAD)
def test_bad_input_raises_its_error(request, fixture, error):
    path = request.getfixturevalue(fixture)
    before = sha256(path)

    def first_failure():
        # probe may pass a truncated file (its index is intact); decoding it must not
        probe(path)
        list(iter_frames(path))
        read_audio(path)

    with pytest.raises(error) as ei:
        first_failure()
    assert path.name in str(ei.value)
    assert isinstance(ei.value, errors.SpeakerIdError)
    assert sha256(path) == before  # inputs are never modified


def test_truncated_is_caught_by_every_reader(truncated):
    for fn in (lambda p: list(iter_frames(p)), read_audio, lambda p: list(iter_audio(p)), read_frame_times):
        with pytest.raises(errors.CorruptMediaError, match="truncated"):
            fn(truncated)


def test_missing_file(tmp_path):
    missing = tmp_path / "nowhere" / "clip.mp4"
    for fn in (probe, read_audio, read_frame_times, lambda p: next(iter_frames(p)), lambda p: next(iter_audio(p))):
        with pytest.raises(errors.InputNotFoundError, match="clip.mp4"):
            fn(missing)
    with pytest.raises(errors.InputNotFoundError, match="not a regular file"):
        probe(tmp_path)


def test_unsupported_frame_rate(slow_fps):
    info = probe(slow_fps)
    assert info.fps == pytest.approx(2.0)
    with pytest.raises(errors.UnsupportedFrameRateError, match="two_fps.mp4"):
        require_video(info)


def test_readers_never_modify_input(grid_clip):
    before = (sha256(grid_clip), os.stat(grid_clip).st_mtime_ns)
    probe(grid_clip)
    read_audio(grid_clip)
    read_frame_times(grid_clip)
    for _ in iter_frames(grid_clip, gray=True):
        pass
    assert (sha256(grid_clip), os.stat(grid_clip).st_mtime_ns) == before


# ---------------------------------------------------------------- writing

def test_write_video_roundtrip(tmp_path):
    frames = [mediagen.coded_image(i) for i in range(30)]
    audio = mediagen.tone_with_clicks(1.2, SR, [0.6])
    out = write_video(tmp_path / "out.mp4", frames, 25, audio=audio)
    assert out == tmp_path / "out.mp4"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]  # no temp file left
    info = probe(out)
    assert (info.fps, info.num_frames, info.width, info.height) == (25.0, 30, 192, 112)
    assert (info.video_codec, info.audio_codec, info.audio_rate) == ("h264", "aac", SR)
    assert [mediagen.frame_code(f.image) for f in iter_frames(out)] == list(range(30))
    a = read_audio(out)
    assert abs(_click_positions(a, 1)[0] - round(0.6 * SR)) <= SR // 1000


def test_write_video_never_overwrites_input(tmp_path, cfr30):
    before = sha256(cfr30)
    with pytest.raises(errors.OutputExistsError, match="input"):
        write_video(cfr30, (f.image for f in iter_frames(cfr30)), 30, protect=[cfr30])
    # the same file through another name (a symlink) is still the input
    link = tmp_path / "link.mp4"
    link.symlink_to(cfr30)
    with pytest.raises(errors.OutputExistsError):
        write_video(link, [mediagen.coded_image(0)], 25, protect=[cfr30])
    assert sha256(cfr30) == before
    assert not any(p.name.startswith(".") for p in cfr30.parent.iterdir() if "partial" in p.name)


def test_atomic_output_failure_leaves_nothing(tmp_path):
    target = tmp_path / "result.json"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    target.write_text("old")
    with pytest.raises(errors.OutputExistsError, match="exists"):
        with atomic_output(target, overwrite=False):
            pass
    assert target.read_text() == "old"

    def broken_frames():
        yield mediagen.coded_image(0)
        raise RuntimeError("decoder died")

    with pytest.raises(RuntimeError):
        write_video(tmp_path / "v.mp4", broken_frames(), 25)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


def test_rotated_video_frames_come_upright(tmp_path):
    # a phone-style file: stored 192×112, with a display matrix saying "rotate on playback"
    # (the display matrix ffmpeg's "-metadata:s:v:0 rotate=90" writes, set through PyAV)
    rot = mediagen.write_media(tmp_path / "rotated.mp4", fps=30, num_frames=60, display_rotation=90)
    info = probe(rot)
    assert info.rotation in (90, 270)
    assert (info.width, info.height) == (192, 112) and info.display_size == (112, 192)
    frames = list(iter_frames(rot, indices=[0, 13]))
    assert frames[0].image.shape == (192, 112, 3)
    # ffmpeg's own autorotation turns this file a quarter turn counter-clockwise; so do we
    assert info.rotation == 270
    assert [mediagen.frame_code(np.rot90(f.image, k=-1)) for f in frames] == [0, 13]


def test_atomic_output_gets_the_usual_permissions(tmp_path):
    """Outputs are made through a private temp file but must not stay private (0600)."""
    import os
    import stat

    target = tmp_path / "out.json"
    with atomic_output(target) as tmp:
        tmp.write_text("{}")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
