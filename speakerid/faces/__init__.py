"""Faces: shot cuts → face detection → tracking → mouth crops on the 25 fps timeline.

:func:`analyze_faces` runs the whole stage on a video file in two streaming passes (so memory
does not hold the video): pass 1 decodes small frames for shot cuts and face detection every
``detect_every`` frames and tracks faces (IoU + Kalman, :mod:`.tracking`); pass 2 decodes grayscale frames at full
size and cuts 111×111 mouth crops for each track at every 25 fps model frame it covers.

Memory: kept crops take 12 KB per model frame per face (18 MB per face per minute of video).
With ``embed=`` the second pass turns them into the model's 5-frame window embeddings as it
goes (0.5 KB per window in float16) and keeps only each track's last 5 crops.
"""
from __future__ import annotations

import os
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import NoVideoStreamError
from ..media import MediaInfo, Timeline, iter_frames, probe, require_video
from ..progress import ProgressFn, silent
from ..rowstore import RowStore, StoredRows
from .detector import DETECTORS, CenterFaceDetector, Detection, FaceDetector, default_detector, make_detector
from .mouth import CROP_SIZE, DEFAULT_CROP_GEOMETRY, MIN_FACE_PX, check_geometry, crop_at, crop_mouth, track_geometry
from .shots import ShotDetector
from .tracking import ShotTracker, densify

__all__ = [
    "FaceTrack", "FaceAnalysis", "analyze_faces", "FaceDetector", "CenterFaceDetector", "Detection",
    "ShotDetector", "crop_mouth", "CROP_SIZE", "WindowEmbedFn",
]

WindowEmbedFn = Callable[[np.ndarray], np.ndarray]
"""Embeds mouth windows: uint8 ``(B, 5, 111, 111)`` → float ``(B, D)``
(e.g. :class:`speakerid.model.VideoWindowEmbedder`)."""
EMBED_BATCH = 128
"""Windows handed to the ``embed`` callable at a time while streaming."""


