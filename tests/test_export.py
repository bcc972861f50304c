"""Active-speaker exports: JSON, CSV and RTTM writers (atomic, round-trip, standard fields)."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from speakerid.errors import OutputExistsError
from speakerid.export import CSV_FIELDS, read_csv, read_json, read_rttm, rttm_lines, write_rttm
from speakerid.speakers import Segment, SpeakerResult, SpeakerTrack
from speakerid.speakers.labels import speaking_segments


def _result(video: str = "/data/my clip.mp4") -> SpeakerResult:
    fps = 30.0
    times = np.arange(90) / fps
    t0 = SpeakerTrack(id=0, frames=np.arange(0, 60), boxes=np.tile([10.0, 20.0, 64.0, 64.0], (60, 1)),
                      scores=np.linspace(-1, 5, 60).astype(np.float32), speaking=np.zeros(60, bool), offset_ms=-40.0)
    t0.speaking[:] = t0.scores >= 2.0
    sc = np.full(50, 0.5, np.float32)
    sc[:5] = np.nan  # too small to score at first
    t1 = SpeakerTrack(id=3, frames=np.arange(40, 90), boxes=np.tile([300.0, 20.0, 80.5, 80.5], (50, 1)),
                      scores=sc, speaking=np.zeros(50, bool), offset_ms=None)
    t1.speaking[20:35] = True
    tracks = [t0, t1]
    return SpeakerResult(fps=fps, num_frames=90, tracks=tracks, segments=[Segment(*s[:3]) for s in speaking_segments(tracks, times, fps)], video=video,
                         threshold=2.0, smooth_frames=25, offset_ms=-40.0, model="abc", frame_times=times)


def test_segments_from_labels_use_source_frames_and_seconds():
    r = _result()
    segs = [(s.track, round(s.start, 4), round(s.end, 4)) for s in r.segments]
    first = int(np.argmax(r.tracks[0].speaking))
    # track 0 speaks from its first frame scoring >= 2 to its end (frame 59, which ends at 60/30 s)
    assert segs[0] == (0, round(first / 30, 4), 2.0)
    # track 3: frames 60..74 → [2.0, 2.5) s
    assert segs[1] == (3, 2.0, 2.5)


def test_json_round_trip(tmp_path):
    r = _result()
    p = r.to_json(tmp_path / "out.json")
    d = json.loads(p.read_text())
    assert set(d) >= {"fps", "num_frames", "tracks", "segments"}
    assert set(d["tracks"][0]) >= {"id", "frames", "boxes", "scores", "speaking"}
    assert d["tracks"][1]["scores"][0] is None  # NaN → null, valid JSON
    back = read_json(p)
    assert back.fps == r.fps and back.num_frames == r.num_frames
    for a, b in zip(r.tracks, back.tracks, strict=True):
        assert a.id == b.id
        np.testing.assert_array_equal(a.frames, b.frames)
        np.testing.assert_allclose(a.boxes, b.boxes, atol=0.05)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-3, equal_nan=True)
        np.testing.assert_array_equal(a.speaking, b.speaking)
    assert [s.to_dict() for s in back.segments] == [s.to_dict() for s in r.segments]
    assert back.to_dict() == r.to_dict()


def test_csv_round_trip(tmp_path):
    r = _result()
    p = r.to_csv(tmp_path / "out.csv")
    with open(p, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == CSV_FIELDS
    assert len(rows) == sum(len(t.frames) for t in r.tracks)
    row = next(x for x in rows if x["track"] == "3" and x["frame"] == "60")
    assert float(row["time_s"]) == pytest.approx(2.0) and row["speaking"] == "1"
    assert next(x for x in rows if x["track"] == "3")["score"] == ""  # unscored frame
    back = {t.id: t for t in read_csv(p)}
    for t in r.tracks:
        b = back[t.id]
        np.testing.assert_array_equal(b.frames, t.frames)
        np.testing.assert_allclose(b.boxes, t.boxes, atol=0.05)
        np.testing.assert_allclose(b.scores, t.scores, atol=1e-3, equal_nan=True)
        np.testing.assert_array_equal(b.speaking, t.speaking)


def test_rttm_has_ten_standard_fields(tmp_path):
    r = _result()
    p = r.to_rttm(tmp_path / "out.rttm")
    lines = p.read_text().splitlines()
    assert len(lines) == len(r.segments) == 2
    for line, seg in zip(lines, sorted(r.segments, key=lambda s: s.start), strict=True):
        f = line.split()
        assert len(f) == 10
        assert f[0] == "SPEAKER" and f[2] == "1" and f[5] == f[6] == f[8] == f[9] == "<NA>"
        assert f[1] == "my_clip"  # the video's stem, whitespace made safe
        assert f[7] == f"face{seg.track}"
        assert float(f[3]) == pytest.approx(seg.start, abs=1e-3)
        assert float(f[4]) == pytest.approx(seg.end - seg.start, abs=1e-3)
        assert float(f[4]) > 0
    back = read_rttm(p)
    assert [(u, s.track) for u, s in back] == [("my_clip", s.track) for s in sorted(r.segments, key=lambda s: s.start)]


def test_rttm_empty_when_nobody_speaks(tmp_path):
    r = _result()
    for t in r.tracks:
        t.speaking[:] = False
    r.segments = []
    assert rttm_lines(r) == []
    assert write_rttm(r, tmp_path / "e.rttm").read_text() == ""


def test_writers_refuse_to_overwrite_the_video(tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"not really a video, but it must survive")
    r = _result(str(video))
    for write in (r.to_json, r.to_csv, r.to_rttm):
        with pytest.raises(OutputExistsError):
            write(video)
    assert video.read_bytes() == b"not really a video, but it must survive"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["v.mp4"]  # no partial files left


def test_segment_duration_and_json_types():
    s = Segment(track=2, start=1.0, end=1.75)
    assert math.isclose(s.duration, 0.75)
    assert json.dumps(_result().to_dict())  # everything JSON-serialisable


def test_offscreen_voice_and_segment_probabilities_in_json_and_rttm(tmp_path):
    """Speech that no face is labelled for, 0.5 s or longer, is an off-screen voice: its own
    segments (track OFFSCREEN, RTTM speaker ``offscreen``), each with the turn model's probability
    that nobody visible speaks; every face segment carries its mean speaking posterior and the
    calibrated probability made from it and the segment's length."""
    from speakerid.reliability import segment_probability
    from speakerid.speakers import OFFSCREEN

    fps, n = 25.0, 100
    times = np.arange(n) / fps
    sc = np.zeros(n, np.float32)
    sc[10:40] = 0.9  # a face speaks for 1.2 s
    t = SpeakerTrack(id=2, frames=np.arange(n), boxes=np.tile([10.0, 10.0, 50.0, 50.0], (n, 1)), scores=sc,
                     speaking=np.zeros(n, bool))
    speech = np.zeros(n, bool)
    speech[10:40] = True   # the face's own speech
    speech[50:80] = True   # 1.2 s of a voice nobody on screen makes
    speech[90:95] = True   # 0.2 s: too short to report
    r = SpeakerResult(fps=fps, num_frames=n, tracks=[t], video="v.mp4", frame_times=times, speech=speech,
                      decoder="hmm", threshold=0.5)
    r.relabel()
    assert [(s.track, s.start, s.end) for s in r.segments] == [(2, 0.4, 1.6)]
    assert r.segments[0].mean_posterior == pytest.approx(0.9, abs=1e-6)
    assert r.segments[0].probability == pytest.approx(segment_probability(0.9, 1.2))
    assert 0.5 < r.segments[0].probability < 0.9  # a 1.2 s segment at 0.9 is worth less than 0.9
    assert [(s.track, s.start, s.end) for s in r.offscreen] == [(OFFSCREEN, 2.0, 3.2)]
    assert r.offscreen[0].probability == pytest.approx(1.0)
    lines = r.rttm_lines()
    assert [ln.split()[7] for ln in lines] == ["face2", "offscreen"]
    back = SpeakerResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert [s.to_dict() for s in back.offscreen] == [s.to_dict() for s in r.offscreen]
    assert back.segments[0].probability == pytest.approx(r.segments[0].probability, abs=1e-3)
    assert back.segments[0].mean_posterior == pytest.approx(0.9, abs=1e-3)
    p = r.to_rttm(tmp_path / "v.rttm")
    assert [(u, s.track) for u, s in read_rttm(p)] == [("v", 2), ("v", OFFSCREEN)]
    # the threshold rule's scores are not probabilities: no probability, no off-screen one either
    r.decoder = "threshold"
    r.relabel(0.5)
    assert r.segments[0].probability is None and r.offscreen[0].probability is None
    assert r.segments[0].mean_posterior is None


