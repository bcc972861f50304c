"""Defects real-world files brought out, each on a real file generated here from the GRID clip:
a passer-by's short face track, Matroska with a long GOP, a drifting offset, an unwritable target,
audio that is not 16 kHz mono, variable frame rate, interrupted writes, and commands that must
agree with each other."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import mediagen
from conftest import GRID_CLIP, sha256
from speakerid.errors import (
    OutputExistsError,
    OutputNotWritableError,
    OutputVerificationError,
    SyncDriftError,
)
from speakerid.media import probe, read_frame_times, verify_written
from speakerid.outputs import PARTIAL_TAG, atomic_output, check_writable, host_tag
from speakerid.smoothing import centred_mean
from speakerid.sync import measure_sync, repair_sync

TOL_MS = 40


@pytest.fixture(scope="module")
def model():
    from speakerid.model import load_model

    return load_model(device="cpu")


@pytest.fixture(scope="module")
def rw_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("realworld")


@pytest.fixture(scope="module")
def brief_face(rw_dir) -> Path:
    return mediagen.with_brief_second_face(GRID_CLIP, rw_dir / "brief_face.mp4")


@pytest.fixture(scope="module")
def gop_mkv(rw_dir) -> Path:
    """Matroska, 2 s GOP with B-frames (the first packets carry no DTS), audio 120 ms late."""
    return mediagen.long_gop(GRID_CLIP, rw_dir / "long_gop.mkv", delay_ms=120)


@pytest.fixture(scope="module")
def drifting(rw_dir) -> Path:
    """18 s: 9 s in sync, then 9 s with the audio 400 ms late."""
    return mediagen.repeated_with_drift(GRID_CLIP, rw_dir / "drift.mp4", [0, 0, 0, 400, 400, 400])


def _cli(*args, timeout=300, env=None):
    e = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "speakerid", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=e)


def _partials(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if PARTIAL_TAG in p.name or ".partial" in p.name]


# 1. a face track shorter than the speaker-choice kernel ---------------------------------------

def test_moving_mean_keeps_the_length_of_short_series():
    for n in (0, 1, 2, 7, 24, 25, 80):
        x = np.arange(n, dtype=float)
        y = centred_mean(x, 25)
        assert y.shape == (n,)
        if n:
            assert y[0] == pytest.approx(x[: min(n, 13)].mean())
            assert np.all(np.isfinite(y))


def test_every_smoothing_takes_one_and_two_window_tracks():
    from types import SimpleNamespace

    from speakerid.smoothing import triangle_nanmean
    from speakerid.sync.measure import _speaker_windows

    for n in (0, 1, 2, 5):
        x = np.full((n, 3), 0.5)
        assert triangle_nanmean(x, 25).shape == (n, 3)
    rng = np.random.default_rng(0)
    # a long track, a one-window track and a two-window track, all overlapping in time
    per_track = [(SimpleNamespace(starts=np.arange(s, s + n)), rng.random((n, 41)).astype(np.float32), None)
                 for s, n in ((0, 60), (10, 1), (30, 2))]
    keep = _speaker_windows(per_track, num_frames=80, smooth_windows=25)
    assert [k.shape for k in keep] == [(60,), (1,), (2,)]


def test_sync_with_a_passer_by_face(brief_face, model):
    from speakerid.faces import analyze_faces

    a = analyze_faces(brief_face)
    assert len(a.tracks) >= 2 and min(len(t.frames) for t in a.tracks) < 25  # a track under a second
    r = measure_sync(brief_face, model=model)
    assert r.status == "ok" and abs(r.offset_ms) <= TOL_MS


# 2 + 3. fix: Matroska input, and the written file itself is checked ------------------------------

@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_fix_matroska_long_gop(gop_mkv, tmp_path, model, suffix):
    before = sha256(gop_mkv)
    out = tmp_path / f"fixed{suffix}"
    rr = repair_sync(gop_mkv, out, model=model)
    assert sha256(gop_mkv) == before
    assert abs(rr.applied_offset_ms - 120) <= TOL_MS
    assert rr.residual is not None and abs(rr.residual.offset_ms) <= TOL_MS
    src_t = read_frame_times(gop_mkv)
    w = verify_written(out, expect_frames=src_t.size, expect_end_s=float(src_t[-1]))
    assert w.video_frames == src_t.size
    assert not _partials(tmp_path)


def _drop_first_gop(path: Path) -> None:
    """Rewrite ``path`` without its video packets before the second keyframe (what skipping
    Matroska's DTS-less packets did)."""
    import av

    tmp = path.with_name("cut" + path.suffix)
    with av.open(str(path)) as inp, av.open(str(tmp), "w") as out:
        vs = out.add_stream_from_template(inp.streams.video[0])
        as_ = out.add_stream_from_template(inp.streams.audio[0])
        keys = 0
        for pkt in inp.demux():
            if pkt.size == 0:
                continue
            if pkt.stream.type == "video":
                keys += bool(pkt.is_keyframe)
                if keys < 2:
                    continue
                pkt.stream = vs
            else:
                pkt.stream = as_
            out.mux(pkt)
    os.replace(tmp, path)


def test_fix_refuses_to_keep_a_broken_file(gop_mkv, tmp_path, model, monkeypatch):
    import speakerid.media.write as media_write

    real = media_write._remux

    def broken(src, tmp, *a, **kw):
        real(src, tmp, *a, **kw)
        _drop_first_gop(Path(tmp))

    monkeypatch.setattr(media_write, "_remux", broken)
    out = tmp_path / "fixed.mp4"
    with pytest.raises(OutputVerificationError, match="video frames"):
        repair_sync(gop_mkv, out, model=model)
    assert not out.exists() and not _partials(tmp_path)


def test_verify_written_names_a_short_audio(tmp_path):
    # 3 s of video, 1 s of audio: the audio does not cover the video
    p = mediagen.write_media(tmp_path / "short_audio.mp4", fps=25, num_frames=75,
                             audio=np.zeros(16000, np.float32), audio_rate=16000)
    with pytest.raises(OutputVerificationError, match="audio covers"):
        verify_written(p, expect_frames=75, expect_end_s=74 / 25)
    with pytest.raises(OutputVerificationError, match="75 video frames"):
        verify_written(p, expect_frames=90, expect_end_s=89 / 25)


# 4. drift ------------------------------------------------------------------------------------

def test_drift_is_reported_whatever_the_aggregate_says(drifting, model, tmp_path):
    # a floor the whole file's (two-peaked) aggregate cannot reach, as on a long drifting file
    r = measure_sync(drifting, model=model, min_confidence=0.5)
    assert r.status == "drift" and r.drift and r.offset_ms is None
    offs = [s.offset_ms for s in r.segments]
    assert len(offs) == 2 and abs(offs[0]) <= TOL_MS and abs(offs[1] - 400) <= TOL_MS
    assert "drifts" in r.describe() and "0–10 s" in r.message and "10–18 s" in r.message
    with pytest.raises(SyncDriftError, match="one shift"):
        repair_sync(drifting, tmp_path / "fixed.mp4", model=model)
    assert not (tmp_path / "fixed.mp4").exists()


def test_speakers_warns_of_drift(drifting, model):
    from speakerid import detect_speakers

    r = detect_speakers(drifting, model=model)
    assert any("drifts" in w for w in r.warnings)
    assert "warnings" in r.to_dict()


# 5. unwritable outputs fail before the work ------------------------------------------------------

def test_unwritable_targets_are_named(tmp_path):
    f = tmp_path / "a_file"
    f.write_text("x")
    with pytest.raises(OutputNotWritableError, match="not a folder"):
        check_writable(f / "out.json")
    with pytest.raises(OutputNotWritableError, match="cannot write"):
        check_writable(Path("/proc/out.json"))
    with pytest.raises(OutputNotWritableError, match="free space"):
        check_writable(tmp_path / "out.mp4", need_bytes=1 << 60)
    with pytest.raises(OutputNotWritableError, match="is a folder"):
        check_writable(tmp_path)


@pytest.mark.parametrize("cmd", [["sync", "{v}", "--json", "{o}"], ["fix", "{v}", "-o", "{o}"],
                                 ["speakers", "{v}", "--rttm", "{o}"], ["render", "{v}", "-o", "{o}"],
                                 ["tracks", "{v}", "-o", "{o}"]])
def test_cli_refuses_an_unwritable_output_before_the_work(cmd, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    out = blocker / "out.x"
    r = _cli(*[c.format(v=GRID_CLIP, o=out) for c in cmd])
    assert r.returncode == 2, r.stderr
    err = r.stderr.strip().splitlines()
    assert err == [f"speakerid: error: {out}: cannot be created: {blocker} is not a folder"], r.stderr
    assert "Traceback" not in r.stderr


# 6 + 7. render keeps the source's audio and frame times ------------------------------------------

def test_render_keeps_audio_rate_channels_and_vfr_times(tmp_path, model):
    from speakerid import detect_speakers
    from speakerid.media import iter_frames, read_audio
    from speakerid.render import render_speakers

    imgs = [f.image for f in iter_frames(GRID_CLIP)]
    a = read_audio(GRID_CLIP, sample_rate=48000)
    rng = np.random.default_rng(3)
    t = np.concatenate([[0.0], np.cumsum(rng.choice([0.02, 0.04, 0.06], size=len(imgs) - 1))])
    t = np.round(t * (3.0 / t[-1]), 3)
    src = mediagen.write_media(tmp_path / "vfr_stereo.mp4", frame_times=t.tolist(), size=(360, 288), images=imgs,
                               audio=np.stack([a, 0.5 * a]), audio_rate=48000)
    res = detect_speakers(src, model=model)
    out = render_speakers(src, tmp_path / "render.mp4", res)
    pi, po = probe(src), probe(out)
    assert (po.audio_rate, po.audio_channels) == (pi.audio_rate, pi.audio_channels) == (48000, 2)
    ti, to = read_frame_times(src), read_frame_times(out)
    assert ti.size == to.size and np.abs(ti - to).max() < 1e-3


# 8. interrupted writes ---------------------------------------------------------------------------

def test_stale_partials_of_dead_processes_are_removed(tmp_path):
    target = tmp_path / "out.json"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".out.json.{host_tag()}.{dead.pid}.abcd{PARTIAL_TAG}.json"
    live = tmp_path / f".out.json.{host_tag()}.{os.getpid()}.efgh{PARTIAL_TAG}.json"
    other_host = tmp_path / f".out.json.elsewhere.{dead.pid}.ijkl{PARTIAL_TAG}.json"
    for p in (stale, live, other_host):
        p.write_text("half")
    with atomic_output(target) as tmp:
        tmp.write_text("{}")
    assert target.read_text() == "{}"
    assert not stale.exists() and live.exists() and other_host.exists()


def test_a_swallowed_interrupt_still_stops_the_rename(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(target) as tmp:
            tmp.write_text("{}")
            try:  # a native library that catches the interrupt and carries on
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.5)
            except KeyboardInterrupt:
                pass
    assert not target.exists() and not _partials(tmp_path)


def _run_until(args, marker: str, sig: int, timeout: float = 240):
    """Start the CLI, send ``sig`` once ``marker`` shows on its stderr, return (rc, stderr)."""
    p = subprocess.Popen([sys.executable, "-m", "speakerid", *map(str, args)], stderr=subprocess.PIPE, text=True,
                         stdout=subprocess.DEVNULL)
    seen = []
    t0 = time.monotonic()
    for line in p.stderr:
        seen.append(line)
        if marker in line:
            p.send_signal(sig)
            break
        assert time.monotonic() - t0 < timeout
    rest = p.stderr.read()
    return p.wait(timeout=timeout), "".join(seen) + rest


def test_sigint_while_verifying_leaves_nothing_and_says_so(gop_mkv, tmp_path):
    out = tmp_path / "fixed.mp4"
    rc, err = _run_until(["fix", gop_mkv, "-o", out], "verify: started", signal.SIGINT)
    assert rc == 130, err
    assert "interrupted; no output was written" in err
    assert not out.exists() and not _partials(tmp_path)


def test_sigkill_leaves_a_partial_the_next_run_removes(gop_mkv, tmp_path):
    out = tmp_path / "fixed.mp4"
    rc, err = _run_until(["fix", gop_mkv, "-o", out], "verify: started", signal.SIGKILL)
    assert rc == -signal.SIGKILL
    assert not out.exists() and len(_partials(tmp_path)) == 1
    r = _cli("fix", gop_mkv, "-o", out, "--offset-ms", "120", "--no-remeasure")
    assert r.returncode == 0, r.stderr
    assert out.exists() and not _partials(tmp_path)


# 9. commands agree -----------------------------------------------------------------------------

def test_every_analysis_command_takes_the_same_options():
    from speakerid.cli import build_parser

    parser = build_parser()
    for cmd in (["sync", "v"], ["fix", "v", "-o", "o"], ["speakers", "v"], ["render", "v", "-o", "o"]):
        for opt in (["--model", "m.pt"], ["--weights", "m.pt"]):
            a = parser.parse_args(cmd + opt + ["--device", "cpu", "--force", "--quiet"])
            assert a.model == "m.pt" and a.device == "cpu" and a.force and a.quiet
    for cmd in (["sync", "v"], ["fix", "v", "-o", "o"], ["speakers", "v"], ["render", "v", "-o", "o"]):
        assert parser.parse_args(cmd + ["--json"]).json == "-"
        assert parser.parse_args(cmd + ["--json", "r.json"]).json == "r.json"


def test_existing_outputs_need_force_everywhere(tmp_path):
    for cmd in (["speakers", GRID_CLIP, "--json", "{o}"], ["render", GRID_CLIP, "-o", "{o}"],
                ["sync", GRID_CLIP, "--plot", "{o}"], ["tracks", GRID_CLIP, "-o", "{o}"]):
        out = tmp_path / "existing.png"
        out.write_bytes(b"keep me")
        r = _cli(*[str(c).format(o=out) for c in cmd])
        assert r.returncode == 2 and "--force" in r.stderr, (cmd, r.stderr)
        assert out.read_bytes() == b"keep me"


def test_sync_and_fix_agree_when_there_is_no_face(tmp_path):
    p = mediagen.write_media(tmp_path / "no_face.mp4", fps=25, num_frames=75,
                             audio=mediagen.tone_with_clicks(3.0, 16000, [1.0], level=0.1), audio_rate=16000)
    rs, rf = _cli("sync", p), _cli("fix", p, "-o", tmp_path / "o.mp4")
    assert rs.returncode == rf.returncode == 2
    assert "no face" in rs.stderr and "no face" in rf.stderr


def test_speakers_refuses_a_clip_sync_refuses(tmp_path):
    from speakerid.media import iter_frames, read_audio

    imgs = [f.image for f in iter_frames(GRID_CLIP)][:8]
    a = read_audio(GRID_CLIP, sample_rate=16000)[: 8 * 640]
    p = mediagen.write_media(tmp_path / "tiny.mp4", fps=25, num_frames=8, size=(360, 288), images=imgs, audio=a)
    rs, rp = _cli("sync", p), _cli("speakers", p)
    assert rs.returncode == rp.returncode == 2
    assert "needs at least" in rs.stderr and "needs at least" in rp.stderr


@pytest.mark.parametrize("args", [["sync", GRID_CLIP, "--step-ms", "15"], ["sync", GRID_CLIP, "--search-ms", "-5"],
                                  ["fix", GRID_CLIP, "-o", "x.mp4", "--step-ms", "15"],
                                  ["speakers", GRID_CLIP, "--competition", "0.3"]])
def test_bad_settings_are_one_line(args):
    r = _cli(*args)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("speakerid: error: ")


# 10. progress off a terminal, no ResourceWarning -------------------------------------------------

def test_plain_progress_lines_off_a_terminal_and_quiet():
    r = _cli("sync", GRID_CLIP)
    assert r.returncode == 0
    lines = r.stderr.splitlines()
    assert any(line.startswith("speakerid: faces: started") for line in lines)
    assert any(line.startswith("speakerid: faces: done") for line in lines)
    assert "\r" not in r.stderr
    q = _cli("sync", GRID_CLIP, "--quiet")
    assert q.returncode == 0 and q.stderr == ""


def test_no_resource_warning():
    code = ("import warnings, gc; warnings.simplefilter('always');\n"
            "import speakerid\n"
            f"speakerid.measure_sync({str(GRID_CLIP)!r}); speakerid.detect_speakers({str(GRID_CLIP)!r}); gc.collect()")
    r = subprocess.run([sys.executable, "-X", "dev", "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "ResourceWarning" not in r.stderr, r.stderr


def test_existing_file_refused_by_the_api_too(tmp_path):
    out = tmp_path / "x.json"
    out.write_text("keep")
    with pytest.raises(OutputExistsError):
        with atomic_output(out, overwrite=False) as tmp:
            tmp.write_text("new")
    assert out.read_text() == "keep"


# 11. the install leaves room for the tools users run beside it ------------------------------------

def _closure(name: str) -> dict:
    """speakerid's installed dependency closure: distribution name → its requirements."""
    from importlib import metadata

    from packaging.requirements import Requirement

    seen: dict = {}
    todo = [name]
    while todo:
        n = todo.pop()
        key = n.lower().replace("_", "-")
        if key in seen:
            continue
        try:
            reqs = [Requirement(r) for r in (metadata.requires(n) or [])]
        except metadata.PackageNotFoundError:
            continue
        reqs = [r for r in reqs if r.marker is None or r.marker.evaluate({"extra": ""})]
        seen[key] = reqs
        todo += [r.name for r in reqs]
    return seen


def test_no_installed_dependency_holds_numpy_below_2():
    # pyannote.core, pyannote.database and pandas take numpy 2; a pin below it (norfair 2.3 had
    # one) made pip backtrack through opencv wheels and left `pip check` failing beside them
    closure = _closure("speakerid")
    assert "torch" in closure and "av" in closure
    pinned = [(dist, str(r)) for dist, reqs in closure.items() for r in reqs
              if r.name.lower() == "numpy" and not r.specifier.contains("2.4.0")]
    assert pinned == []


# stereo whose channels cancel in a mono mix (a phase-inverted channel) --------------------------

@pytest.fixture(scope="module")
def phase_inverted(rw_dir) -> Path:
    return mediagen.with_stereo(GRID_CLIP, rw_dir / "phase_inverted.mov", right_gain=-1.0)


def _ffmpeg_mono(path: Path) -> np.ndarray:
    """FFmpeg's own mono mix at 16 kHz (what the library gave before it guarded the mix)."""
    import av

    out = []
    with av.open(str(path)) as c:
        r = av.AudioResampler(format="fltp", layout="mono", rate=16000)
        for f in c.decode(c.streams.audio[0]):
            out += [g.to_ndarray()[0] for g in r.resample(f)]
        out += [g.to_ndarray()[0] for g in r.resample(None)]
    return np.concatenate(out)


def test_a_phase_inverted_channel_is_not_read_as_silence(phase_inverted, rw_dir):
    """A mono mix of L and −L is silence: the loudest channel is taken where the mix cancels, and
    the report says for how long; ordinary stereo is mixed exactly as FFmpeg mixes it."""
    from speakerid.media import channel_warning, read_audio
    from speakerid.sync.inputs import is_silent

    assert is_silent(_ffmpeg_mono(phase_inverted))
    report: dict = {}
    a = read_audio(phase_inverted, video_start_s=0.0, report=report)
    ref = read_audio(GRID_CLIP, video_start_s=0.0)
    n = min(a.size, ref.size)
    assert not is_silent(a) and np.corrcoef(a[:n], ref[:n])[0, 1] > 0.98
    assert report["cancelled_samples"] / report["rate"] > 0.8 * n / 16000
    assert channel_warning(report) and "phase" in channel_warning(report)[0]
    plain = mediagen.with_stereo(GRID_CLIP, rw_dir / "uneven_stereo.mp4", right_gain=0.5, acodec="aac")
    report = {}
    b = read_audio(plain, video_start_s=0.0, report=report)
    assert np.array_equal(b, _ffmpeg_mono(plain)) and report["cancelled_samples"] == 0
    assert channel_warning(report) == []


def test_sync_and_speakers_measure_a_phase_inverted_file_and_say_so(phase_inverted, model):
    from speakerid.speakers import detect_speakers

    r = measure_sync(phase_inverted, model=model)
    assert r.status == "ok" and abs(r.offset_ms) <= TOL_MS
    assert any("phase-inverted" in w for w in r.warnings) and "phase-inverted" in r.describe()
    assert r.to_dict()["warnings"] == r.warnings
    s = detect_speakers(phase_inverted, model=model)
    assert s.segments and any("phase-inverted" in w for w in s.warnings)


def test_the_cli_says_the_channels_cancel(phase_inverted, tmp_path):
    p = _cli("sync", phase_inverted, "-q")
    assert p.returncode == 0 and "phase-inverted" in p.stdout
    before = sha256(phase_inverted)
    p = _cli("fix", phase_inverted, "-o", tmp_path / "fixed.mov", "--offset-ms", "80", "-q")
    assert p.returncode == 0 and "speakerid: warning:" in p.stderr and "phase-inverted" in p.stderr
    assert sha256(phase_inverted) == before



def test_a_silent_first_audio_stream_is_named_as_such(rw_dir, model):
    """Only the first audio stream is read: when it is silent and the file has others, the
    finding says so and how to take another out, instead of calling the file's audio silent."""
    from speakerid.speakers import detect_speakers

    f = mediagen.with_silent_first_audio_stream(GRID_CLIP, rw_dir / "two_audio_streams.mp4")
    assert probe(f).audio_streams == 2 and probe(GRID_CLIP).audio_streams == 1
    r = measure_sync(f, model=model)
    assert r.status == "no_speech" and "2 audio streams" in r.message and "-map 0:a:K" in r.message
    s = detect_speakers(f, model=model)
    assert not s.segments and [w for w in s.warnings if "silent" in w and "2 audio streams" in w]