@dataclass
class FaceTrack:
    """One face followed through one shot.

    Per source frame (``frames``: the source video's own frame numbers, consecutive):
    ``boxes`` as [x, y, w, h] in source pixels, ``landmarks`` (5 points, or None), ``detected``
    (the detector fired on that frame; otherwise interpolated). Per 25 fps model frame
    (``model_frames``): ``crops`` (uint8 111×111 mouth crops) and ``scorable`` (face big enough).

    When the faces stage streamed embeddings (``analyze_faces(embed=…)``), ``crops`` is None and
    ``window_positions`` / ``window_embeddings`` hold the embedded windows instead; use
    :meth:`window_embeddings_or` to get embeddings either way.
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
    window_positions: np.ndarray | None = None
    """Positions ``i`` (into ``model_frames``) of the windows ``[i, i + 5)`` embedded while
    streaming: the scorable windows (every one, or those whose first model frame is a
    multiple of ``window_step``)."""
    window_embeddings: np.ndarray | StoredRows | None = None
    """``(len(window_positions), D)`` float16 embeddings of those windows, kept on disk
    (:class:`speakerid.rowstore.StoredRows`; ``np.asarray`` reads them)."""
    window_step: int = 1
    window_embedder: Any = field(default=None, repr=False, compare=False)
    """The ``embed`` callable that made ``window_embeddings`` (its ``.model`` is checked against
    the model asking for them)."""

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
        from ..features import WINDOW_FRAMES

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
            made_by = getattr(self.window_embedder, "model", None)
            same_model = made_by is None or embedder is None or made_by is getattr(embedder, "model", None)
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
    src_w, _src_h = info.display_size
    fps_guess = info.fps or 25.0
    max_gap = max(1, int(round(max_gap_s * fps_guess)))
    smooth = max(1, int(round(smooth_s * fps_guess)))
    min_dets = max(2, int(np.ceil(min_track_s * fps_guess / detect_every)))
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
    tracks = []
    for new_id, d in enumerate(dense):
        lo, hi = int(d.frames[0]), int(d.frames[-1])
        mf = np.nonzero((timeline.model_to_source >= lo) & (timeline.model_to_source <= hi))[0]
        xywh = d.boxes.copy()
        xywh[:, 2:] -= xywh[:, :2]
        tracks.append(FaceTrack(id=new_id, shot=d.shot, frames=d.frames.astype(np.int64), boxes=xywh.astype(np.float32),
                                landmarks=None if d.landmarks is None else d.landmarks.astype(np.float32),
                                detected=d.detected, model_frames=mf.astype(np.int64)))
    analysis = FaceAnalysis(info=info, timeline=timeline, shot_starts=np.asarray(shots.cuts, np.int64), tracks=tracks,
                            crop_geometry=crop_geometry)
    del raw, dense, trackers, times  # pass 1's per-keyframe detections: not needed any more
    if crops and tracks:
        sink = _WindowStream(embed, tracks, embed_step) if embed is not None else None
        _cut_crops(video, analysis, progress, sink, crop_geometry)
    return analysis


class _WindowStream:
    """Turns each track's mouth crops into window embeddings as pass 2 cuts them.

    Keeps a ring of each open track's last crops; a window whose 5 frames are all scorable is
    queued as soon as its last frame is cut, and the queue is embedded ``EMBED_BATCH`` at a time
    (windows of all tracks together, so short tracks still fill batches). The embeddings go to
    one temporary file for all tracks (:class:`~speakerid.rowstore.RowStore`; a file per track
    would run out of file handles on a long video with many shots).

    A model with mouth references (``embed.reference`` frames, see
    :meth:`speakerid.model.SyncNet.mouth_reference`) also needs the mean crop over a centred
    span of its track around each window: the window then waits until the last frame of that
    span is cut, and the ring holds the span (75 frames: 0.9 MB per open track).
    """

    def __init__(self, embed: WindowEmbedFn, tracks: list[FaceTrack], step: int = 1):
        from ..features import WINDOW_FRAMES

        self.embed = embed
        self.tracks = tracks
        self.step = max(1, int(step))
        self.W = WINDOW_FRAMES
        self.ref = int(getattr(embed, "reference", 0) or 0)
        if self.ref:  # a model with references: torch is loaded already
            from ..model import reference_span as span

            self._span = span
        self.R = self.W + self.ref  # ring size
        self._ring: dict[int, np.ndarray] = {}
        self._held: dict[int, np.ndarray] = {}  # which position each ring slot holds
        self._waiting: dict[int, list[int]] = {}  # windows waiting for the end of their reference span
        self._queue: list[np.ndarray] = []
        self._who: list[tuple[int, int]] = []
        self._pos: list[list[np.ndarray]] = [[] for _ in tracks]
        self._rows: list[list[np.ndarray]] = [[] for _ in tracks]
        self._store: RowStore | None = None
        self._dim = 0

    def add(self, ti: int, i: int, crop: np.ndarray) -> None:
        """Crop of track ``ti`` at position ``i`` (positions of a track come in increasing order;
        ``tracks[ti].scorable[i]`` is already set)."""
        t = self.tracks[ti]
        W, R = self.W, self.R
        ring = self._ring.get(ti)
        if ring is None:
            ring = self._ring[ti] = np.empty((R, CROP_SIZE, CROP_SIZE), np.uint8)
            self._held[ti] = np.full(R, -1, np.int64)
            self._waiting[ti] = []
        ring[i % R] = crop
        self._held[ti][i % R] = i
        s = i - W + 1
        # a window's frames are all scorable only if each was cut, so the ring holds exactly them
        if s >= 0 and t.scorable[s:i + 1].all() and int(t.model_frames[s]) % self.step == 0:
            if self.ref:
                self._waiting[ti].append(s)
            else:
                self._enqueue(ti, s, ring[np.arange(s, i + 1) % R])
        last = i == t.model_frames.size - 1
        if self.ref:
            self._release(ti, i, last)
        if last:
            self._close(ti)

    def _release(self, ti: int, i: int, last: bool) -> None:
        """Queue the waiting windows of track ``ti`` whose reference span ends at or before
        position ``i`` (all of them at the track's end), with their reference."""
        n = self.tracks[ti].model_frames.size
        ring, held, wait = self._ring[ti], self._held[ti], self._waiting[ti]
        while wait:
            s = wait[0]
            lo, hi = (int(v) for v in self._span(s + self.W // 2, n, self.ref))
            if hi - 1 > i and not last:
                break
            wait.pop(0)
            span = np.arange(lo, min(hi, i + 1))
            span = span[held[span % self.R] == span]  # frames that did not decode are left out
            ref = np.rint(ring[span % self.R].sum(axis=0, dtype=np.float32) / max(1, span.size))
            win = np.concatenate([ring[np.arange(s, s + self.W) % self.R],
                                  np.clip(ref, 0, 255).astype(np.uint8)[None]])
            self._enqueue(ti, s, win)

    def _enqueue(self, ti: int, s: int, window: np.ndarray) -> None:
        self._queue.append(window)
        self._who.append((ti, s))
        if len(self._queue) >= EMBED_BATCH:
            self._flush()

    def _close(self, ti: int) -> None:
        del self._ring[ti], self._held[ti], self._waiting[ti]

    def _flush(self) -> None:
        if not self._queue:
            return
        x = np.stack(self._queue)
        e = np.asarray(self.embed(x))
        if e.ndim != 2 or e.shape[0] != x.shape[0]:
            raise ValueError(f"embed returned shape {e.shape} for {x.shape[0]} windows; expected ({x.shape[0]}, D)")
        self._dim = e.shape[1]
        if self._store is None:
            self._store = RowStore(self._dim, np.float16)
        rows = self._store.append(e)
        who = np.asarray(self._who, np.int64)
        for ti in np.unique(who[:, 0]).tolist():
            m = who[:, 0] == ti
            self._pos[ti].append(who[m, 1])
            self._rows[ti].append(rows[m])
        self._queue.clear()
        self._who.clear()

    def finish(self) -> None:
        # tracks whose last frames did not decode: their waiting windows go with what was cut
        for ti in list(self._ring):
            if self.ref:
                self._release(ti, int(self._held[ti].max()), True)
            self._close(ti)
        self._flush()
        for ti, t in enumerate(self.tracks):
            t.window_positions = (np.concatenate(self._pos[ti]) if self._pos[ti] else np.zeros(0, np.int64))
            t.window_embeddings = (self._store.view(np.concatenate(self._rows[ti])) if self._rows[ti]
                                   else np.zeros((0, self._dim), np.float16))
            t.window_step = self.step
            t.window_embedder = self.embed
            self._pos[ti] = self._rows[ti] = []


def _cut_crops(video, analysis: FaceAnalysis, progress: ProgressFn, sink: _WindowStream | None = None,
               geometry: str = "mouth") -> None:
    """Pass 2: decode the frames the tracks need (grayscale, full size) and cut each track's
    mouth crop at every model frame it covers: into ``track.crops``, or, with ``sink``, into the
    window stream (the crops are then not kept)."""
    tracks = analysis.tracks
    m2s = analysis.timeline.model_to_source
    # per track, the source frame of each of its model frames (non-decreasing: 25 fps resampling
    # repeats source frames below 25 fps and skips some above)
    src = [m2s[t.model_frames] for t in tracks]
    for t in tracks:
        t.scorable = np.zeros(t.model_frames.size, bool)
        if sink is None:
            t.crops = np.zeros((t.model_frames.size, CROP_SIZE, CROP_SIZE), np.uint8)
    order = sorted((ti for ti in range(len(tracks)) if src[ti].size), key=lambda ti: int(src[ti][0]))
    needed = np.unique(np.concatenate(src)) if order else np.zeros(0, np.int64)
    nxt = [0] * len(tracks)
    frames_of: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # open tracks' framing
    fps = analysis.info.fps or 25.0
    active: list[int] = []
    a = 0
    total = analysis.timeline.num_source_frames
    for fr in iter_frames(video, gray=True, indices=needed.tolist()):
        j = fr.index
        while a < len(order) and int(src[order[a]][0]) <= j:
            t = tracks[order[a]]
            xyxy = t.boxes.astype(np.float64)
            xyxy[:, 2:] += xyxy[:, :2]
            frames_of[order[a]] = track_geometry(xyxy, t.landmarks, fps, geometry)
            active.append(order[a])
            a += 1
        still = []
        for ti in sorted(active):
            t, s, i = tracks[ti], src[ti], nxt[ti]
            while i < s.size and s[i] < j:  # a frame that did not decode: its crop stays unscorable
                i += 1
            if i < s.size and s[i] == j:
                r = j - t.start_frame
                centres, sides, angles = frames_of[ti]
                crop = crop_at(fr.image, centres[r], float(sides[r]), float(angles[r]))
                ok = bool(t.boxes[r, 3] >= MIN_FACE_PX)
                while i < s.size and s[i] == j:  # below 25 fps one source frame is several model frames
                    t.scorable[i] = ok
                    if sink is None:
                        t.crops[i] = crop
                    else:
                        sink.add(ti, i, crop)
                    i += 1
            nxt[ti] = i
            if i < s.size:
                still.append(ti)
            else:
                frames_of.pop(ti, None)
        active = still
        if j % 25 == 0:
            progress("mouths", j + 1, total)
    if sink is not None:
        sink.finish()
    progress("mouths", total, total)
