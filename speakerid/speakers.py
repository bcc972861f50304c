"""Active speaker detection: which face speaks, frame by frame, from lip-sync evidence.

Every face track's 0.2 s mouth windows are embedded by the SyncNet and compared with the one
audio track at the same time, over a range of audio shifts. The evidence that a window is in
sync is how much closer the audio is at the track's shift than typically
(``median over shifts − distance at the track's shift``), so a mouth that moves while somebody
else is heard scores near zero: only lip *sync* counts, not motion.

Steps (all on the 25 fps model timeline, then mapped to the source's own frames):

1. Distances ``d[window, shift]`` for shifts in ±``search_frames`` (20 ms steps), each less the
   audio window's mean distance to all mouth windows of the video (``audio_norm``).
   Window confidence profile ``c = median(d) − d``.
2. **Offsets.** Real videos are often 40–200 ms out of sync (and composites mix sources with
   their own offsets). The video's offset is the peak of the confidence-weighted sum of all
   windows' profiles; each track then takes the shift that best explains its own windows within
   ±``max_shift_frames`` of it or of zero (a weak or chance peak far out must not pull every
   face away from the common, near-zero case), unless its own profile peaks clearly elsewhere
   within ±``OWN_OFFSET_MS`` (a face heard with an offset of its own, as when recordings with
   different offsets are edited together).
3. **Score.** Per window: ``c`` at the track's shift (mean over ±20 ms around it). Averaged
   over ``smooth_frames`` frames (centred, per track, weights falling linearly from the centre)
   to ride over blinks, blur and short pauses.
4. **Calibration.** The same smoothed statistic at shifts far from the track's (mismatched
   audio) is the null: how large the score gets by chance in *this* video, with *this* model.
   The reported score is ``(smoothed − null mean) / null std``, a z-score, so one threshold holds
   across videos, speakers and model versions.
5. **Who speaks** (``decoder``). ``"hmm"`` (the default): a hidden Markov
   model over turns (:mod:`speakerid.decoding`) reads each face's calibrated score (smoothed
   over 25 frames) as evidence and gives the posterior probability that the face is the one
   speaking; with ``exclusive`` its states are "nobody" or one face, so the faces compete for
   one voice, and turn edges follow the evidence instead of a wide moving mean.
   ``"threshold"``: each face's score (smoothed over 50 frames) loses
   ``competition`` (default 0.5) times the best *other* face's positive score at the same
   frame, and that is the score.
6. **Labels.** ``speaking = score ≥ threshold`` (0.5 for ``"hmm"``: more likely speaking than
   not; 1.5 for ``"threshold"``), and (``exclusive``, the default) only for the frame's
   highest-scoring face; nobody above it → nobody labelled. Segments are the runs of speaking
   frames of each track, in seconds.

Memory: :func:`detect_speakers` streams. The faces stage embeds each track's mouth windows as it
decodes (``analyze_faces(embed=VideoWindowEmbedder(model))``) and keeps no crops; the audio is
decoded, turned into MFCC and embedded a piece at a time (:func:`speakerid.media.iter_audio`,
:func:`speakerid.features.iter_mfcc`). Every per-window table (video and audio embeddings, MFCC,
confidence profiles) goes to a temporary file (:class:`speakerid.rowstore.RowStore`) and is read
back ``BLOCK_ROWS`` at a time, so the working memory does not depend on the video's length. What
grows is the result itself and the face tracks it is made from (per frame and face: box,
landmarks, score, label), a few hundred bytes per frame; see ``benchmarks/bench_memory.py``.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .decoding import speaking_posteriors
from .errors import InvalidSettingError
from .features import COLS_PER_FRAME, MS_PER_COL, VIDEO_FPS, WINDOW_COLS, WINDOW_FRAMES, iter_mfcc, require_span
from .rowstore import RowStore, StoredRows

if TYPE_CHECKING:  # keep ``import speakerid.speakers`` free of torch until scoring runs
    from .faces import FaceAnalysis
    from .model import SyncNet
    from .progress import ProgressFn

__all__ = ["detect_speakers", "score_faces", "label_tracks", "decoder_settings", "SpeakerResult", "SpeakerTrack",
           "Segment", "DECODERS", "DEFAULT_DECODER", "DECODER_DEFAULTS", "DEFAULT_THRESHOLD", "DEFAULT_COMPETITION",
           "DEFAULT_SMOOTH_FRAMES", "DEFAULT_MAX_SHIFT_FRAMES", "DEFAULT_SEARCH_FRAMES"]

DECODERS = ("hmm", "threshold")
DEFAULT_DECODER = "hmm"
"""How scores become speaking labels: ``"hmm"`` (the posterior probability of a turn model; the
default, as it beat the threshold rule on ten of twelve benchmark sets in AP and in F1,
docs/speakers.md) or ``"threshold"`` (calibrated z less the competition term, labelled above a
threshold)."""
DECODER_DEFAULTS = {"hmm": {"smooth_frames": 25, "threshold": 0.5},
                    "threshold": {"smooth_frames": 50, "threshold": 1.5}}
"""Smoothing window (25 fps model frames, triangle-weighted) and label threshold of each decoder,
chosen on the own composites and the bundled example (docs/speakers.md)."""
DEFAULT_SMOOTH_FRAMES = DECODER_DEFAULTS[DEFAULT_DECODER]["smooth_frames"]
"""Averaging window of the per-face scores of the default decoder, in 25 fps model frames (1 s)."""
DEFAULT_THRESHOLD = DECODER_DEFAULTS[DEFAULT_DECODER]["threshold"]
"""Score at and above which a face is labelled speaking, default decoder: a posterior of 0.5
(more likely speaking than not)."""
DEFAULT_COMPETITION = 0.5
"""``"threshold"`` decoder: share of the best other face's (positive) score taken off each face's
score, frame by frame, when labelling is exclusive; 0 with ``exclusive=False`` (overlapping
speech). The ``"hmm"`` decoder lets faces compete through its states instead."""
MIN_SEGMENT_S = 0.2
"""Speaking runs shorter than this (one SyncNet window) are dropped: flicker where two faces' scores cross."""
DEFAULT_MAX_SHIFT_FRAMES = 1
"""How far (model frames of 40 ms) a track's own offset may stray from the video's offset."""
DEFAULT_SEARCH_FRAMES = 25
"""Shift range (± model frames) over which distances are compared: ±1 s."""
SHIFT_STEP_COLS = 2
"""Shift resolution in MFCC columns (20 ms): offsets such as 60 ms fall between video frames."""
OWN_OFFSET_MS = 200
"""A track whose own evidence clearly peaks may take any shift within ±this (ms), beyond the
band around the video's offset: sources with offsets of their own (an edit of several
recordings, a composite) put one face 80–120 ms away from the others."""
SCORING = "scoring faces against audio shifted"
DRIFT_SEGMENT_S = 10.0
"""Stretch over which the video's offset is measured again to notice drift (as ``sync`` does)."""
DRIFT_TOLERANCE_MS = 80.0
"""Segment offsets further apart than this (two video frames) are reported as drift."""
OWN_OFFSET_Z = 4.0
"""How clear that peak must be: its height above the median of the track's profile at shifts
beyond ±2·``OWN_OFFSET_MS``, in standard deviations of those far values; and it must stand at
least one such deviation above the best shift of the band."""


