"""Faces: shot cuts → face detection → tracking → mouth crops on the 25 fps timeline.

:func:`analyze_faces` runs the whole stage on a video file in two streaming passes (so memory
does not hold the video): pass 1 decodes small frames for shot cuts and face detection every
``detect_every`` frames and tracks faces (IoU + Kalman, :mod:`.tracking`); pass 2 (:mod:`.crops`) decodes grayscale frames at full
size and cuts 111×111 mouth crops for each track at every 25 fps model frame it covers.

Memory: kept crops take 12 KB per model frame per face (18 MB per face per minute of video).
With ``embed=`` the second pass turns them into the model's 5-frame window embeddings as it
goes (0.5 KB per window in float16) and keeps only each track's last 5 crops.
"""
from __future__ import annotations

import os
from array import array
from dataclasses import dataclass, field

import numpy as np

from ..errors import NoVideoStreamError
from ..media import MediaInfo, Timeline, iter_frames, probe, require_video
from ..progress import ProgressFn, silent
from ..rowstore import StoredRows
from ..timebase import WINDOW_FRAMES
from .crops import WindowEmbedFn, WindowStream, cut_crops
from .detector import DETECTORS, FaceDetector, make_detector
from .mouth import DEFAULT_CROP_GEOMETRY, check_geometry
from .shots import ShotDetector
from .tracking import ShotTracker, TrackFrames, densify

@dataclass
class FaceTrack(TrackFrames):
    """One face followed through one shot.

    Per source frame (``frames``: the source video's own frame numbers, consecutive):
    ``boxes`` as [x, y, w, h] in source pixels, ``landmarks`` (5 points, or None), ``detected``
    (the detector fired on that frame; otherwise interpolated). Per 25 fps model frame
    (``model_frames``): ``crops`` (uint8 111×111 mouth crops) and ``scorable`` (face big enough).

    When the faces stage streamed embeddings (``analyze_faces(embed=…)``), ``crops`` is None and
    ``window_positions`` / ``window_embeddings`` hold the embedded windows instead; use
    :meth:`window_embeddings_or` to get embeddings either way.
    """

    model_frames: np.ndarray
    crops: np.ndarray | None = None
    scorable: np.ndarray | None = None
    window_positions: np.ndarray | None = None
    """Positions ``i`` (into ``model_frames``) of the windows ``[i, i + 5)`` embedded while
    streaming: the scorable windows (every one, or those whose first model frame is a
    multiple of ``window_step``)."""
    window_embeddings: np.ndarray | StoredRows | None = None
    """``(len(window_positions), D)`` float16 embeddings of those windows, kept on disk
    (:class:`speakerid.rowstore.StoredRows`; ``np.asarray`` reads them)."""
    window_step: int = 1
    window_model: str | None = None
    """The ``model_key`` of the ``embed`` callable that made ``window_embeddings`` (checked
    against the model asking for them; None: not known, trusted)."""

    @property
    def start_frame(self) -> int:
        return int(self.frames[0])

    @property
    def end_frame(self) -> int:
        """Last source frame of the track (inclusive)."""
        return int(self.frames[-1])

    def scorable_windows(self, step: int = 1) -> np.ndarray:
        """Positions ``i`` (into ``model_frames``) of the 5-frame windows ``[i, i + 5)`` whose
        frames all have a scorable mouth crop (with ``step > 1``: only those whose first model
        frame is a multiple of it); empty when no mouths were cut (``crops=False``)."""
        if self.scorable is None or self.model_frames.size < WINDOW_FRAMES:
            return np.zeros(0, np.int64)
        ok = self.scorable.astype(np.int32)
        full = np.convolve(ok, np.ones(WINDOW_FRAMES, np.int32), mode="valid") == WINDOW_FRAMES
        pos = np.flatnonzero(full).astype(np.int64)
        if step > 1:
            pos = pos[self.model_frames[pos] % step == 0]
        return pos

    def window_embeddings_or(self, embedder, step: int = 1, *,
                             lazy: bool = False) -> tuple[np.ndarray, np.ndarray | StoredRows]:
        """``(positions, embeddings)`` of the track's scorable windows (see
        :meth:`scorable_windows`): the ones streamed by the faces stage when there are, else
        ``embedder.video(crops, positions)`` (``embedder``: a :class:`speakerid.model.Embedder`).

        Streamed embeddings are float16 and are used only when they cover ``step`` and came
        from ``embedder``'s model (the ``.model`` of the ``embed`` callable; one without is
        trusted); otherwise the crops are embedded, and a track with neither raises ValueError.
        ``lazy``: streamed embeddings stay on disk (a :class:`~speakerid.rowstore.StoredRows`
        to read a block at a time) instead of being read into one array.
        """
        if self.window_embeddings is not None and self.window_positions is not None:
            asking = getattr(embedder, "model_key", None)
            same_model = self.window_model is None or asking is None or self.window_model == asking
            if same_model and step % max(1, self.window_step) == 0:
                pos, emb = self.window_positions, self.window_embeddings
                if step > self.window_step:
                    keep = self.model_frames[pos] % step == 0
                    pos = pos[keep]
                    emb = emb.subset(keep) if isinstance(emb, StoredRows) else emb[keep]
                if isinstance(emb, StoredRows) and not lazy:
                    emb = np.asarray(emb)
                return pos, emb
        pos = self.scorable_windows(step)
        if self.crops is None:
            if pos.size == 0:
                return pos, np.zeros((0, 0), np.float32)
            raise ValueError(f"track {self.id}: no mouth crops, and no streamed embeddings from this model "
                             "(analyze the faces again with crops, or with embed= for this model)")
        return pos, embedder.video(self.crops, pos)

    def box_at(self, source_frame: int) -> np.ndarray | None:
        i = int(source_frame) - self.start_frame
        return self.boxes[i] if 0 <= i < len(self.frames) else None

    def to_dict(self, *, timeline: Timeline | None = None) -> dict:
        d = {
            "id": self.id,
            "shot": self.shot,
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
            "frames": self.frames.tolist(),
            "boxes": np.round(self.boxes, 1).tolist(),
            "detected": self.detected.astype(bool).tolist(),
        }
        if self.landmarks is not None:
            d["landmarks"] = np.round(self.landmarks, 1).tolist()
        if timeline is not None:
            d["start_s"] = round(float(timeline.source_times[self.start_frame]), 4)
            d["end_s"] = round(float(timeline.source_times[self.end_frame]), 4)
        d["num_model_frames"] = int(self.model_frames.size)
        return d


