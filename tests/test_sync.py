"""Lip-sync offset measurement and repair, on a real GRID clip with real decoding and the real model.

The clip's audio is displaced by known amounts (copies written with PyAV in a temp dir) and the
measured offsets must come back within ±40 ms with the right sign
(``offset_ms = t_audio − t_video``; negative = audio leads).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from speakerid.errors import NoAudioStreamError, OutputExistsError, TooShortError
from speakerid.media import iter_frames, probe, read_audio, write_video
from speakerid.sync import (
    SyncResult,
    measure_sync,
    min_duration_s,
    repair_sync,
    shift_sync,
)

CLIP = Path(__file__).parent / "data" / "grid_s1_lgwg2n.mp4"
TOL_MS = 40


@pytest.fixture(scope="module")
def model():
    from speakerid.model import load_model

    # the packaged weights; SPEAKERID_WEIGHTS lets a developer try another checkpoint
    return load_model(os.environ.get("SPEAKERID_WEIGHTS") or None, device="cpu")


@pytest.fixture(scope="module")
def analysis():
    """Faces of the clip, shared by the shifted copies (their video stream is copied bit for bit)."""
    from speakerid.faces import analyze_faces

    return analyze_faces(CLIP)


@pytest.fixture(scope="module")
def shifted(tmp_path_factory):
    d = tmp_path_factory.mktemp("shifted")
    out = {}
    for off in (-200, 0, 120):
        p = d / f"grid_{off:+d}.mp4"
        assert shift_sync(CLIP, p, off) is True  # video stream copied
        out[off] = p
    return out


def _sha(p: Path) -> str:
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


def _lag_ms(ref: np.ndarray, x: np.ndarray, max_ms: int = 400) -> float:
    """Delay of ``x`` relative to ``ref`` (ms, positive = x later), by cross-correlation."""
    n = min(ref.size, x.size)
    best, arg = -np.inf, 0
    for lag in range(-max_ms * 16, max_ms * 16 + 1, 16):
        a = ref[max(0, -lag): n - max(0, lag)]
        b = x[max(0, lag): n - max(0, -lag)]
        m = min(a.size, b.size)
        v = float(np.dot(a[:m], b[:m]))
        if v > best:
            best, arg = v, lag
    return arg / 16.0


def test_shift_sync_sign_is_t_audio_minus_t_video(shifted):
    # independent of the model: +120 must delay the audio (it lags the video), −200 advance it
    ref = read_audio(CLIP)
    assert abs(_lag_ms(ref, read_audio(shifted[120])) - 120) <= 2
    assert abs(_lag_ms(ref, read_audio(shifted[-200])) + 200) <= 2
    assert abs(_lag_ms(ref, read_audio(shifted[0]))) <= 1
    info = probe(shifted[120])
    assert info.has_video and info.has_audio and info.num_frames == probe(CLIP).num_frames


@pytest.mark.parametrize("truth", [-200, 120, 0])
def test_measured_offset_matches_known_shift(truth, shifted, analysis, model):
    r = measure_sync(shifted[truth], model=model, analysis=analysis)
    assert r.status == "ok", r.message
    assert r.offset_ms is not None
    assert abs(r.offset_ms - truth) <= TOL_MS, (truth, r.offset_ms, r.confidence)
    if truth:
        assert np.sign(r.offset_ms) == np.sign(truth)
    assert r.confidence > 0
    assert r.track_id == analysis.tracks[0].id


def test_result_table_times_and_json(shifted, analysis, model):
    r = measure_sync(shifted[-200], model=model, analysis=analysis)
    assert isinstance(r, SyncResult)
    assert r.shifts_ms.size == 201 and r.shifts_ms[0] == -1000 and r.shifts_ms[-1] == 1000
    assert r.curve.shape == r.shifts_ms.shape
    w = r.windows
    assert len(w) >= 50 and r.window_curves.shape == (len(w), 201)
    # times in the source's seconds: 0.2 s windows inside the clip, frames inside the source
    assert np.all(np.isclose(w.end_s - w.start_s, 0.2))
    assert w.start_s.min() >= 0 and w.end_s.max() <= probe(CLIP).duration_s + 1e-6
    assert w.source_frame.max() < probe(CLIP).num_frames
    # per-window offset is the arg-min of its curve; confidence = median − min
    i = int(np.argmax(w.confidence))
    c = r.window_curves[i]
    assert w.offset_ms[i] == r.shifts_ms[np.nanargmin(c)]
    assert np.isclose(w.confidence[i], np.nanmedian(c) - np.nanmin(c), atol=1e-5)
    # most of the confident windows agree with the clip offset
    top = w.weight > 0
    assert np.mean(np.abs(w.offset_ms[top] - r.offset_ms) <= 80) > 0.5
    d = json.loads(r.to_json())
    assert d["offset_ms"] == pytest.approx(r.offset_ms, abs=0.1)
    assert d["convention"].startswith("offset_ms = t_audio - t_video")
    assert len(d["windows"]) == len(w) and "window_curves" not in d
    assert len(r.segments) == 1 and r.drift is False
    assert d["at_search_edge"] is False and "edge" not in r.describe()


def test_offset_at_the_end_of_the_search_is_flagged(shifted, analysis, model):
    # the true −200 ms at the end of a ±200 ms search: reported, but flagged as possibly larger
    r = measure_sync(shifted[-200], model=model, analysis=analysis, search_ms=200)
    assert r.offset_ms is not None and r.offset_ms <= -160
    assert r.at_search_edge and "larger search" in r.describe()


def test_whole_frame_steps(shifted, analysis, model):
    r = measure_sync(shifted[120], model=model, analysis=analysis, step_ms=40, refine=False)
    assert r.shifts_ms.size == 51 and r.step_ms == 40
    assert r.offset_ms is not None and r.offset_ms % 40 == 0
    assert abs(r.offset_ms - 120) <= TOL_MS


def test_drift_between_segments_is_flagged(tmp_path, model):
    # 6 s: the clip twice; the first pass in sync, the second with the audio 280 ms late
    frames = [f.image for f in iter_frames(CLIP)]
    a = read_audio(CLIP)[: len(frames) * 640]
    delayed = np.concatenate([np.zeros(int(0.28 * 16000), np.float32), a])[: a.size]
    p = tmp_path / "drift.mp4"
    write_video(p, frames + frames, 25, audio=np.concatenate([a, delayed]))
    r = measure_sync(p, model=model, segment_s=3.0)
    segs = [s for s in r.segments if s.offset_ms is not None]
    assert len(segs) == 2, [s.to_dict() for s in r.segments]
    assert abs(segs[0].offset_ms - 0) <= TOL_MS and abs(segs[1].offset_ms - 280) <= TOL_MS
    assert r.drift and r.drift_range_ms > 200


def test_repair_round_trip(shifted, tmp_path, model):
    src = shifted[120]
    before = _sha(src)
    out = tmp_path / "fixed.mp4"
    rr = repair_sync(src, out, model=model)
    assert _sha(src) == before                       # input untouched
    assert rr.measured is not None and abs(rr.applied_offset_ms - 120) <= TOL_MS
    assert rr.video_copied
    info = probe(out)
    assert info.has_video and info.has_audio         # output plays: both streams
    assert info.num_frames == probe(src).num_frames
    assert rr.residual is not None and rr.residual_ms is not None
    assert abs(rr.residual_ms) <= TOL_MS, rr.residual_ms
    # the audio really moved back: compare with the original clip
    assert abs(_lag_ms(read_audio(CLIP), read_audio(out)) - (120 - rr.applied_offset_ms)) <= 2
    # never the input, never an existing output unless asked
    with pytest.raises(OutputExistsError):
        repair_sync(src, src, offset_ms=10, remeasure=False)
    with pytest.raises(OutputExistsError):
        repair_sync(src, out, offset_ms=10, remeasure=False)
    repair_sync(src, out, offset_ms=-50, remeasure=False, overwrite=True)
    assert abs(_lag_ms(read_audio(src), read_audio(out)) - 50) <= 2
    assert not list(tmp_path.glob(".*partial*"))     # nothing half-written left behind


def test_no_audio_stream(tmp_path):
    import av

    p = tmp_path / "video_only.mp4"
    with av.open(str(CLIP)) as inp, av.open(str(p), "w") as out:
        vs = out.add_stream_from_template(inp.streams.video[0])
        for pkt in inp.demux(inp.streams.video[0]):
            if pkt.dts is not None:
                pkt.stream = vs
                out.mux(pkt)
    with pytest.raises(NoAudioStreamError):
        measure_sync(p)
    with pytest.raises(NoAudioStreamError):
        repair_sync(p, tmp_path / "o.mp4", offset_ms=100)


def test_too_short_names_the_minimum(tmp_path):
    frames = [f.image for f in iter_frames(CLIP)][:25]
    p = tmp_path / "short.mp4"
    write_video(p, frames, 25, audio=read_audio(CLIP)[:16000])
    with pytest.raises(TooShortError, match=f"{min_duration_s(1000):.2f} s"):
        measure_sync(p)
    with pytest.raises(TooShortError):
        repair_sync(p, tmp_path / "o.mp4")


def test_no_face_gives_no_offset(tmp_path, model):
    rng = np.random.default_rng(0)
    frames = [np.full((288, 360, 3), 90, np.uint8) + rng.integers(0, 20, (288, 360, 3), dtype=np.uint8)
              for _ in range(75)]
    p = tmp_path / "noface.mp4"
    write_video(p, frames, 25, audio=read_audio(CLIP))
    r = measure_sync(p, model=model)
    assert r.offset_ms is None and r.status == "no_face" and r.track_id is None
    assert json.loads(r.to_json())["offset_ms"] is None


def test_silent_audio_gives_no_offset(tmp_path, analysis, model):
    p = tmp_path / "silent.mp4"
    frames = [f.image for f in iter_frames(CLIP)]
    write_video(p, frames, 25, audio=np.zeros(len(frames) * 640, np.float32))
    r = measure_sync(p, model=model, analysis=analysis)
    assert r.offset_ms is None and r.status == "no_speech"


def test_cli_sync_and_fix(shifted, tmp_path, capsys):
    # end to end from the command line: decoding, faces, model, plot
    from speakerid.cli import main

    png = tmp_path / "plot.png"
    w = ["--weights", os.environ["SPEAKERID_WEIGHTS"]] if os.environ.get("SPEAKERID_WEIGHTS") else []
    assert main(["-q", "sync", str(shifted[-200]), "--json", "--plot", str(png), *w]) == 0
    d = json.loads(capsys.readouterr().out)
    assert abs(d["offset_ms"] + 200) <= TOL_MS
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    out = tmp_path / "fixed.mp4"
    assert main(["-q", "fix", str(shifted[-200]), "-o", str(out), "--offset-ms", "-200", "--no-remeasure"]) == 0
    assert abs(_lag_ms(read_audio(CLIP), read_audio(out))) <= 2
    assert main(["-q", "fix", str(shifted[-200]), "-o", str(shifted[-200]), "--offset-ms", "5", *w]) == 2


def test_notebook_runs_headless(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    nb_path = Path(__file__).parent.parent / "notebooks" / "sync_explore.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(nb_path.parent)}}).execute()
    out = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "ok" in out.splitlines()[-1]


def test_streamed_audio_matches_the_whole_signal(shifted, analysis, model):
    """measure_sync streams the audio (decoded, turned into MFCC and embedded a piece at a time,
    the embeddings on disk, so a long file's audio is never held): the same distance curves,
    offset and confidence as the whole signal in memory."""
    from speakerid.sync import SyncInputs, embed_audio, embed_video, measure_prepared

    video = embed_video(shifted[120], model, analysis=analysis)
    in_memory = SyncInputs(video=video, audio=embed_audio(model, read_audio(shifted[120])))
    for step_ms in (10, 40):
        r = measure_sync(shifted[120], model=model, analysis=analysis, step_ms=step_ms)
        ref = measure_prepared(in_memory, step_ms=step_ms)
        assert r.window_curves.shape == ref.window_curves.shape
        assert np.array_equal(np.isnan(r.window_curves), np.isnan(ref.window_curves))
        np.testing.assert_allclose(r.window_curves, ref.window_curves, atol=1e-5, equal_nan=True)
        assert r.offset_ms == pytest.approx(ref.offset_ms, abs=1e-3)
        assert r.confidence == pytest.approx(ref.confidence, abs=1e-5)


@pytest.mark.parametrize("level", [0.0, 10 ** (-56 / 20), 10 ** (-54 / 20)])
def test_streamed_silence_check_matches_the_whole_signal(level):
    from speakerid.sync.inputs import LoudnessTap, is_silent

    rng = np.random.default_rng(0)
    x = (rng.normal(0, 1e-5, 50_000)).astype(np.float32)
    x[32_000:35_200] += level * np.sqrt(2) * np.sin(np.arange(3200) / 5).astype(np.float32)  # one loud 0.2 s
    cuts = np.sort(rng.choice(x.size, 40, replace=False))
    tap = LoudnessTap(np.split(x, cuts))
    assert np.array_equal(np.concatenate(list(tap)), x)
    assert tap.num_samples == x.size and tap.silent == is_silent(x)
    assert tap.silent == (level < 10 ** (-55 / 20))


def test_streamed_audio_reports_progress_every_ten_seconds():
    from speakerid.sync.inputs import LoudnessTap

    seen = []
    tap = LoudnessTap((np.zeros(7000, np.float32) for _ in range(60)), on_seconds=seen.append)  # 26.25 s
    assert sum(x.size for x in tap) == 420_000 and tap.silent
    assert [int(s) for s in seen] == [10, 20]


# --- how far to trust an offset -----------------------------------------------------------------

@pytest.fixture(scope="module")
def other_voice(tmp_path_factory):
    """The GRID clip's video (copied bit for bit) with another person's speech from the bundled
    example: a face and speech, but no offset is right."""
    import speakerid.examples as examples
    from speakerid.media import NativeAudio, remux_with_audio

    a = read_audio(examples.path("interview_grid"))[: 3 * 16000].astype(np.float32)
    p = tmp_path_factory.mktemp("other_voice") / "grid_other_voice.mp4"
    remux_with_audio(CLIP, p, NativeAudio(samples=a[None], sample_rate=16000, layout="mono", video_start_s=0.0))
    return p


def test_a_clear_offset_is_marked_reliable(shifted, analysis, model):
    from speakerid.reliability import RELIABLE_P

    r = measure_sync(shifted[120], model=model, analysis=analysis)
    assert r.reliable and r.p_correct >= RELIABLE_P and r.unreliable_because == []
    d = r.to_dict()
    assert d["reliable"] is True and d["p_correct"] == pytest.approx(r.p_correct, abs=1e-4)
    assert set(d["evidence"]) == {"confidence", "second_peak", "windows", "span"}
    assert "reliable (p_correct" in r.describe()


def test_another_persons_voice_is_not_marked_reliable(other_voice, analysis, model, tmp_path):
    r = measure_sync(other_voice, model=model, analysis=analysis)
    assert r.offset_ms is not None  # an arg-min exists, as it does for any audio
    assert not r.reliable and r.p_correct < 0.5 and r.unreliable_because
    assert "NOT RELIABLE" in r.describe()
    # fix will not apply a guess unless told to
    from speakerid.errors import NoSyncEvidenceError

    with pytest.raises(NoSyncEvidenceError, match="not reliable"):
        repair_sync(other_voice, tmp_path / "fixed.mp4", model=model)
    assert not (tmp_path / "fixed.mp4").exists()
    rr = repair_sync(other_voice, tmp_path / "fixed.mp4", model=model, accept_unreliable=True, remeasure=False)
    assert rr.applied_offset_ms == pytest.approx(r.offset_ms)


def test_p_correct_grows_with_evidence():
    from speakerid.reliability import SyncEvidence, p_correct

    weak = SyncEvidence(confidence=0.15, second_peak=0.9, windows=20, span=1.9)
    strong = SyncEvidence(confidence=0.6, second_peak=0.3, windows=200, span=5.0)
    assert 0 <= p_correct(weak) < 0.5 < p_correct(strong) <= 1
    assert p_correct(SyncEvidence(0.3, 0.5, 200, 5.0)) > p_correct(SyncEvidence(0.3, 0.5, 30, 5.0))
    assert p_correct(SyncEvidence(0.3, 0.2, 80, 5.0)) > p_correct(SyncEvidence(0.3, 0.9, 80, 5.0))
