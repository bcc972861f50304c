"""Faces: shot cuts → face detection → tracking → mouth crops on the 25 fps timeline.

:func:`analyze_faces` runs the whole stage on a video file in two streaming passes (so memory
does not hold the video): pass 1 decodes small frames for shot cuts and face detection every
``detect_every`` frames and tracks faces with norfair; pass 2 decodes grayscale frames at full
size and cuts 111×111 mouth crops for each track at every 25 fps model frame it covers.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import NoVideoStreamError
from ..media import MediaInfo, Timeline, iter_frames, probe, require_video
from ..progress import ProgressFn, silent
from .detector import CenterFaceDetector, Detection, FaceDetector, default_detector
from .mouth import CROP_SIZE, MIN_FACE_PX, crop_mouth
from .shots import ShotDetector
from .tracking import ShotTracker, densify

__all__ = [
    "FaceTrack", "FaceAnalysis", "analyze_faces", "FaceDetector", "CenterFaceDetector", "Detection",
    "ShotDetector", "crop_mouth", "CROP_SIZE",
]


@dataclass
class FaceTrack:
    """One face followed through one shot.

    Per source frame (``frames``: the source video's own frame numbers, consecutive):
    ``boxes`` as [x, y, w, h] in source pixels, ``landmarks`` (5 points, or None), ``detected``
    (the detector fired on that frame; otherwise interpolated). Per 25 fps model frame
    (``model_frames``): ``crops`` (uint8 111×111 mouth crops) and ``scorable`` (face big enough).
    """

    id: int
    shot: int
    frames: np.ndarray
    boxes: np.ndarray
    landmarks: np.ndarray | None
    detected: np.ndarray
    model_frames: np.ndarray
    crops: np.ndarray | None = None
    scorable: np.ndarray | None = None

    @property
    def start_frame(self) -> int:
        return int(self.frames[0])

    @property
    def end_frame(self) -> int:
        """Last source frame of the track (inclusive)."""
        return int(self.frames[-1])

    def scorable_windows(self) -> np.ndarray:
        """Positions ``i`` (into ``model_frames``) of the 5-frame windows ``[i, i + 5)`` whose
        frames all have a scorable mouth crop; empty when the track has no crops."""
        from ..features import WINDOW_FRAMES

        if self.crops is None or self.scorable is None or self.model_frames.size < WINDOW_FRAMES:
            return np.zeros(0, np.int64)
        ok = self.scorable.astype(np.int32)
        full = np.convolve(ok, np.ones(WINDOW_FRAMES, np.int32), mode="valid") == WINDOW_FRAMES
        return np.flatnonzero(full).astype(np.int64)

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

    def shot_of_source(self, frames: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.shot_starts, np.asarray(frames), side="right") - 1

    def shot_of_model(self) -> np.ndarray:
        """Shot index of every model frame."""
        return self.shot_of_source(self.timeline.model_to_source)

    def faces_per_model_frame(self) -> np.ndarray:
        n = np.zeros(self.timeline.num_model_frames, np.int32)
        for t in self.tracks:
            n[t.model_frames] += 1
        return n

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


def analyze_faces(video: str | os.PathLike, *, detector: FaceDetector | None = None,
                  detect_every: int = 3, detect_width: int = 512, crops: bool = True,
                  max_gap_s: float = 0.5, smooth_s: float = 0.2, min_track_s: float = 0.2,
                  progress: ProgressFn | None = None) -> FaceAnalysis:
    """Find, track and mouth-crop every face in ``video``.

    ``detect_every``: run the detector on every k-th frame (and at each shot's first frame),
    tracking in between. ``detect_width``: frames are decoded at this width for detection (the
    detector's cost grows with pixels; faces down to ~20 px at that width are found).
    ``crops=False`` skips the second pass (tracks only).
    """
    progress = progress or silent
    info = probe(video)
    require_video(info)
    if not info.has_video:
        raise NoVideoStreamError(f"{video}: has no video stream")
    detector = detector or default_detector(input_width=detect_width, threads=_default_threads())
    src_w, _src_h = info.display_size
    fps_guess = info.fps or 25.0
    max_gap = max(1, int(round(max_gap_s * fps_guess)))
    smooth = max(1, int(round(smooth_s * fps_guess)))
    min_dets = max(2, int(np.ceil(min_track_s * fps_guess / detect_every)))
    shots = ShotDetector()
    times: list[float] = []
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
    timeline = Timeline.from_times(np.asarray(times))
    # a shot's last frames after its last keyframe were never shown to the detector: a track
    # alive at that keyframe is held to the shot's end (at most detect_every - 1 frames)
    shot_ends = [c - 1 for c in shots.cuts[1:]] + [len(times) - 1]
    dense = []
    for r in raw:
        end = shot_ends[r.shot]
        hold = end if r.frames and end - r.frames[-1] < detect_every else None
        dense.extend(densify(r, max_gap=max_gap, smooth_frames=smooth, min_detections=min_dets, hold_until=hold))
    dense.sort(key=lambda t: (int(t.frames[0]), float(t.boxes[0, 0])))
    src_to_model_lists = _model_frames_by_source(timeline)
    tracks = []
    for new_id, d in enumerate(dense):
        lo, hi = int(d.frames[0]), int(d.frames[-1])
        mf = np.nonzero((timeline.model_to_source >= lo) & (timeline.model_to_source <= hi))[0]
        xywh = d.boxes.copy()
        xywh[:, 2:] -= xywh[:, :2]
        tracks.append(FaceTrack(id=new_id, shot=d.shot, frames=d.frames.astype(np.int64), boxes=xywh.astype(np.float32),
                                landmarks=None if d.landmarks is None else d.landmarks.astype(np.float32),
                                detected=d.detected, model_frames=mf.astype(np.int64)))
    analysis = FaceAnalysis(info=info, timeline=timeline, shot_starts=np.asarray(shots.cuts, np.int64), tracks=tracks)
    if crops and tracks:
        _cut_crops(video, analysis, src_to_model_lists, progress)
    return analysis


def _model_frames_by_source(timeline: Timeline) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for k, j in enumerate(timeline.model_to_source.tolist()):
        out.setdefault(j, []).append(k)
    return out


def _cut_crops(video, analysis: FaceAnalysis, src_to_model: dict[int, list[int]], progress: ProgressFn) -> None:
    tracks = analysis.tracks
    for t in tracks:
        t.crops = np.zeros((t.model_frames.size, CROP_SIZE, CROP_SIZE), np.uint8)
        t.scorable = np.zeros(t.model_frames.size, bool)
    # which (track, position in track.model_frames) each needed source frame feeds
    jobs: dict[int, list[tuple[FaceTrack, int]]] = {}
    for t in tracks:
        pos = {int(k): i for i, k in enumerate(t.model_frames)}
        for j in range(t.start_frame, t.end_frame + 1):
            for k in src_to_model.get(j, ()):
                if k in pos:
                    jobs.setdefault(j, []).append((t, pos[k]))
    total = analysis.timeline.num_source_frames
    for fr in iter_frames(video, gray=True, indices=jobs.keys()):
        for t, i in jobs[fr.index]:
            r = fr.index - t.start_frame
            box = t.boxes[r].astype(np.float64)
            x1y1x2y2 = np.array([box[0], box[1], box[0] + box[2], box[1] + box[3]])
            lm = None if t.landmarks is None else t.landmarks[r].astype(np.float64)
            t.crops[i] = crop_mouth(fr.image, x1y1x2y2, lm)
            t.scorable[i] = box[3] >= MIN_FACE_PX
        if fr.index % 25 == 0:
            progress("mouths", fr.index + 1, total)
    progress("mouths", total, total)