# ----------------------------------------------------------------------------------------------
# results


@dataclass
class Segment:
    """One stretch of time (s from the first frame) in which one face track speaks."""

    track: int
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict:
        return {"track": int(self.track), "start": round(float(self.start), 3), "end": round(float(self.end), 3)}


@dataclass
class SpeakerTrack:
    """One face followed through one shot, with a score and a label for each of its frames.

    ``frames``: source frame numbers (consecutive); ``boxes``: [x, y, w, h] in source pixels;
    ``scores``: calibrated speaking score (higher = speaking; NaN where the face could not be
    scored, e.g. too small for a mouth crop); ``speaking``: the label.
    """

    id: int
    frames: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    speaking: np.ndarray
    offset_ms: float | None = None
    """The audio offset this track was scored at (``t_audio − t_video``); None if unscored."""

    @property
    def scored(self) -> bool:
        return bool(np.isfinite(self.scores).any())

    def to_dict(self) -> dict:
        return {
            "id": int(self.id),
            "frames": [int(f) for f in self.frames],
            "boxes": np.round(np.asarray(self.boxes, np.float64), 1).tolist(),
            "scores": [None if not math.isfinite(s) else round(float(s), 3) for s in np.asarray(self.scores, np.float64)],
            "speaking": [bool(s) for s in self.speaking],
            "offset_ms": None if self.offset_ms is None else float(self.offset_ms),
        }

    @classmethod
    def from_dict(cls, d: dict) -> SpeakerTrack:
        return cls(id=int(d["id"]), frames=np.asarray(d["frames"], np.int64),
                   boxes=np.asarray(d["boxes"], np.float32).reshape(-1, 4),
                   scores=np.asarray([np.nan if s is None else s for s in d["scores"]], np.float32),
                   speaking=np.asarray(d["speaking"], bool), offset_ms=d.get("offset_ms"))