def test_segment_probability_rises_with_the_posterior_and_the_length():
    """The calibrated segment probability: in (0, 1), higher for a higher mean posterior and for
    a longer segment, below the posterior for short segments; NaN in, NaN out."""
    from speakerid.reliability import segment_probability

    ps = [segment_probability(m, 1.0) for m in (0.5, 0.7, 0.9, 0.99)]
    assert all(0.0 < p < 1.0 for p in ps) and ps == sorted(ps)
    ls = [segment_probability(0.95, s) for s in (0.2, 0.5, 1.0, 3.0, 10.0)]
    assert ls == sorted(ls) and ls[0] < 0.5 < ls[-1]
    assert segment_probability(0.95, 0.4) < 0.95
    assert math.isnan(segment_probability(float("nan"), 1.0))
    assert 0.0 < segment_probability(1.0, 0.0) < 1.0  # clipped, no infinities


def test_speech_is_what_stands_above_the_files_quiet_level():
    from speakerid.speakers.labels import speech_columns

    quiet = np.full(300, -6.7)       # −55 dBFS noise, in c0 units
    loud = np.full(100, -2.0)        # ~20 dB above it
    e = np.concatenate([quiet, loud, quiet])
    on = speech_columns(e)
    assert not on[:270].any() and on[300:400].all() and not on[430:].any()
    assert on[285] and on[415]       # held 0.2 s either side
    assert not speech_columns(np.full(500, -12.0)).any()  # digital silence has no quiet level to rise above
