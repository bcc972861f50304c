"""Pass 2 of the faces stage: cut each track's mouth crops from full-size grayscale frames, and
keep them, or stream its 5-frame windows to an embedding callable as they are cut (the crops are
then not kept: memory does not grow with the video)."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..features import reference_span
from ..media import iter_frames
from ..progress import ProgressFn
from ..rowstore import RowStore
from ..timebase import CROP_SIZE, WINDOW_FRAMES
from .mouth import MIN_FACE_PX, crop_at, track_geometry

WindowEmbedFn = Callable[[np.ndarray], np.ndarray]
"""Embeds mouth windows: uint8 ``(B, 5, 111, 111)`` → float ``(B, D)``
(e.g. :class:`speakerid.model.VideoWindowEmbedder`). Its optional ``model_key`` names the
weights, so that embeddings are reused only for the same model; its optional ``reference``
(frames) asks for a mouth reference beside each window."""

EMBED_BATCH = 128
"""Windows handed to the ``embed`` callable at a time while streaming."""


class WindowStream:
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

    def __init__(self, embed: WindowEmbedFn, tracks: list, step: int = 1):
        self.embed = embed
        self.tracks = tracks
        self.step = max(1, int(step))
        self.W = WINDOW_FRAMES
        self.ref = int(getattr(embed, "reference", 0) or 0)
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
            lo, hi = (int(v) for v in reference_span(s + self.W // 2, n, self.ref))
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
            t.window_model = getattr(self.embed, "model_key", None)
            self._pos[ti] = self._rows[ti] = []


def cut_crops(video, analysis, progress: ProgressFn, sink: WindowStream | None = None,
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