@dataclass
class SpeakerResult:
    """Who speaks when in one video: face tracks with per-frame scores and labels, and segments.

    Frame numbers and seconds are the source video's own (a 30 fps video gets 30 fps labels).
    """

    fps: float
    num_frames: int
    tracks: list[SpeakerTrack] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    video: str = ""
    threshold: float = DEFAULT_THRESHOLD
    smooth_frames: int = DEFAULT_SMOOTH_FRAMES
    exclusive: bool = True
    """At most one face labelled speaking per frame (the highest-scoring one above the threshold)."""
    competition: float = 0.0
    """``"threshold"`` decoder: share of the best other face's positive score taken off each
    face's score (scoring step 5); 0 with the ``"hmm"`` decoder."""
    decoder: str = DEFAULT_DECODER
    """How the scores were made: ``"hmm"`` (posterior probability that the face speaks) or
    ``"threshold"`` (calibrated z less the competition term); see :data:`DECODERS`."""
    offset_ms: float | None = None
    """The video's estimated audio offset (``t_audio − t_video``); None without scorable faces."""
    model: str = ""
    """Fingerprint of the SyncNet weights that produced the scores."""
    frame_times: np.ndarray | None = field(default=None, repr=False, compare=False)
    """Time (s from the first frame) of every source frame, when known (variable frame rate)."""
    warnings: list[str] = field(default_factory=list)
    """What may make this result wrong, in words (e.g. an audio offset that drifts along the
    video, which one offset per face cannot follow)."""
    diagnostics: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """Extra arrays for exploration (shift grid, offset profiles, raw window scores); not exported."""

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps if self.fps else 0.0

    def time_of(self, frame: int) -> float:
        """Seconds from the first frame to source frame ``frame``."""
        if self.frame_times is not None and 0 <= int(frame) < self.frame_times.size:
            return float(self.frame_times[int(frame)])
        return int(frame) / self.fps if self.fps else 0.0

    def track(self, track_id: int) -> SpeakerTrack:
        for t in self.tracks:
            if t.id == track_id:
                return t
        raise KeyError(track_id)

    def speakers_at(self, frame: int) -> list[int]:
        """Ids of the tracks labelled speaking at source frame ``frame``."""
        out = []
        for t in self.tracks:
            i = int(frame) - int(t.frames[0]) if len(t.frames) else -1
            if 0 <= i < len(t.frames) and t.speaking[i]:
                out.append(t.id)
        return out

    def relabel(self, threshold: float | None = None, *, exclusive: bool | None = None) -> SpeakerResult:
        """Label frames again from the scores with another threshold (and/or exclusivity) and
        rebuild the segments, without scoring again. Returns self."""
        if threshold is not None:
            self.threshold = float(threshold)
        if exclusive is not None:
            self.exclusive = bool(exclusive)
        min_run = max(1, int(round(MIN_SEGMENT_S * (self.fps or 25.0))))
        label_tracks(self.tracks, self.threshold, self.num_frames, exclusive=self.exclusive, min_run=min_run)
        times = self.frame_times if self.frame_times is not None else np.arange(self.num_frames) / (self.fps or 25.0)
        self.segments = _segments(self.tracks, np.asarray(times, np.float64), self.fps)
        return self

    def to_dict(self) -> dict:
        """JSON-ready: fps, num_frames, tracks (id, frames, boxes, scores, speaking), segments."""
        return {
            "video": self.video,
            "fps": float(self.fps),
            "num_frames": int(self.num_frames),
            "threshold": float(self.threshold),
            "smooth_frames": int(self.smooth_frames),
            "exclusive": bool(self.exclusive),
            "competition": float(self.competition),
            "decoder": self.decoder,
            "offset_ms": None if self.offset_ms is None else float(self.offset_ms),
            "model": self.model,
            "warnings": list(self.warnings),
            "tracks": [t.to_dict() for t in self.tracks],
            "segments": [s.to_dict() for s in self.segments],
        }

    @classmethod
    def from_dict(cls, d: dict) -> SpeakerResult:
        return cls(fps=float(d["fps"]), num_frames=int(d["num_frames"]),
                   tracks=[SpeakerTrack.from_dict(t) for t in d.get("tracks", [])],
                   segments=[Segment(int(s["track"]), float(s["start"]), float(s["end"])) for s in d.get("segments", [])],
                   video=d.get("video", ""), threshold=float(d.get("threshold", DEFAULT_THRESHOLD)),
                   smooth_frames=int(d.get("smooth_frames", DEFAULT_SMOOTH_FRAMES)), offset_ms=d.get("offset_ms"),
                   exclusive=bool(d.get("exclusive", True)),
                   competition=float(d.get("competition", 0.0)),  # files from before the term: none
                   decoder=str(d.get("decoder", "threshold")),  # files without the field hold z-scores
                   model=d.get("model", ""), warnings=list(d.get("warnings", [])))

    def to_json(self, path: str | os.PathLike, **kw) -> Path:
        from .export import write_json

        return write_json(self, path, **kw)

    def to_csv(self, path: str | os.PathLike, **kw) -> Path:
        from .export import write_csv

        return write_csv(self, path, **kw)

    def to_rttm(self, path: str | os.PathLike, **kw) -> Path:
        from .export import write_rttm

        return write_rttm(self, path, **kw)


# ----------------------------------------------------------------------------------------------
# scoring