@dataclass
class FaceAnalysis:
    """Everything the faces stage found in one video."""

    info: MediaInfo
    timeline: Timeline
    shot_starts: np.ndarray
    """Source frame numbers where each shot starts (the first is 0)."""
    tracks: list[FaceTrack] = field(default_factory=list)
    crop_geometry: str = "mouth"
    """How the mouth crops were framed (``analyze_faces(crop_geometry=…)``; analyses saved before
    this field existed were all ``"mouth"``)."""

    def require_geometry(self, geometry: str) -> None:
        """Raise ``ValueError`` unless the crops were framed as ``geometry`` (the model's)."""
        if self.crop_geometry != geometry:
            raise ValueError(f"the face analysis cut {self.crop_geometry!r} mouth crops, but the model was trained "
                             f"on {geometry!r} crops: run analyze_faces(..., crop_geometry={geometry!r})")

    def shot_of_source(self, frames: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.shot_starts, np.asarray(frames), side="right") - 1

    def to_dict(self) -> dict:
        return {
            "video": self.info.path,
            "fps": self.timeline.source_fps if self.info.fps == 0 else self.info.fps,
            "num_frames": self.timeline.num_source_frames,
            "width": self.info.display_size[0],
            "height": self.info.display_size[1],
            "shot_starts": self.shot_starts.tolist(),
            "tracks": [t.to_dict(timeline=self.timeline) for t in self.tracks],
        }


