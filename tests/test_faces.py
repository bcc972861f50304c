"""speakerid.faces: detection, tracking, shot cuts and mouth crops on real video."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import sha256

import mediagen
import speakerid.examples as examples
from speakerid import errors
from speakerid.faces import CROP_SIZE, CenterFaceDetector, ShotDetector, analyze_faces, crop_mouth
from speakerid.faces.detector import Detection
from speakerid.faces.mouth import DEFAULT_CROP_GEOMETRY, MOUTH_SCALE, crop_at, STABLE_S, mouth_geometry, track_geometry
from speakerid.faces.tracking import RawTrack, ShotTracker, _Box, densify, greedy_match, iou_distance
from speakerid.media import iter_frames, write_video
from speakerid.model import load_model


# ---------------------------------------------------------------- detector

def test_detector_finds_the_grid_face(grid_clip):
    frame = next(iter_frames(grid_clip))
    dets = CenterFaceDetector(input_width=512).detect(frame.image)
    assert len(dets) == 1
    d = dets[0]
    x1, y1, x2, y2 = d.box
    assert d.score > 0.8
    # GRID: one speaker, head and shoulders, face in the upper middle of the 360×288 frame
    assert 120 < (x1 + x2) / 2 < 240 and 60 < (y1 + y2) / 2 < 200
    assert 70 < d.height < 200 and 0.5 < d.width / d.height < 1.0
    le, re, nose, ml, mr = d.landmarks
    assert le[0] < re[0] and ml[0] < mr[0]  # image left before image right
    assert le[1] < nose[1] < ml[1] and re[1] < nose[1] < mr[1]  # eyes, nose, mouth top to bottom
    assert x1 < ml[0] < mr[0] < x2 and (y1 + y2) / 2 < ml[1] < y2


def test_detector_scales_boxes_back_to_input_pixels(grid_clip):
    frame = next(iter_frames(grid_clip)).image
    big = np.ascontiguousarray(np.repeat(np.repeat(frame, 2, 0), 2, 1))  # 720×576
    a = CenterFaceDetector(input_width=512).detect(frame)[0]
    b = CenterFaceDetector(input_width=512).detect(big)[0]
    np.testing.assert_allclose(b.box / 2, a.box, atol=6)


def test_no_face_in_a_pattern(cfr30):
    frame = next(iter_frames(cfr30)).image
    assert CenterFaceDetector().detect(frame) == []


# ---------------------------------------------------------------- the whole stage on the real clip

def test_grid_clip_one_track_covering_every_frame(grid_analysis):
    a = grid_analysis
    assert a.shot_starts.tolist() == [0]
    assert a.timeline.num_source_frames == 75 and a.timeline.num_model_frames == 75
    assert len(a.tracks) == 1
    t = a.tracks[0]
    assert t.frames.tolist() == list(range(75))
    assert t.model_frames.tolist() == list(range(75))
    assert t.boxes.shape == (75, 4) and t.landmarks.shape == (75, 5, 2)
    assert t.detected[::3].all() and t.detected.sum() == 25  # detect_every=3, tracked between
    x, y, w, h = t.boxes.T
    assert np.all(x > 0) and np.all(x + w < 360) and np.all(y >= 0) and np.all(y + h <= 288)
    assert 70 < np.median(h) < 200
    # the speaker sits still: the smoothed box hardly moves
    assert np.ptp(x + w / 2) < 15 and np.ptp(y + h / 2) < 15
    # mouth corners in the lower half of the box, inside it
    ml, mr = t.landmarks[:, 3], t.landmarks[:, 4]
    mouth = (ml + mr) / 2
    assert np.all(mouth[:, 1] > y + 0.55 * h) and np.all(mouth[:, 1] < y + h)
    assert np.all(np.abs(mouth[:, 0] - (x + w / 2)) < 0.2 * w)


def test_grid_clip_mouth_crops(grid_clip, grid_analysis):
    t = grid_analysis.tracks[0]
    assert t.crops.shape == (75, CROP_SIZE, CROP_SIZE) and t.crops.dtype == np.uint8
    assert t.scorable.all()
    assert float(t.crops.std()) > 15  # real image content, not a flat fill
    assert len({c.tobytes() for c in t.crops}) > 60  # the mouth moves: crops differ over time
    # crop i is cut from the source frame that model frame t.model_frames[i] shows, framed by the
    # track's geometry at that frame (the second decode pass lines up with the first)
    tl = grid_analysis.timeline
    xyxy = t.boxes.astype(np.float64)
    xyxy[:, 2:] += xyxy[:, :2]
    centres, sides, angles = track_geometry(xyxy, t.landmarks, 25.0, grid_analysis.crop_geometry)
    want = {int(tl.model_to_source[t.model_frames[i]]): i for i in (0, 31, 74)}
    for fr in iter_frames(grid_clip, gray=True, indices=want.keys()):
        i, r = want[fr.index], fr.index - t.start_frame
        np.testing.assert_array_equal(t.crops[i], crop_at(fr.image, centres[r], float(sides[r]), float(angles[r])))
        if grid_analysis.crop_geometry == "mouth":  # per frame: that frame's own box and landmarks
            np.testing.assert_array_equal(t.crops[i], crop_mouth(fr.image, xyxy[r], t.landmarks[r].astype(np.float64)))


def test_to_dict(grid_analysis):
    d = grid_analysis.to_dict()
    assert d["fps"] == 25.0 and d["num_frames"] == 75 and (d["width"], d["height"]) == (360, 288)
    (tr,) = d["tracks"]
    assert (tr["start_frame"], tr["end_frame"], tr["num_model_frames"]) == (0, 74, 75)
    assert tr["start_s"] == 0.0 and tr["end_s"] == pytest.approx(74 / 25)
    assert len(tr["boxes"]) == 75 and len(tr["landmarks"][0]) == 5


def test_bundled_example_tracks_every_labelled_face():
    video = examples.path("interview_grid")
    before = sha256(video)
    lab = examples.labels("interview_grid")
    a = analyze_faces(video, crops=False)
    assert sha256(video) == before
    assert len(a.tracks) == lab["faces"] == 3
    assert a.shot_starts.tolist() == [0]
    n = len(lab["frames"])
    hit = total = 0
    for i in range(n):
        centres = [(t.box_at(i)[0] + t.box_at(i)[2] / 2, t.box_at(i)[1] + t.box_at(i)[3] / 2)
                   for t in a.tracks if t.box_at(i) is not None]
        for face in lab["frames"][i]:
            x, y, w, h = face["box"]
            total += 1
            hit += any(x <= cx < x + w and y <= cy < y + h for cx, cy in centres)
    assert hit / total >= 0.99


# ---------------------------------------------------------------- shot cuts

@pytest.fixture(scope="module")
def two_shots(tmp_path_factory, grid_clip):
    """40 frames of the GRID clip, then 40 frames of the bundled example cropped around one of
    its faces to the same 360×288: a hard cut at frame 40 between two different clips."""
    first = [f.image for f in iter_frames(grid_clip, indices=range(40))]
    tile = examples.labels("interview_grid")["frames"][0][0]["box"]  # [x, y, w, h] of face 0
    cx, cy = tile[0] + tile[2] // 2, tile[1] + tile[3] // 2
    x0 = int(np.clip(cx - 180, 0, 960 - 360))
    y0 = int(np.clip(cy - 144, 0, 540 - 288))
    second = [f.image[y0:y0 + 288, x0:x0 + 360] for f in iter_frames(examples.path("interview_grid"),
                                                                       indices=range(100, 140))]
    return write_video(tmp_path_factory.mktemp("shots") / "two_shots.mp4", first + second, 25, crf=18)


def test_shot_cut_found_and_tracks_cut_there(two_shots):
    a = analyze_faces(two_shots, crops=True)
    assert a.shot_starts.tolist() == [0, 40]
    assert a.shot_of_source(np.array([0, 39, 40, 79])).tolist() == [0, 0, 1, 1]
    assert len(a.tracks) >= 2
    for t in a.tracks:
        assert t.end_frame < 40 or t.start_frame >= 40  # no track spans the cut
        assert t.shot == (0 if t.start_frame < 40 else 1)
        assert t.crops.shape[0] == t.model_frames.size
    before = [t for t in a.tracks if t.shot == 0]
    after = [t for t in a.tracks if t.shot == 1]
    assert len(before) == 1 and before[0].frames.tolist() == list(range(40))
    assert any(t.start_frame == 40 and t.end_frame == 79 for t in after)


def test_shot_detector_ignores_motion_and_finds_cuts():
    sd = ShotDetector()
    rng = np.random.default_rng(0)
    base = mediagen.coded_image(0, 320, 180)
    other = np.ascontiguousarray(255 - base[:, ::-1])
    for i in range(60):
        if i < 30:  # a slow pan with noise: no cut
            img = np.roll(base, 3 * i, axis=1)
        else:
            img = np.roll(other, 3 * i, axis=1)
        img = np.clip(img.astype(np.int16) + rng.integers(-6, 7, img.shape), 0, 255).astype(np.uint8)
        sd.update(i, img)
    assert sd.cuts == [0, 30]


# ---------------------------------------------------------------- tracking pieces

def _raw(frames, box_at):
    r = RawTrack(id=1, shot=0)
    for f in frames:
        b = np.asarray(box_at(f), np.float32)
        lm = np.tile(b[:2], (5, 1)).astype(np.float32)
        r.add(f, Detection(box=b, score=0.9, landmarks=lm))
    return r


def _det(x1, y1, x2, y2):
    return Detection(box=np.array([x1, y1, x2, y2], np.float64), score=0.9)


def test_kalman_box_filter_step_by_hand():
    b = _Box(1, [0.0, 0.0, 10.0, 10.0], hits=3)
    b.predict()
    b.update([2.0, 0.0, 12.0, 10.0])
    # total = 10 + 0 + (0 + 1) + 0.1 + 4 = 15.1: position gain 1 − 4/15.1, velocity gain 1/15.1
    assert b.x[0] == pytest.approx(2.0 * (1 - 4 / 15.1))
    assert b.v[0] == pytest.approx(2.0 / 15.1)
    assert b.pos_var == pytest.approx((1 - 4 / 15.1) * 4) and b.pos_vel_cov == pytest.approx(4 / 15.1)
    assert b.vel_var == pytest.approx(1 + 0.1 - 15.1 / 15.1 ** 2)
    assert b.x[1] == 0.0 and b.v[1] == 0.0  # no error, no change


def test_iou_distance_and_greedy_matching():
    d = iou_distance(np.array([[0, 0, 10, 10], [20, 0, 30, 10]], float),
                     np.array([[0, 0, 10, 10], [5, 0, 15, 10], [100, 100, 110, 110]], float))
    assert d.dtype == np.float32
    assert d[0, 0] == 0 and d[0, 1] == pytest.approx(1 - 50 / 150) and d[0, 2] == 1 and d[1, 1] == 1
    # the closest pair first: detection 0 takes track 0 though track 1 is also near it
    assert greedy_match(d, 0.7) == [(0, 0)]
    assert greedy_match(np.zeros((0, 3), np.float32), 0.7) == []


def test_shot_tracker_keeps_ids_through_motion_and_missed_keyframes():
    tr = ShotTracker(shot=0, period=3, id_offset=100)
    for k in range(6):  # a face moving right 4 px per keyframe; a second face appears at keyframe 2
        dets = [_det(10 + 4 * k, 10, 60 + 4 * k, 60)]
        if k >= 2:
            dets.append(_det(200, 10, 250, 60))
        if k == 3:
            dets = dets[1:]  # the first face is missed once
        tr.update(3 * k, dets)
    assert sorted(tr.tracks) == [101, 102]
    assert list(tr.tracks[101].frames) == [0, 3, 6, 12, 15]
    assert list(tr.tracks[102].frames) == [6, 9, 12, 15]
    # a face gone for more keyframes than its hit counter holds comes back under a new id
    for k in range(6, 12):
        tr.update(3 * k, [_det(200, 10, 250, 60)])
    tr.update(36, [_det(10, 10, 60, 60), _det(200, 10, 250, 60)])
    assert 103 in tr.tracks and list(tr.tracks[102].frames)[-1] == 36


def test_densify_interpolates_splits_and_holds():
    r = _raw([0, 3, 6, 9, 30, 33, 36], lambda f: (10 + f, 20, 50 + f, 80))
    out = densify(r, max_gap=10, smooth_frames=1, min_detections=2, hold_until=38)
    assert [(int(d.frames[0]), int(d.frames[-1])) for d in out] == [(0, 9), (30, 38)]
    d0, d1 = out
    np.testing.assert_allclose(d0.boxes[:, 0], 10 + np.arange(10))  # linear between keyframes
    assert d0.detected.tolist() == [f % 3 == 0 for f in range(10)]
    np.testing.assert_allclose(d1.boxes[-3:, 0], 46)  # held after the last keyframe (36)
    assert d0.landmarks.shape == (10, 5, 2)
    # packed detections come back as they went in; landmarks only if every detection had them
    np.testing.assert_array_equal(r.scores, np.float32(0.9))
    assert r.landmarks.shape == (7, 5, 2) and r.boxes.dtype == np.float32
    r.add(40, Detection(box=np.array([1, 2, 3, 4], np.float32), score=0.5))
    assert r.landmarks is None and r.boxes[-1].tolist() == [1, 2, 3, 4]
    assert densify(r, max_gap=10, smooth_frames=1)[0].landmarks is None
    # a piece with too few detections is dropped
    assert densify(_raw([0, 50], lambda f: (0, 0, 10, 10)), max_gap=10, smooth_frames=1) == []


def test_densify_smooths_jitter():
    rng = np.random.default_rng(0)
    r = _raw(list(range(0, 60, 2)), lambda f: (100 + rng.normal(0, 3), 50, 160, 120))
    raw_x = r.boxes[:, 0]
    (d,) = densify(r, max_gap=5, smooth_frames=9, min_detections=2)
    assert d.boxes[:, 0].std() < 0.6 * raw_x.std()
    assert abs(d.boxes[:, 0].mean() - 100) < 1.5


# ---------------------------------------------------------------- mouth crop geometry

def _face_image(scale: float, angle_deg: float, size=(480, 640)):
    """A gray canvas with dots at the mouth centre and 30·scale px below it (both rotated by
    ``angle_deg`` about the mouth), and the matching box and 5 landmarks."""
    img = np.full(size, 90, np.uint8)
    mouth = np.array([320.0, 260.0])
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])

    def place(v):  # offset from the mouth, rotated, in pixels
        return mouth + rot @ (np.asarray(v, float) * scale)

    for p, r in ((place((0, 0)), 3), (place((0, 30)), 3)):
        yy, xx = np.mgrid[: size[0], : size[1]]
        img[(xx - p[0]) ** 2 + (yy - p[1]) ** 2 <= (r * scale) ** 2] = 250
    lm = np.array([place((-30, -70)), place((30, -70)), place((0, -35)), place((-20, 0)), place((20, 0))])
    h = 160 * scale
    box = np.array([mouth[0] - 60 * scale, mouth[1] - 0.78 * h, mouth[0] + 60 * scale, mouth[1] + 0.22 * h])
    return img, box, lm


def _blob_centre(crop, rows):
    sub = crop[rows].astype(float) - 90
    sub[sub < 80] = 0
    ys, xs = np.nonzero(sub)
    return np.array([xs.mean(), ys.mean() + rows.start])


def test_mouth_crop_is_centred_on_the_mouth_and_scaled_by_face_size():
    c = (CROP_SIZE - 1) / 2
    for scale in (0.5, 1.0, 2.0):
        img, box, lm = _face_image(scale, 0)
        crop = crop_mouth(img, box, lm)
        assert crop.shape == (CROP_SIZE, CROP_SIZE) and crop.dtype == np.uint8
        np.testing.assert_allclose(_blob_centre(crop, slice(0, 70)), (c, c), atol=1.0)
        # 30·scale px below the mouth lands at the same place for every face size
        below = c + 30 * CROP_SIZE / (MOUTH_SCALE * 160)
        np.testing.assert_allclose(_blob_centre(crop, slice(70, CROP_SIZE)), (c, below), atol=1.5)


def test_mouth_crop_levels_a_tilted_head():
    c = (CROP_SIZE - 1) / 2
    img, box, lm = _face_image(1.0, 20)
    crop = crop_mouth(img, box, lm)
    np.testing.assert_allclose(_blob_centre(crop, slice(0, 70)), (c, c), atol=1.0)
    below = c + 30 * CROP_SIZE / (MOUTH_SCALE * 160)
    np.testing.assert_allclose(_blob_centre(crop, slice(70, CROP_SIZE)), (c, below), atol=1.5)


def _talking_track(n: int = 100, fps: float = 25.0, drift_px_per_frame: float = 0.0):
    """Boxes and landmarks of a face that talks (jaw at 4 Hz: the mouth corners drop and the box
    grows) while its head moves sideways at ``drift_px_per_frame``."""
    t = np.arange(n) / fps
    jaw = 6.0 * (0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * t))  # px the jaw drops
    dx = drift_px_per_frame * np.arange(n)
    boxes = np.stack([100 + dx, 50 + 0 * t, 260 + dx, 210 + jaw], 1)
    lm = np.zeros((n, 5, 2))
    lm[:, 0] = np.stack([140 + dx, 110 + 0 * t], 1)  # eyes
    lm[:, 1] = np.stack([220 + dx, 110 + 0 * t], 1)
    lm[:, 2] = np.stack([180 + dx, 145 + 0 * t], 1)  # nose
    lm[:, 3] = np.stack([155 + dx, 175 + jaw / 2], 1)  # mouth corners follow half the jaw
    lm[:, 4] = np.stack([205 + dx, 175 + jaw / 2], 1)
    return boxes, lm


def test_mouth_geometry_of_a_track_is_each_frames_own():
    boxes, lm = _talking_track()
    centres, sides, angles = track_geometry(boxes, lm, 25.0, "mouth")
    for i in (0, 17, 99):
        c, s, a = mouth_geometry(boxes[i], lm[i])
        np.testing.assert_allclose(centres[i], c)
        assert sides[i] == s and angles[i] == a


def test_stable_geometry_ignores_the_jaw_and_follows_the_head():
    # speech moves the per-frame framing: the centre and the side swing with the jaw
    boxes, lm = _talking_track(drift_px_per_frame=0.5)
    m_c, m_s, _ = track_geometry(boxes, lm, 25.0, "mouth")
    s_c, s_s, s_a = track_geometry(boxes, lm, 25.0, "stable")
    assert np.ptp(m_s) > 4 and np.ptp(m_c[:, 1]) > 2.5
    # one second of 4 Hz jaw averages out: away from the track's ends the framing is still
    inner = slice(int(STABLE_S * 25), 100 - int(STABLE_S * 25))
    assert np.ptp(s_s[inner]) < 0.05 and np.ptp(s_c[inner, 1]) < 0.05
    np.testing.assert_allclose(s_a, 0.0, atol=1e-12)
    # the head's sideways motion is followed frame by frame (the nose carries it, no lag)
    np.testing.assert_allclose(s_c[:, 0], (lm[:, 3, 0] + lm[:, 4, 0]) / 2, atol=1e-9)
    # it frames the same place on average: the mean mouth, a mean-sized crop
    assert abs(s_c[inner, 1].mean() - m_c[inner, 1].mean()) < 0.3
    assert abs(s_s[inner].mean() - m_s[inner].mean()) < 0.3
    # without landmarks the box's top edge and a smoothed height place it
    n_c, n_s, _ = track_geometry(boxes, None, 25.0, "stable")
    assert np.ptp(n_s[inner]) < 0.05 and np.ptp(n_c[inner, 1]) < 0.05
    with pytest.raises(ValueError, match="crop geometry"):
        track_geometry(boxes, lm, 25.0, "jaw")


def test_analyze_faces_cuts_stable_crops_and_names_them(grid_clip):
    a = analyze_faces(grid_clip)  # the default: the packaged model's framing
    assert a.crop_geometry == "stable" == DEFAULT_CROP_GEOMETRY == load_model().config.crop_geometry
    assert a.tracks and a.tracks[0].crops is not None
    mouth = analyze_faces(grid_clip, crop_geometry="mouth")
    assert mouth.crop_geometry == "mouth"
    # same faces, differently framed crops
    assert a.tracks[0].crops.shape == mouth.tracks[0].crops.shape
    assert not np.array_equal(a.tracks[0].crops, mouth.tracks[0].crops)
    a.require_geometry("stable")
    with pytest.raises(ValueError, match="stable"):
        a.require_geometry("mouth")
    with pytest.raises(ValueError, match="crop geometry"):
        analyze_faces(grid_clip, crop_geometry="jaw")


# ---------------------------------------------------------------- bad input

def test_analyze_faces_errors(tmp_path, audio_only, text_as_mp4, zero_byte, truncated):
    with pytest.raises(errors.InputNotFoundError, match="missing.mp4"):
        analyze_faces(tmp_path / "missing.mp4")
    with pytest.raises(errors.NoVideoStreamError, match="audio_only.wav"):
        analyze_faces(audio_only)
    with pytest.raises(errors.NotAMediaFileError, match="notes.mp4"):
        analyze_faces(text_as_mp4)
    with pytest.raises(errors.EmptyMediaError, match="empty.mp4"):
        analyze_faces(zero_byte)
    with pytest.raises(errors.CorruptMediaError, match="truncated.mp4"):
        analyze_faces(truncated)


def test_no_faces_and_no_audio_is_fine(no_audio):
    a = analyze_faces(no_audio)
    assert a.tracks == [] and a.timeline.num_source_frames == 20


def test_scorable_windows_need_all_five_frames_scorable():
    from speakerid.faces import FaceTrack

    n = 12
    scorable = np.ones(n, bool)
    scorable[6] = False  # windows [2..6] touch frame 6
    t = FaceTrack(id=0, shot=0, frames=np.arange(n), boxes=np.zeros((n, 4), np.float32), landmarks=None,
                  detected=np.ones(n, bool), model_frames=np.arange(n), crops=np.zeros((n, 111, 111), np.uint8),
                  scorable=scorable)
    assert t.scorable_windows().tolist() == [0, 1, 7]
    t.crops, t.scorable = None, None
    assert t.scorable_windows().size == 0


def test_scorable_windows_come_from_scorable_alone_and_can_step():
    from speakerid.faces import FaceTrack

    n = 12
    scorable = np.ones(n, bool)
    scorable[6] = False
    # streamed tracks keep no crops; their windows are still defined by `scorable`
    t = FaceTrack(id=0, shot=0, frames=np.arange(n), boxes=np.zeros((n, 4), np.float32), landmarks=None,
                  detected=np.ones(n, bool), model_frames=np.arange(n) + 3, scorable=scorable)
    assert t.scorable_windows().tolist() == [0, 1, 7]
    assert t.scorable_windows(step=2).tolist() == [1, 7]  # model frames 4 and 10


# ---------------------------------------------------------------- streamed window embeddings

@pytest.fixture(scope="module")
def example_15fps(tmp_path_factory):
    """The first 3 s of the bundled example (3 faces) at 15 fps: every source frame feeds one or
    two 25 fps model frames, and three tracks run side by side."""
    src = [(f.time, f.image) for f in iter_frames(examples.path("interview_grid")) if f.time < 3.0]
    times = np.array([t for t, _ in src])
    pick = np.searchsorted(times, np.arange(45) / 15 + 1e-6, side="right") - 1
    return write_video(tmp_path_factory.mktemp("fps15") / "example_15fps.mp4", (src[j][1] for j in pick), 15.0)


def test_streamed_embeddings_equal_embedding_the_kept_crops(example_15fps):
    from speakerid.model import Embedder, VideoWindowEmbedder, load_model

    net = load_model()
    kept = analyze_faces(example_15fps)
    embed = VideoWindowEmbedder(net)
    calls = []

    def spy(x):  # counts the batches; the embedding itself is the real one
        calls.append(x.shape)
        return embed(x)

    spy.model = net
    streamed = analyze_faces(example_15fps, embed=spy)
    assert len(kept.tracks) == len(streamed.tracks) == 3
    assert all(0 < s[0] <= 128 and s[1:] == (5, CROP_SIZE, CROP_SIZE) for s in calls)
    assert len(calls) >= 2  # ~3 × 71 windows: more than one batch
    emb = Embedder(net)
    for k, s in zip(kept.tracks, streamed.tracks, strict=True):
        assert s.crops is None and s.model_frames.tolist() == k.model_frames.tolist()
        np.testing.assert_array_equal(s.scorable, k.scorable)
        assert s.window_positions.tolist() == k.scorable_windows().tolist() == s.scorable_windows().tolist()
        assert s.window_positions.size >= 60
        assert s.window_embeddings.dtype == np.float16 and s.window_embeddings.shape == (s.window_positions.size, 256)
        ref = emb.video(k.crops, k.scorable_windows())
        np.testing.assert_allclose(s.window_embeddings.astype(np.float32), ref, atol=1e-3, rtol=1e-2)
        # both kinds of track answer the same question the same way
        pos_s, v_s = s.window_embeddings_or(emb)
        pos_k, v_k = k.window_embeddings_or(emb)
        assert pos_s.tolist() == pos_k.tolist()
        np.testing.assert_allclose(v_s.astype(np.float32), v_k, atol=1e-3, rtol=1e-2)
        # a coarser step is a subset of the streamed windows
        pos2, v2 = s.window_embeddings_or(emb, step=2)
        assert pos2.tolist() == k.scorable_windows(step=2).tolist()
        np.testing.assert_array_equal(v2, s.window_embeddings[np.isin(s.window_positions, pos2)])


@pytest.mark.parametrize("ref", [9, 75])
def test_streamed_windows_carry_the_mouth_reference_of_the_kept_crops(example_15fps, ref):
    """For a model with mouth references, the streamed windows hold their 5 crops and the mean
    crop over the centred span of their track: the very windows the kept-crops path cuts
    (SyncNet.mouth_reference), whether the span lies inside the track (9) or is cut by its ends
    (75 frames, longer than the 3 s tracks)."""
    from speakerid.model import SyncNet, SyncNetConfig, VideoWindowEmbedder

    net = SyncNet(SyncNetConfig(width=2, embed_dim=8, audio_width=2, mouth_px=75, video_ref=ref)).eval()
    embed = VideoWindowEmbedder(net)
    seen = {}

    def spy(x):  # remembers every window by its content's first bytes; embeds for real
        for w in x:
            seen[w[:5].tobytes()] = w
        return embed(x)

    spy.model, spy.reference = net, embed.reference
    streamed = analyze_faces(example_15fps, embed=spy)
    kept = analyze_faces(example_15fps)
    for k, s in zip(kept.tracks, streamed.tracks, strict=True):
        assert s.window_positions.tolist() == k.scorable_windows().tolist()
        reference = net.mouth_reference(k.crops)
        for p in s.window_positions.tolist():
            w = seen[k.crops[p:p + 5].tobytes()]
            np.testing.assert_array_equal(w[:5], k.crops[p:p + 5])
            np.testing.assert_array_equal(w[5], reference[p + 2])
        # and the embeddings are those of the kept crops' windows
        from speakerid.model import Embedder
        np.testing.assert_allclose(np.asarray(s.window_embeddings, np.float32),
                                   Embedder(net).video(k.crops, k.scorable_windows()), atol=2e-3, rtol=1e-2)


def test_streamed_embeddings_are_used_only_for_their_model(example_15fps):
    from speakerid.model import Embedder, SyncNet, SyncNetConfig, VideoWindowEmbedder

    small = SyncNet(SyncNetConfig(width=2, embed_dim=8, audio_width=2)).eval()
    other = SyncNet(SyncNetConfig(width=2, embed_dim=8, audio_width=2)).eval()
    a = analyze_faces(example_15fps, embed=VideoWindowEmbedder(small), embed_step=2)
    t = a.tracks[0]
    assert t.window_step == 2 and t.window_positions.tolist() == t.scorable_windows(step=2).tolist()
    pos, v = t.window_embeddings_or(Embedder(small), step=2, lazy=True)
    assert v is t.window_embeddings and pos is t.window_positions
    # read from disk into one array unless asked to stay lazy
    pos, v = t.window_embeddings_or(Embedder(small), step=2)
    assert isinstance(v, np.ndarray) and np.array_equal(v, np.asarray(t.window_embeddings))
    # not streamed at step 1, nor by this other model, and no crops to fall back on
    with pytest.raises(ValueError, match="no mouth crops"):
        t.window_embeddings_or(Embedder(small), step=1)
    with pytest.raises(ValueError, match="no mouth crops"):
        t.window_embeddings_or(Embedder(other), step=2)