def detect_speakers(video: str | os.PathLike, *, model: SyncNet | str | os.PathLike | None = None,
                    threshold: float | None = None, smooth_frames: int | None = None,
                    max_shift_frames: int = DEFAULT_MAX_SHIFT_FRAMES, search_frames: int = DEFAULT_SEARCH_FRAMES,
                    window_step: int = 1, exclusive: bool = True, decoder: str = DEFAULT_DECODER,
                    competition: float | None = None, detect_every: int = 3, detect_width: int = 512,
                    detector=None, device: str | None = None, progress: ProgressFn | None = None) -> SpeakerResult:
    """Find every face in ``video`` and say, frame by frame, which of them is speaking.

    ``model``: a :class:`~speakerid.model.SyncNet`, a checkpoint path, or None for the packaged
    weights. ``decoder``: ``"hmm"`` (scores are the posterior probability that the face speaks) or
    ``"threshold"`` (calibrated z-scores less the competition term). ``threshold``: score for
    "speaking" (None: the decoder's, 0.5 or 1.5). ``smooth_frames``: averaging window (25 fps
    frames, 10–100 sensible; None: the decoder's, 25 or 50). ``max_shift_frames``: how far each
    track's audio offset may differ from the video's (40 ms frames). ``window_step``: score every
    k-th window (faster, coarser). ``exclusive``: at most one face speaking per frame.
    ``competition``: ``"threshold"`` decoder only, share of the best other face's positive score
    taken off each face's score (None: 0.5 when exclusive, 0 otherwise). ``detect_every`` /
    ``detect_width``: face detector cadence and input width. ``detector``: a face detector or a
    backend's name (``"retinaface"``, the default, or ``"centerface"``).

    Raises :class:`~speakerid.errors.NoAudioStreamError` for a video without sound; a video
    without faces gives a result with no tracks.
    """
    from .faces import analyze_faces
    from .media import iter_audio, probe, require_audio, require_video
    from .progress import silent

    progress = progress or silent
    decoder_settings(decoder, threshold, smooth_frames, competition, exclusive=exclusive)  # before the long passes
    info = probe(video)
    require_video(info)
    require_audio(info)  # fail before the expensive face pass
    require_span(video, info.duration_s or 0.0, search_frames * 1000.0 / VIDEO_FPS, doing=SCORING, slack_s=0.05)
    from .model import VideoWindowEmbedder, resolve_model

    net = resolve_model(model, device=device)
    # stream: each track's mouth windows are embedded while the faces stage decodes, so the
    # crops (12 KB per frame per face) are never all held
    analysis = analyze_faces(video, detect_every=detect_every, detect_width=detect_width, detector=detector,
                             embed=VideoWindowEmbedder(net), embed_step=window_step,
                             crop_geometry=net.config.crop_geometry, progress=progress)
    # the audio streams too: decoded, turned into MFCC and embedded a piece at a time
    return score_faces(analysis, iter_audio(video, video_start_s=info.video_start_s), net,
                       threshold=threshold, smooth_frames=smooth_frames,
                       max_shift_frames=max_shift_frames, search_frames=search_frames,
                       window_step=window_step, exclusive=exclusive, decoder=decoder, competition=competition,
                       progress=progress)


def decoder_settings(decoder: str, threshold: float | None = None, smooth_frames: int | None = None,
                     competition: float | None = None, *, exclusive: bool = True) -> tuple[float, int, float]:
    """``(threshold, smooth_frames, competition)`` for ``decoder``, the decoder's defaults where
    None; ValueError naming the problem for an unknown decoder or a competition it does not take."""
    if decoder not in DECODERS:
        raise InvalidSettingError(f"decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
    defaults = DECODER_DEFAULTS[decoder]
    threshold = float(defaults["threshold"] if threshold is None else threshold)
    smooth_frames = max(1, int(defaults["smooth_frames"] if smooth_frames is None else smooth_frames))
    if decoder == "hmm":
        if competition:
            raise InvalidSettingError("competition applies to the 'threshold' decoder; the 'hmm' decoder's faces "
                             "compete through its states")
        competition = 0.0
    elif competition is None:
        competition = DEFAULT_COMPETITION if exclusive else 0.0
    if not 0.0 <= competition < 1.0:
        raise InvalidSettingError(f"competition must be in [0, 1), got {competition}")
    return threshold, smooth_frames, float(competition)


def _box_sums(x: np.ndarray, length: int, lead: int) -> np.ndarray:
    """``y[t] = x[t − lead] + … + x[t − lead + length − 1]`` along axis 0 (zeros outside)."""
    pad = [(lead + 1, length - lead - 1)] + [(0, 0)] * (x.ndim - 1)
    cs = np.cumsum(np.pad(x, pad), axis=0)
    return cs[length:] - cs[:-length]


def _nan_moving_mean(x: np.ndarray, width: int) -> np.ndarray:
    """Centred, triangle-weighted moving mean along axis 0 over ``width`` frames, ignoring NaN;
    NaN where the window holds no value.

    The weights fall linearly from the centre (a box mean applied twice, two boxes of about
    ``width / 2`` frames). Half a second from the edge of a speaking turn, a flat 2 s mean still
    carries a quarter of the other side's evidence, this one an eighth: fewer false labels in
    pauses and at turn changes, while a frame's score still draws on ``width`` frames
    (docs/speakers.md).
    """
    x = np.asarray(x, np.float64)
    if width <= 1 or x.shape[0] == 0:
        return x.copy()
    valid = np.isfinite(x)
    h = width // 2
    a = (width + 1) // 2
    b = width + 1 - a  # the two boxes together reach h frames back and width − h − 1 ahead
    la = a // 2
    # the first box's sums are needed a window beyond the ends too: work on a padded copy
    pad = [(width, width)] + [(0, 0)] * (x.ndim - 1)
    keep = slice(width, width + x.shape[0])
    s = _box_sums(_box_sums(np.pad(np.where(valid, x, 0.0), pad), a, la), b, h - la)[keep]
    n = _box_sums(_box_sums(np.pad(valid.astype(np.float64), pad), a, la), b, h - la)[keep]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 1e-9, s / np.maximum(n, 1e-9), np.nan)