def _default_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def analyze_faces(video: str | os.PathLike, *, detector: FaceDetector | str | None = None,
                  detect_every: int = 3, detect_width: int = 512, crops: bool = True,
                  embed: WindowEmbedFn | None = None, embed_step: int = 1,
                  max_gap_s: float = 0.5, smooth_s: float = 0.2, min_track_s: float = 0.2,
                  crop_geometry: str = DEFAULT_CROP_GEOMETRY, progress: ProgressFn | None = None) -> FaceAnalysis:
    """Find, track and mouth-crop every face in ``video``.

    ``detect_every``: run the detector on every k-th frame (and at each shot's first frame),
    tracking in between. ``detect_width``: frames are decoded at this width for detection (the
    detector's cost grows with pixels; faces down to ~20 px at that width are found).
    ``crops=False`` skips the second pass (tracks only).

    ``embed``: stream instead of keeping the crops. Each track's scorable 5-frame windows
    (see :meth:`FaceTrack.scorable_windows`; with ``embed_step > 1`` only those starting on a
    model frame that is a multiple of it) are passed to ``embed`` in batches as the second pass
    cuts them, and stored as ``window_positions`` / ``window_embeddings`` (float16, in a
    temporary file: :class:`~speakerid.rowstore.StoredRows`); ``crops`` stays None and memory
    does not grow with the video.

    ``crop_geometry``: how each mouth crop is framed, ``"stable"`` (following the upper face, the
    packaged model's framing and the default) or ``"mouth"`` (each frame's own mouth; older
    models); see :mod:`speakerid.faces.mouth`. A model's crops must be cut the way its
    training crops were: with other weights, pass ``model.config.crop_geometry``.
    """
    check_geometry(crop_geometry)  # before the decoding, not after pass 1
    progress = progress or silent
    info = probe(video)
    require_video(info)
    if not info.has_video:
        raise NoVideoStreamError(f"{video}: has no video stream")
    if detector is None or isinstance(detector, str):  # a backend by name (default: RetinaFace)
        detector = make_detector(detector or DETECTORS[0], input_width=detect_width, threads=_default_threads())
    times, cuts, raw = _detect_and_track(video, info, detector, detect_every, detect_width, progress)
    timeline = Timeline.from_times(np.asarray(times))
    fps_guess = info.fps or 25.0
    dense = _dense_tracks(raw, cuts, len(times), detect_every, max_gap=max(1, int(round(max_gap_s * fps_guess))),
                          smooth=max(1, int(round(smooth_s * fps_guess))),
                          min_dets=max(2, int(np.ceil(min_track_s * fps_guess / detect_every))))
    del raw, times  # pass 1's per-keyframe detections: not needed any more
    tracks = []
    for new_id, d in enumerate(dense):
        lo, hi = int(d.frames[0]), int(d.frames[-1])
        mf = np.nonzero((timeline.model_to_source >= lo) & (timeline.model_to_source <= hi))[0]
        xywh = d.boxes.copy()
        xywh[:, 2:] -= xywh[:, :2]
        tracks.append(FaceTrack(id=new_id, shot=d.shot, frames=d.frames.astype(np.int64), boxes=xywh.astype(np.float32),
                                landmarks=None if d.landmarks is None else d.landmarks.astype(np.float32),
                                detected=d.detected, model_frames=mf.astype(np.int64)))
    analysis = FaceAnalysis(info=info, timeline=timeline, shot_starts=np.asarray(cuts, np.int64), tracks=tracks,
                            crop_geometry=crop_geometry)
    if crops and tracks:
        sink = WindowStream(embed, tracks, embed_step) if embed is not None else None
        cut_crops(video, analysis, progress, sink, crop_geometry)
    return analysis


def _detect_and_track(video, info: MediaInfo, detector: FaceDetector, detect_every: int, detect_width: int,
                      progress: ProgressFn) -> tuple[array, list[int], list]:
    """Pass 1: every frame's time, the shot cuts, and each shot's raw keyframe tracks."""
    src_w, _src_h = info.display_size
    shots = ShotDetector()
    times = array("d")  # every frame's time: 8 bytes a frame, not a Python float's 32
    trackers: list[ShotTracker] = []
    raw = []
    id_offset = 0
    since_shot = 0
    total = info.num_frames
    # decode no wider than needed for detection (libswscale downscale is cheaper than a full decode + resize)
    decode_w = detect_width if src_w > detect_width else None
    for fr in iter_frames(video, max_width=decode_w):
        img = fr.image
        times.append(fr.time)
        cut = shots.update(fr.index, img)
        if cut or not trackers:
            if trackers:
                raw.extend(trackers[-1].tracks.values())
                id_offset += 100000
            trackers.append(ShotTracker(len(trackers), detect_every, id_offset))
            since_shot = 0
        if since_shot % detect_every == 0:
            s = src_w / img.shape[1]
            dets = [d.scaled(s, s) if s != 1 else d for d in detector.detect(img)]
            trackers[-1].update(fr.index, dets)
        since_shot += 1
        if fr.index % 25 == 0:
            progress("faces", fr.index + 1, total)
    progress("faces", len(times), len(times))
    if trackers:
        raw.extend(trackers[-1].tracks.values())
    return times, list(shots.cuts), raw


def _dense_tracks(raw: list, cuts: list[int], num_frames: int, detect_every: int, *, max_gap: int, smooth: int,
                  min_dets: int) -> list:
    """Every raw track made dense (:func:`.tracking.densify`), in order of first frame."""
    # a shot's last frames after its last keyframe were never shown to the detector: a track
    # alive at that keyframe is held to the shot's end (at most detect_every - 1 frames)
    shot_ends = [c - 1 for c in cuts[1:]] + [num_frames - 1]
    dense = []
    for r in raw:
        end = shot_ends[r.shot]
        hold = end if r.frames and end - r.frames[-1] < detect_every else None
        dense.extend(densify(r, max_gap=max_gap, smooth_frames=smooth, min_detections=min_dets, hold_until=hold))
    dense.sort(key=lambda t: (int(t.frames[0]), float(t.boxes[0, 0])))
    return dense