class _RunningStats:
    """Count, mean and standard deviation of the finite values of arrays added one by one
    (Chan et al.'s pairwise update: as exact as one pass over all of them)."""

    def __init__(self):
        self.n = 0
        self.mean = 0.0
        self._m2 = 0.0

    def add(self, x: np.ndarray) -> None:
        x = x[np.isfinite(x)]
        if x.size == 0:
            return
        m = float(np.mean(x))
        m2 = float(np.sum((x - m) ** 2))
        n = self.n + x.size
        d = m - self.mean
        self.mean += d * x.size / n
        self._m2 += m2 + d * d * self.n * x.size / n
        self.n = n

    @property
    def std(self) -> float:
        return math.sqrt(self._m2 / self.n) if self.n else 0.0


@dataclass
class _TrackScores:
    starts: np.ndarray  # window start, model frame (global)
    conf: StoredRows | np.ndarray  # (n, n_shifts) median − distance, on disk
    weight: np.ndarray  # (n,) how confident each window is (peak of its profile)
    profile: np.ndarray  # (n_shifts,) confidence-weighted sum of the windows' profiles


BLOCK_ROWS = 4096
"""Windows, frames or audio columns handled at a time where a long video's tables are read
from disk: bounds the working memory whatever the video's length."""


def _audio_hubness(audio_emb: StoredRows | np.ndarray, video_embs: list, max_video: int = 2000) -> np.ndarray:
    """Mean distance of each audio window to (a sample of) all the video windows of the video.

    Some audio (silence, noise, a held vowel) lies closer to every mouth than other audio does;
    subtracting this from the distances leaves what is specific to one mouth at one time.
    """
    # the sample is taken across the tracks, each track's share read at once
    sizes = np.array([len(v) for v in video_embs], np.int64)
    total = int(sizes.sum())
    pick = np.linspace(0, total - 1, max_video).astype(np.int64) if total > max_video else np.arange(total)
    which = np.searchsorted(np.cumsum(sizes), pick, side="right")
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    v = np.concatenate([np.asarray(video_embs[w][pick[which == w] - first[w]])
                        for w in np.unique(which).tolist()]).astype(np.float64)
    v2 = (v ** 2).sum(1)[None, :]
    out = np.empty(len(audio_emb), np.float32)
    for b in range(0, len(audio_emb), 512):  # (512, 2000) float64 blocks: 8 MB
        a = np.asarray(audio_emb[b:b + 512], np.float64)
        d2 = (a ** 2).sum(1)[:, None] + v2 - 2.0 * a @ v.T
        out[b:b + 512] = np.sqrt(np.maximum(d2, 0.0)).mean(1)
    return out


def _window_profiles(starts: np.ndarray, v, audio_emb, hub: np.ndarray | None, n_cols: int, shifts: np.ndarray,
                     store: RowStore, block: int = 128) -> _TrackScores:
    """Distances of each window (video embeddings ``v``, model-frame ``starts``) to the audio at
    every shift → confidence profiles, written to ``store``. Rows are independent: done
    ``block`` windows at a time, reading just the audio rows those windows reach (the block's
    (block, shifts, D) float32 gathers are ~13 MB each)."""
    weight = np.empty(starts.size, np.float32)
    profile = np.zeros(shifts.size)
    rows = []
    for b in range(0, starts.size, block):
        st = starts[b:b + block]
        # audio window of video window k at shift s starts at column 4k + s; audio_emb holds
        # every SHIFT_STEP_COLS-th start column
        cols = COLS_PER_FRAME * st[:, None] + shifts[None, :]
        inside = (cols >= 0) & (cols + WINDOW_COLS <= n_cols)
        idx = np.clip(cols // SHIFT_STEP_COLS, 0, len(audio_emb) - 1)
        lo = int(idx.min())
        a = np.asarray(audio_emb[lo:int(idx.max()) + 1])[idx - lo].astype(np.float32)
        d = np.linalg.norm(a - np.asarray(v[b:b + block], np.float32)[:, None, :], axis=2)
        del a
        if hub is not None:
            d -= hub[idx]
        d[~inside] = np.nan
        with np.errstate(invalid="ignore"):
            med = np.nanmedian(np.where(inside.any(1, keepdims=True), d, 0.0), axis=1)
        c = med[:, None] - d
        peak = np.max(np.where(np.isfinite(c), c, -np.inf), axis=1)
        w = np.maximum(np.where(np.isfinite(peak), peak, 0.0), 0.0)
        weight[b:b + block] = w
        profile += np.nansum(c * w[:, None], axis=0)
        rows.append(store.append(c))
    conf = store.view(np.concatenate(rows)) if rows else np.zeros((0, shifts.size), np.float32)
    return _TrackScores(starts=starts, conf=conf, weight=weight, profile=profile)


def _segment_offsets(scored: list[_TrackScores], shifts: np.ndarray, segment_frames: int) -> list[float | None]:
    """The video's offset (ms) in each ``segment_frames``-long stretch, from the same weighted
    profiles as the whole video's, or None where the stretch's peak is not clear (under
    ``OWN_OFFSET_Z`` deviations above its far shifts' median)."""
    # a tail under half a segment joins the segment before it
    n_seg = max(1, int(round(max(int(s.starts.max()) for s in scored if s.starts.size) / segment_frames)))
    prof = np.zeros((n_seg, shifts.size))
    for s in scored:
        for i0, c in _blocks(s.conf):
            rows = np.asarray(c, np.float64)
            g = np.minimum(s.starts[i0:i0 + rows.shape[0]] // segment_frames, n_seg - 1)
            w = s.weight[i0:i0 + rows.shape[0], None]
            np.add.at(prof, g, np.nan_to_num(rows * w))
    ms = shifts * MS_PER_COL
    far = np.abs(ms) > 2 * OWN_OFFSET_MS
    out: list[float | None] = []
    for p in prof:
        j = int(np.argmax(p))
        sd = float(np.std(p[far])) if far.sum() >= 10 else 0.0
        clear = sd > 0 and (p[j] - float(np.median(p[far]))) / sd >= OWN_OFFSET_Z
        out.append(float(ms[j]) if clear else None)
    return out


def _track_shift(profile: np.ndarray, shifts: np.ndarray, near: np.ndarray) -> int:
    """Index of the shift a track is scored at: its profile's peak among the ``near`` shifts, or
    its peak within ±``OWN_OFFSET_MS`` where that one stands ``OWN_OFFSET_Z`` standard deviations
    above the track's profile at far shifts (chance structure rarely does; a face that is heard
    with an offset of its own does)."""
    j = int(np.flatnonzero(near)[np.argmax(profile[near])])
    ms = shifts * MS_PER_COL
    own = np.abs(ms) <= OWN_OFFSET_MS
    far = np.abs(ms) > 2 * OWN_OFFSET_MS
    if far.sum() >= 10 and own.any():
        ref = profile[far]
        sd = float(np.std(ref))
        k = int(np.flatnonzero(own)[np.argmax(profile[own])])
        # two close peaks (a bimodal profile) are not evidence enough to leave the band
        if sd > 0 and (profile[k] - float(np.median(ref))) / sd >= OWN_OFFSET_Z and profile[k] - profile[j] >= sd:
            return k
    return j


def _neighbour_mean(c: np.ndarray) -> np.ndarray:
    """Per window and shift, the mean of the shift and its two neighbours (ignoring NaN; fewer
    at the ends of the range)."""
    ok = np.isfinite(c)
    v = np.pad(np.where(ok, c, 0.0), ((0, 0), (1, 1)))
    n = np.pad(ok.astype(np.float64), ((0, 0), (1, 1)))
    s = v[:, :-2] + v[:, 1:-1] + v[:, 2:]
    k = n[:, :-2] + n[:, 1:-1] + n[:, 2:]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(k > 0, s / np.maximum(k, 1), np.nan)


def _add_null(stats: _RunningStats, s: _TrackScores, centre: np.ndarray, n_frames: int, far: np.ndarray,
              smooth_frames: int) -> None:
    """Add to ``stats`` the smoothed ±1-step score of one track at each of the ``far`` shifts
    (audio well away from its own offset: the null). The track's frames are taken
    ``BLOCK_ROWS`` at a time, each with the margin the moving mean reaches into, so the
    (frames × far shifts) series is never held whole."""
    margin = smooth_frames // 2 + 1
    for f0 in range(0, n_frames, BLOCK_ROWS):
        f1 = min(n_frames, f0 + BLOCK_ROWS)
        a, b = max(0, f0 - margin), min(n_frames, f1 + margin)
        i0, i1 = np.searchsorted(centre, [a, b])
        nul = np.full((b - a, far.size), np.nan)
        if i1 > i0:
            nul[centre[i0:i1] - a] = _neighbour_mean(np.asarray(s.conf[i0:i1], np.float64))[:, far]
        stats.add(_nan_moving_mean(nul, smooth_frames)[f0 - a:f1 - a])


def score_faces(analysis: FaceAnalysis, audio: np.ndarray | Iterable[np.ndarray], model: SyncNet, *,
                threshold: float | None = None, smooth_frames: int | None = None,
                max_shift_frames: int = DEFAULT_MAX_SHIFT_FRAMES, search_frames: int = DEFAULT_SEARCH_FRAMES,
                window_step: int = 1, audio_norm: bool = True, exclusive: bool = True,
                decoder: str = DEFAULT_DECODER, competition: float | None = None,
                progress: ProgressFn | None = None) -> SpeakerResult:
    """Score the face tracks of ``analysis`` (with mouth crops, or with window embeddings
    streamed by ``analyze_faces(embed=VideoWindowEmbedder(model))``) against ``audio`` (16 kHz
    mono, sample 0 = first video frame: one array, or consecutive pieces such as
    :func:`speakerid.media.iter_audio` gives). The scoring half of :func:`detect_speakers`."""
    from .model import Embedder
    from .progress import silent

    progress = progress or silent
    threshold, smooth_frames, competition = decoder_settings(decoder, threshold, smooth_frames, competition,
                                                             exclusive=exclusive)
    analysis.require_geometry(model.config.crop_geometry)
    tl = analysis.timeline
    info = analysis.info
    fps = float(info.fps) if info.fps else tl.source_fps
    fingerprint = str(getattr(model, "fingerprint", "") or "")
    result = SpeakerResult(fps=fps, num_frames=tl.num_source_frames, video=str(info.path), threshold=float(threshold),
                           smooth_frames=smooth_frames, exclusive=bool(exclusive), competition=float(competition),
                           decoder=decoder, model=fingerprint,
                           frame_times=np.asarray(tl.source_times, np.float64))
    tracks = analysis.tracks
    if not tracks:
        return result

    search = int(search_frames) * COLS_PER_FRAME
    search -= search % SHIFT_STEP_COLS
    shifts = np.arange(-search, search + 1, SHIFT_STEP_COLS)
    band = int(max_shift_frames) * COLS_PER_FRAME

    pieces = [audio] if isinstance(audio, np.ndarray) else audio
    del audio  # a caller's whole array is freed with the pieces once the MFCC exist
    emb = Embedder(model)
    # every SHIFT_STEP_COLS-th audio window, float16 rows on disk: neither the signal, the MFCC
    # nor the embeddings are ever held whole
    audio_emb, n_cols = emb.stored_sequence(iter_mfcc(pieces), step=SHIFT_STEP_COLS, dtype=np.float16,
                                            chunk=BLOCK_ROWS)
    del pieces
    require_span(info.path, min(tl.num_model_frames / VIDEO_FPS, n_cols / 100.0), search_frames * 1000.0 / VIDEO_FPS,
                 doing=SCORING)
    per_track: dict[int, _TrackScores | None] = {}
    if n_cols >= WINDOW_COLS:
        vid: dict[int, tuple[np.ndarray, Any]] = {}
        for i, t in enumerate(tracks):
            # streamed by the faces stage (float16, on disk), or embedded here from the track's crops
            local, v = t.window_embeddings_or(emb, step=window_step, lazy=True)
            if local.size:
                vid[t.id] = (t.model_frames[local], v)
            progress("scoring", i + 1, len(tracks))
        hub = _audio_hubness(audio_emb, [v for _, v in vid.values()]) if audio_norm and vid else None
        conf_store = RowStore(shifts.size, np.float32)
        for tid, (starts, v) in vid.items():
            per_track[tid] = _window_profiles(starts, v, audio_emb, hub, n_cols, shifts, conf_store)

    # 2. the video's offset: confidence-weighted sum of every window's profile
    scored = {tid: s for tid, s in per_track.items() if s is not None}
    diag: dict[str, Any] = {"shifts_ms": shifts * MS_PER_COL, "profiles": {}, "window_scores": {}, "null": None}
    if not scored:
        result.tracks = [_unscored(t) for t in tracks]
        result.diagnostics = diag
        return result
    total = np.zeros(shifts.size)
    for s in scored.values():
        total += s.profile
    g = int(np.argmax(total))
    result.offset_ms = float(shifts[g] * MS_PER_COL)
    diag["global_profile"] = total
    seg_offsets = _segment_offsets(list(scored.values()), shifts, int(round(DRIFT_SEGMENT_S * VIDEO_FPS)))
    diag["segment_offsets_ms"] = seg_offsets
    clear = [o for o in seg_offsets if o is not None]
    if len(clear) > 1 and max(clear) - min(clear) > DRIFT_TOLERANCE_MS:
        result.warnings.append(
            f"the audio offset drifts along the video ({', '.join('—' if o is None else f'{o:+.0f}' for o in seg_offsets)}"
            f" ms in {DRIFT_SEGMENT_S:.0f} s segments): scores assume one offset per face, so they are unreliable "
            f"where the offset is far from {result.offset_ms:+.0f} ms; measure it with `speakerid sync`")

    # 3. each track's own shift near the video's, its per-frame (model timeline) raw score
    # ... or near zero: with weak evidence (few, short or quiet speech turns) the video's peak
    # can land on chance structure far from the truth, and most videos are within ±200 ms
    near = (np.abs(shifts - shifts[g]) <= band) | (np.abs(shifts) <= band)
    raw_series: dict[int, np.ndarray] = {}
    null_stats = _RunningStats()
    chosen: dict[int, int] = {}
    for t in tracks:
        s = scored.get(t.id)
        if s is None:
            continue
        prof = s.profile
        diag["profiles"][t.id] = prof
        j = _track_shift(prof, shifts, near)
        chosen[t.id] = j
        # ±1 step around the chosen shift (the true offset may lie between grid points), as the
        # null below averages its far shifts
        lo = max(0, j - 1)
        w = np.concatenate([_neighbour_mean(np.asarray(c[:, lo:j + 2], np.float64))[:, j - lo]
                            for _, c in _blocks(s.conf)] or [np.zeros(0)])
        m0 = int(t.model_frames[0])
        series = np.full(t.model_frames.size, np.nan)
        centre = s.starts - m0 + WINDOW_FRAMES // 2
        series[centre] = w
        raw_series[t.id] = series
        diag["window_scores"][t.id] = (s.starts + WINDOW_FRAMES // 2, w.astype(np.float32))
        # null: the same statistic with the audio shifted well away from this track's offset
        far = np.flatnonzero(np.abs(shifts - shifts[j]) > band)
        _add_null(null_stats, s, centre, t.model_frames.size, far, smooth_frames)

    # 4. calibration against the mismatched-audio null of this video
    if null_stats.n >= 10:
        mu, sd = null_stats.mean, null_stats.std
    else:  # too short to tell: fall back on the spread of the raw scores
        allw = np.concatenate([v[np.isfinite(v)] for v in raw_series.values()])
        mu, sd = 0.0, float(np.std(allw)) if allw.size > 1 else 1.0
    sd = max(sd, 1e-6)
    diag["null"] = (mu, sd)

    # 5. smooth, calibrate, label, map to source frames
    out = []
    for t in tracks:
        if t.id not in raw_series:
            out.append(_unscored(t))
            continue
        z = (_nan_moving_mean(raw_series[t.id], smooth_frames) - mu) / sd
        # track's source frames → its model frames (nearest in time, clipped to the track)
        k = tl.source_to_model(t.frames) - int(t.model_frames[0])
        k = np.clip(k, 0, t.model_frames.size - 1)
        zs = z[k].astype(np.float32)
        # frames the face was too small for stay unscored
        if t.scorable is not None:
            zs[~t.scorable[k]] = np.nan
        out.append(SpeakerTrack(id=t.id, frames=t.frames.copy(), boxes=t.boxes.copy(), scores=zs,
                                speaking=np.zeros(len(zs), bool), offset_ms=float(shifts[chosen[t.id]] * MS_PER_COL)))
    diag["calibrated"] = {t.id: t.scores.copy() for t in out}  # before the decoder
    if decoder == "hmm":
        scored_out = [t for t in out if t.offset_ms is not None]
        post = speaking_posteriors([t.frames for t in scored_out], [t.scores for t in scored_out],
                                   tl.num_source_frames, fps, exclusive=exclusive)
        for t, p in zip(scored_out, post, strict=True):
            t.scores = p
    elif competition > 0:
        _compete(out, tl.num_source_frames, competition)
    result.tracks = out
    result.diagnostics = diag
    result.relabel(threshold, exclusive=exclusive)
    return result


def _compete(tracks: list[SpeakerTrack], num_frames: int, beta: float) -> None:
    """``score_i − beta · max(0, best score of the other faces at the same frame)``, in place.

    Per frame the two highest scores are kept (not every face's), so this is linear in frames ×
    faces. Scores below zero never raise another face's score; NaN (unscored) faces neither take
    part nor change."""
    n = max(1, num_frames)
    top1 = np.full(n, -np.inf)
    top2 = np.full(n, -np.inf)
    for t in tracks:
        f = np.clip(np.asarray(t.frames, np.int64), 0, n - 1)
        v = np.where(np.isfinite(t.scores), np.asarray(t.scores, np.float64), -np.inf)
        # a track holds each frame once, so the updates of one track do not collide
        top2[f] = np.maximum(top2[f], np.minimum(top1[f], v))
        top1[f] = np.maximum(top1[f], v)
    for t in tracks:
        f = np.clip(np.asarray(t.frames, np.int64), 0, n - 1)
        s = np.asarray(t.scores, np.float64)
        # the best other face: the runner-up where this face holds the top score
        other = np.where(s >= top1[f], top2[f], top1[f])
        t.scores = (s - beta * np.maximum(other, 0.0)).astype(np.float32)


def _blocks(rows):
    """``(first, block)`` of consecutive rows of an array or of rows on disk."""
    for b in range(0, len(rows), BLOCK_ROWS):
        yield b, rows[b:b + BLOCK_ROWS]


def label_tracks(tracks: list[SpeakerTrack], threshold: float, num_frames: int, *, exclusive: bool = True,
                 min_run: int = 1) -> None:
    """Set each track's ``speaking`` from its scores: ``score >= threshold``; with ``exclusive``,
    only the highest-scoring face of a frame can be speaking (one voice at a time). Runs of
    speaking frames shorter than ``min_run`` frames are dropped (hand-over flicker)."""
    best = np.full(max(1, num_frames), -np.inf)
    if exclusive:
        for t in tracks:
            s = np.where(np.isfinite(t.scores), t.scores, -np.inf)
            f = np.asarray(t.frames, np.int64)
            ok = (f >= 0) & (f < best.size)
            np.maximum.at(best, f[ok], s[ok])
    for t in tracks:
        s = np.asarray(t.scores, np.float64)
        sp = np.isfinite(s) & (s >= threshold)
        if exclusive:
            f = np.clip(np.asarray(t.frames, np.int64), 0, best.size - 1)
            sp &= s >= best[f]
        if min_run > 1 and sp.any():
            edges = np.diff(np.concatenate([[0], sp.astype(np.int8), [0]]))
            for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
                if b - a < min_run:
                    sp[a:b] = False
        t.speaking = sp


def _unscored(t) -> SpeakerTrack:
    n = len(t.frames)
    return SpeakerTrack(id=t.id, frames=t.frames.copy(), boxes=t.boxes.copy(), scores=np.full(n, np.nan, np.float32),
                        speaking=np.zeros(n, bool), offset_ms=None)


def _segments(tracks: list[SpeakerTrack], source_times: np.ndarray, fps: float) -> list[Segment]:
    """Runs of speaking frames → segments [start of first frame, end of last frame) in seconds."""
    n = source_times.size
    frame_end = np.empty(n)
    frame_end[:-1] = source_times[1:]
    frame_end[-1] = source_times[-1] + (1.0 / fps if fps else 0.04)
    segs = []
    for t in tracks:
        sp = np.asarray(t.speaking, bool)
        if not sp.any():
            continue
        edges = np.diff(np.concatenate([[0], sp.astype(np.int8), [0]]))
        for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
            f0, f1 = int(t.frames[a]), int(t.frames[b - 1])
            segs.append(Segment(track=t.id, start=float(source_times[f0]), end=float(frame_end[f1])))
    segs.sort(key=lambda s: (s.start, s.track))
    return segs
