"""Lip-sync offset: measure how far a video's audio is out of step with its speaker's lips, and fix it.

Sign convention (everywhere in speakerid): ``offset_ms = t_audio − t_video``.

* **Negative: the audio leads** — a sound is heard *before* the mouth makes it.
* **Positive: the audio lags** — the sound comes after the mouth movement.

Worked example: the speaker closes the lips for a "p" at 2.000 s of video, and the "p" is heard
at 1.700 s. ``offset_ms = 1.700 − 2.000 = −300`` ms: the audio leads by 300 ms. The measurement
finds it by matching the video window at 2.0 s with audio taken 30 MFCC columns (300 ms)
*earlier*, a shift of −30 columns. :func:`repair_sync` then delays the audio by 300 ms.

Method (``measure_sync``):

1. Faces are found, tracked and mouth-cropped on the 25 fps model timeline
   (:func:`speakerid.faces.analyze_faces`).
2. Every 0.2 s video window of a track (5 frames, one per 40 ms) is embedded once, and the audio
   window starting at every MFCC column (every 10 ms) is embedded once.
3. For each video window, the audio is slid over ``±search_ms`` in 10 ms steps and the distance
   taken at each shift: one *distance curve* per window. Window offset = arg-min; window
   confidence = median − min of its curve (the SyncNet paper's definition).
4. The clip offset comes from the confidence-weighted average of the windows' curves (each
   first centred on its own median), windows under a confidence floor dropped, and the arg-min
   of that curve refined between steps with a parabola. Windows without lip-sync evidence
   (silence, a closed mouth) have flat curves and low confidence, so they neither vote nor
   drag the result. The clip confidence is median − min of the averaged curve.
5. With several faces, every track is measured; at each moment the face with the highest
   lip-sync confidence (averaged over ~1 s) is taken as the speaker and only its windows enter
   the clip aggregate, so turn-taking and cuts are followed; the result names the tracks.
6. Drift: the same aggregate per segment (default 10 s); segments whose offsets differ by more
   than a tolerance flag the video (frame-rate mismatch, edits).

A clip without a face, without audible speech, or whose evidence is below the confidence
threshold gets ``offset_ms = None`` and a status that says why — never a made-up offset.
"""
from __future__ import annotations

import json
import math
import os
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .errors import (InvalidSettingError, NoFaceError, NoSyncEvidenceError, OutputVerificationError, SyncDriftError,
                     TooShortError)
from .features import (
    COLS_PER_FRAME,
    MS_PER_COL,
    VIDEO_FPS,
    WINDOW_COLS,
    WINDOW_FRAMES,
    compute_mfcc,
    min_duration_s,  # noqa: F401  (public here: the shortest clip a search range takes)
    require_span,
)
from .progress import ProgressFn, silent
from .reliability import RELIABLE_P, p_correct, sync_evidence, unreliable_reasons
from .smoothing import centred_mean

PathLike = str | os.PathLike

DEFAULT_SEARCH_MS = 1000
"""Offsets are searched within ±this many ms."""
STEP_MS = MS_PER_COL
"""Finest shift step: one MFCC column (10 ms)."""
DEFAULT_SEGMENT_S = 10.0
DRIFT_TOLERANCE_MS = 80.0
"""Segments whose offsets differ by more than this (two video frames) flag drift."""
MIN_CLIP_CONFIDENCE = 0.05
"""Below this clip confidence there is no usable lip-sync evidence: the offset is not reported.
(Distances lie in [0, 2]; see docs/sync.md for how the threshold was set.)"""
WINDOW_FLOOR_FRACTION = 0.5
"""Windows whose confidence is below this fraction of the clip's typical *speaking* window
(the 90th percentile) are dropped from the average."""
SILENCE_DBFS = -55.0
"""Audio whose loudest 0.2 s stays below this level (dB full scale) holds no speech."""
SPEAKER_SMOOTH_S = 1.0
"""With several faces, window confidences are averaged over this long before picking the
speaker at each moment (blinks, pauses and single bad windows do not switch it)."""
DEFAULT_AGGREGATE = "curve_norm"
"""How windows are combined by default (chosen on the benchmark among the options of
:func:`aggregate_windows`; see docs/sync.md)."""
AGGREGATES = ("curve", "curve_uniform", "curve_norm", "weighted", "filtered", "median", "mean")


# --------------------------------------------------------------------------------------------
# results


@dataclass
class SyncWindows:
    """Per-window table of the measured track(s). Times are seconds from the first video frame
    of the source; frames are the source's own frame numbers."""

    track_id: np.ndarray
    source_frame: np.ndarray
    """Source frame shown at the window's first model frame."""
    start_s: np.ndarray
    end_s: np.ndarray
    offset_ms: np.ndarray
    """Arg-min of the window's distance curve (10 ms resolution)."""
    confidence: np.ndarray
    """Median − min of the window's distance curve."""
    min_distance: np.ndarray
    weight: np.ndarray
    """Weight in the clip's aggregate (0 = dropped: too little confidence)."""

    def __len__(self) -> int:
        return int(self.start_s.size)

    def select(self, mask: np.ndarray) -> SyncWindows:
        return SyncWindows(**{k: v[mask] for k, v in self.__dict__.items()})

    def to_rows(self) -> list[dict]:
        rows = []
        for i in range(len(self)):
            rows.append({
                "track_id": int(self.track_id[i]), "source_frame": int(self.source_frame[i]),
                "start_s": round(float(self.start_s[i]), 4), "end_s": round(float(self.end_s[i]), 4),
                "offset_ms": float(self.offset_ms[i]), "confidence": round(float(self.confidence[i]), 4),
                "min_distance": round(float(self.min_distance[i]), 4), "weight": round(float(self.weight[i]), 4),
            })
        return rows


@dataclass
class SyncSegment:
    """The clip aggregate over one stretch of time (for drift)."""

    start_s: float
    end_s: float
    offset_ms: float | None
    confidence: float
    num_windows: int

    def to_dict(self) -> dict:
        return {"start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3),
                "offset_ms": None if self.offset_ms is None else round(self.offset_ms, 1),
                "confidence": round(self.confidence, 4), "num_windows": self.num_windows}


@dataclass
class TrackSync:
    """How one face track scored: its own aggregate offset and confidence."""

    track_id: int
    shot: int
    start_s: float
    end_s: float
    num_windows: int
    offset_ms: float | None
    confidence: float
    used: bool = False
    """Its windows make up the result (the speaker of its shot)."""

    def to_dict(self) -> dict:
        return {"track_id": self.track_id, "shot": self.shot, "start_s": round(self.start_s, 3),
                "end_s": round(self.end_s, 3), "num_windows": self.num_windows,
                "offset_ms": None if self.offset_ms is None else round(self.offset_ms, 1),
                "confidence": round(self.confidence, 4), "used": self.used}


@dataclass
class SyncResult:
    """The measured lip-sync offset of one video.

    ``offset_ms``: ``t_audio − t_video`` (negative = audio leads), or ``None`` when the video
    gives no lip-sync evidence (``status`` says why). ``confidence``: median − min of the
    aggregated distance curve. ``candidate_ms``: the aggregated curve's arg-min even when it is
    too weak to report (for diagnosis only). ``shifts_ms``/``curve``: the aggregated curve;
    ``window_curves``: one row per window of ``windows`` (NaN where the shifted audio falls
    outside the file).
    """

    video: str
    status: str
    """"ok", "low_confidence", "no_speech" or "no_face"."""
    message: str
    offset_ms: float | None
    confidence: float
    candidate_ms: float | None
    track_id: int | None
    """The face track measured (with several speakers, the one that contributed most)."""
    track_ids: list[int]
    tracks: list[TrackSync]
    search_ms: float
    step_ms: float
    aggregate: str
    shifts_ms: np.ndarray
    curve: np.ndarray
    windows: SyncWindows
    window_curves: np.ndarray
    segments: list[SyncSegment]
    drift: bool
    drift_range_ms: float
    duration_s: float
    source_fps: float
    model: str
    """Fingerprint of the SyncNet weights used."""
    timings: dict = field(default_factory=dict)
    p_correct: float | None = None
    """Probability that ``offset_ms`` is within ±40 ms of the truth (a source's own offset
    aside), calibrated on shifted clips of held-apart people (:mod:`speakerid.reliability`);
    None without an offset."""
    reliable: bool = False
    """``p_correct`` reaches :data:`~speakerid.reliability.RELIABLE_P`: an answer to act on.
    An offset that is not reliable is a best guess; ``unreliable_because`` says why."""
    unreliable_because: list[str] = field(default_factory=list)
    evidence: dict = field(default_factory=dict)
    """The features ``p_correct`` is computed from (confidence, second_peak, windows, span)."""

    @property
    def ok(self) -> bool:
        return self.offset_ms is not None

    @property
    def at_search_edge(self) -> bool:
        """The offset lies within two steps of the end of the search range: the true offset
        may be beyond it (measure again with a larger ``search_ms``)."""
        return self.offset_ms is not None and abs(self.offset_ms) >= self.search_ms - 2 * self.step_ms

    def describe(self) -> str:
        """One line a person can read: what was found, with the sign spelled out."""
        if self.offset_ms is None:
            return f"{self.video}: no offset ({self.status}): {self.message}"
        o = self.offset_ms
        if abs(o) < STEP_MS / 2:
            rel = "in sync"
        else:
            rel = f"audio {'leads' if o < 0 else 'lags'} the video by {abs(o):.0f} ms"
        trust = ("reliable" if self.reliable else "NOT RELIABLE, a best guess: " + "; ".join(self.unreliable_because))
        if self.p_correct is not None:
            trust += f" (p_correct {self.p_correct:.2f})"
        return (f"{self.video}: offset {o:+.0f} ms ({rel}), confidence {self.confidence:.3f}, {trust}, "
                f"face track {self.track_id}" + (" — DRIFT: offsets differ by "
                                                 f"{self.drift_range_ms:.0f} ms between segments" if self.drift else "")
                + (f" — at the edge of the ±{self.search_ms:.0f} ms search: the offset may be larger, measure "
                   "again with a larger search" if self.at_search_edge else ""))

    def to_dict(self, *, curves: bool = False, windows: bool = True) -> dict:
        """A JSON-ready dict. ``curves`` adds every window's distance curve (large)."""
        d: dict[str, Any] = {
            "video": self.video, "status": self.status, "message": self.message,
            "offset_ms": None if self.offset_ms is None else round(self.offset_ms, 1),
            "confidence": round(self.confidence, 4),
            "p_correct": None if self.p_correct is None else round(self.p_correct, 4),
            "reliable": self.reliable, "unreliable_because": list(self.unreliable_because),
            "evidence": self.evidence,
            "candidate_ms": None if self.candidate_ms is None else round(self.candidate_ms, 1),
            "convention": "offset_ms = t_audio - t_video; negative = audio leads the video",
            "track_id": self.track_id, "track_ids": self.track_ids,
            "tracks": [t.to_dict() for t in self.tracks],
            "search_ms": self.search_ms, "step_ms": self.step_ms, "aggregate": self.aggregate,
            "at_search_edge": self.at_search_edge,
            "drift": self.drift, "drift_range_ms": round(self.drift_range_ms, 1),
            "segments": [s.to_dict() for s in self.segments],
            "duration_s": round(self.duration_s, 3), "source_fps": round(self.source_fps, 4),
            "model": self.model, "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "shifts_ms": self.shifts_ms.tolist(),
            "curve": [None if not np.isfinite(x) else round(float(x), 5) for x in self.curve],
        }
        if windows:
            d["windows"] = self.windows.to_rows()
        if curves:
            d["window_curves"] = [[None if not np.isfinite(x) else round(float(x), 4) for x in row]
                                  for row in self.window_curves]
        return d

    def to_json(self, path: PathLike | None = None, *, curves: bool = False, indent: int | None = 1,
                overwrite: bool = True) -> str:
        """The result as JSON text; also written (atomically) to ``path`` when given."""
        text = json.dumps(self.to_dict(curves=curves), indent=indent)
        if path is not None:
            from .media import atomic_output

            with atomic_output(path, protect=[self.video], overwrite=overwrite) as tmp:
                Path(tmp).write_text(text + "\n")
        return text


@dataclass
class RepairResult:
    """What :func:`repair_sync` wrote and how well it worked."""

    input: str
    output: str
    applied_offset_ms: float
    """The offset that was undone (``t_audio − t_video`` of the input)."""
    measured: SyncResult | None
    """The input's measurement (None when the offset was given)."""
    residual: SyncResult | None
    """The output re-measured (None when ``remeasure=False``)."""
    video_copied: bool
    """The video stream was copied bit for bit (remux), not re-encoded."""

    @property
    def residual_ms(self) -> float | None:
        return None if self.residual is None else self.residual.offset_ms

    def to_dict(self) -> dict:
        return {"input": self.input, "output": self.output, "applied_offset_ms": round(self.applied_offset_ms, 1),
                "video_copied": self.video_copied,
                "residual_ms": None if self.residual_ms is None else round(self.residual_ms, 1),
                "residual_confidence": None if self.residual is None else round(self.residual.confidence, 4),
                "measured": None if self.measured is None else self.measured.to_dict(windows=False),
                "residual": None if self.residual is None else self.residual.to_dict(windows=False)}


# --------------------------------------------------------------------------------------------
# the computation


@dataclass
class _TrackWindows:
    track: Any  # FaceTrack
    starts: np.ndarray   # model frame of each window's first frame
    emb: np.ndarray      # (n, D) video embeddings


@dataclass
class _Prepared:
    video: str
    analysis: Any        # FaceAnalysis
    tracks: list[_TrackWindows]
    model: Any
    seconds: float
    faces_seconds: float = 0.0
    """Decoding, face detection, tracking and mouth crops."""
    embed_seconds: float = 0.0
    """Video embeddings."""
    embed_cpu_seconds: float = 0.0


@dataclass
class _Audio:
    """A video's audio as the search needs it: the embedding of the window at every MFCC
    column (``(T − 19, D)``, in memory or on disk), how many 16 kHz samples there were, and
    whether any 0.2 s of them reached SILENCE_DBFS."""
    emb: Any             # np.ndarray or StoredRows
    num_samples: int
    silent: bool
    seconds: float = 0.0
    """Decoding, MFCC and embedding."""
    streamed: bool = False
    """Embedded piece by piece while decoding (the pass reported its own progress)."""


class _LoudnessTap:
    """Passes audio pieces through, counting samples and keeping the loudest 0.2 s block's RMS
    (blocks aligned at sample 0, so any cut into pieces gives the same answer): the silence rule
    of :func:`measure_sync`, for a whole signal too (:func:`_silent`)."""

    HOP = 3200

    def __init__(self, pieces, on_seconds=None):
        self._pieces = pieces
        self._on_seconds = on_seconds  # called with the seconds passed, every 10 s of audio
        self.num_samples = 0
        self.max_rms = 0.0
        self._rest = np.zeros(0, np.float32)

    def __iter__(self):
        for x in self._pieces:
            before = self.num_samples // 160_000
            self.num_samples += int(x.size)
            if self._on_seconds is not None and self.num_samples // 160_000 > before:
                self._on_seconds(self.num_samples / 16000.0)
            buf = np.concatenate([self._rest, np.asarray(x, np.float32).reshape(-1)])
            n = buf.size // self.HOP
            if n:
                blk = buf[: n * self.HOP].reshape(n, self.HOP).astype(np.float64)
                self.max_rms = max(self.max_rms, float(np.sqrt(np.mean(blk ** 2, axis=1)).max()))
            self._rest = buf[n * self.HOP:]
            yield x

    @property
    def silent(self) -> bool:
        return bool(self.num_samples < self.HOP or 20 * np.log10(self.max_rms + 1e-12) < SILENCE_DBFS)


def _audio_in_memory(model, audio: np.ndarray, audio_emb: np.ndarray | None = None) -> _Audio:
    emb = audio_embeddings(model, compute_mfcc(audio)) if audio_emb is None else audio_emb
    return _Audio(emb=emb, num_samples=int(audio.size), silent=_silent(audio))


def _stream_audio(video: PathLike, model, progress: ProgressFn = silent, duration_s: float | None = None) -> _Audio:
    """Decode, turn into MFCC and embed the audio of ``video`` a piece at a time; the
    embeddings (float32, so the numbers are those of the in-memory path) go to a temporary
    file, so a long video's audio is never held whole. Progress: seconds decoded of
    ``duration_s`` (the container's figure)."""
    from .features import iter_mfcc
    from .media import iter_audio
    from .model import Embedder

    t0 = time.perf_counter()
    total = max(1, int(math.ceil(duration_s or 0.0)))
    tap = _LoudnessTap(iter_audio(video), on_seconds=lambda sec: progress("audio", min(int(sec), total), total))
    emb, _T = Embedder(model).stored_sequence(iter_mfcc(tap), step=1, dtype=np.float32)
    progress("audio", total, total)
    return _Audio(emb=emb, num_samples=tap.num_samples, silent=tap.silent, seconds=time.perf_counter() - t0,
                  streamed=True)


def _prepare_video(video: PathLike, model, *, analysis=None, progress: ProgressFn = silent,
                   detect_every: int = 3, detector=None) -> _Prepared:
    """Faces and one video embedding per 0.2 s window of every track: embedded while the faces
    stage decodes (streaming; the mouth crops are not kept), or from the crops of a given
    ``analysis``."""
    from .faces import analyze_faces
    from .model import Embedder, VideoWindowEmbedder

    t0 = time.perf_counter()
    c0 = time.process_time()
    streamed = VideoWindowEmbedder(model)
    if analysis is None:
        analysis = analyze_faces(video, detect_every=detect_every, detector=detector, embed=streamed,
                                 crop_geometry=model.config.crop_geometry, progress=progress)
    analysis.require_geometry(model.config.crop_geometry)
    # embedding time spent inside the faces pass counts as embedding, not as faces
    t_faces = time.perf_counter() - t0 - streamed.seconds
    c_faces = time.process_time() - c0 - streamed.cpu_seconds
    emb = Embedder(model)
    out = []
    for tr in analysis.tracks:
        pos, v = tr.window_embeddings_or(emb)
        if pos.size == 0:
            continue
        out.append(_TrackWindows(track=tr, starts=tr.model_frames[pos].astype(np.int64), emb=v))
        progress("embed video", len(out), len(analysis.tracks))
    t_all = time.perf_counter() - t0
    return _Prepared(video=str(video), analysis=analysis, tracks=out, model=model, seconds=t_all,
                     faces_seconds=t_faces, embed_seconds=t_all - t_faces,
                     embed_cpu_seconds=time.process_time() - c0 - c_faces)


def audio_embeddings(model, mfcc: np.ndarray) -> np.ndarray:
    """Embedding of the audio window starting at every MFCC column ``c`` (``(T − 19, D)``); a
    coarser search keeps only its own columns in :func:`window_curves` (``step_cols``)."""
    from .model import Embedder

    # the audio stream is fully convolutional along time: one pass gives every column
    return Embedder(model).sequence(mfcc)


def window_curves(starts: np.ndarray, video_emb, audio_emb, shifts: np.ndarray, chunk: int = 64,
                  step_cols: int = 1) -> np.ndarray:
    """Distances ``(n_windows, n_shifts)`` between each video window (model frame ``k``) and the
    audio window at column ``4 k + shift``; NaN where that audio window is outside the file, or
    (``step_cols`` > 1) where its column is not a multiple of ``step_cols``: a coarser search
    sees only its own columns. ``video_emb``/``audio_emb``: arrays or on-disk rows
    (:class:`~speakerid.rowstore.StoredRows`); each ``chunk`` of windows reads only the audio rows
    it reaches (64 windows: ~13 MB float32 gathers at 201 shifts)."""
    n, s = starts.size, shifts.size
    out = np.full((n, s), np.nan, np.float32)
    na = len(audio_emb)
    for b in range(0, n, chunk):
        k = starts[b:b + chunk]
        idx = COLS_PER_FRAME * k[:, None] + shifts[None, :]
        valid = (idx >= 0) & (idx < na)
        if step_cols > 1:
            valid &= idx % step_cols == 0
        if na == 0 or not valid.any():
            continue
        idx = np.clip(idx, 0, na - 1)
        lo = int(idx.min())
        a = np.asarray(audio_emb[lo:int(idx.max()) + 1], np.float32)[idx - lo]          # (c, S, D)
        d = np.linalg.norm(a - np.asarray(video_emb[b:b + chunk], np.float32)[:, None, :], axis=2)
        d[~valid] = np.nan
        out[b:b + chunk] = d
    return out


def centre_audio(curves: np.ndarray, starts: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Remove each audio position's own pull from the distances.

    Some audio (silence, breath, a steady vowel) lies close to — or far from — *every* mouth
    window; it then makes dips at whichever shifts bring it under the video, with or without
    sync. ``d(k, s) − mean over windows of the distance to the same audio column 4k + s`` keeps
    only how much better this video window fits that audio than the clip's windows do on average.
    """
    cols = COLS_PER_FRAME * starts[:, None] + shifts[None, :]
    valid = np.isfinite(curves)
    c0 = int(cols.min())
    idx = (cols - c0)[valid]
    n = int(cols.max()) - c0 + 1
    tot = np.bincount(idx, weights=curves[valid].astype(np.float64), minlength=n)
    cnt = np.bincount(idx, minlength=n)
    with np.errstate(all="ignore"):
        mean = tot / np.maximum(cnt, 1)
    out = np.full_like(curves, np.nan)
    out[valid] = curves[valid] - mean[idx]
    return out


def _window_stats(curves: np.ndarray, min_valid: float = 0.5):
    """Per-window arg-min index, confidence (median − min), min distance, usable mask."""
    valid = np.isfinite(curves)
    nvalid = valid.sum(1)
    usable = nvalid >= max(3, int(math.ceil(min_valid * curves.shape[1])))
    big = np.where(valid, curves, np.inf)
    arg = np.argmin(big, axis=1) if curves.size else np.zeros(0, np.int64)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # windows with no valid shift at all: NaN, not usable
        mn = np.nanmin(np.where(valid, curves, np.nan), axis=1) if curves.size else np.zeros(0)
        med = np.nanmedian(np.where(valid, curves, np.nan), axis=1) if curves.size else np.zeros(0)
    conf = np.where(usable, med - mn, 0.0)
    return arg, conf.astype(np.float64), mn, usable


def _window_weights(conf: np.ndarray, usable: np.ndarray, floor_fraction: float) -> np.ndarray:
    """Confidence weights; windows under ``floor_fraction`` × the 90th-percentile confidence
    (a typical clearly-speaking window of this clip) get weight 0."""
    w = np.where(usable, conf, 0.0)
    if not np.any(w > 0):
        return w
    ref = float(np.percentile(w[usable], 90))
    return np.where(w >= floor_fraction * ref, w, 0.0)


def _parabolic(curve: np.ndarray, i: int) -> float:
    """Sub-step position of a minimum from its two neighbours (in steps, within ±0.5)."""
    if i <= 0 or i >= curve.size - 1:
        return 0.0
    a, b, c = curve[i - 1], curve[i], curve[i + 1]
    if not (np.isfinite(a) and np.isfinite(c)):
        return 0.0
    den = a - 2 * b + c
    if den <= 1e-12:
        return 0.0
    return float(np.clip(0.5 * (a - c) / den, -0.5, 0.5))


@dataclass
class _Agg:
    offset_ms: float | None
    confidence: float
    curve: np.ndarray
    weights: np.ndarray


def aggregate_windows(curves: np.ndarray, shifts_ms: np.ndarray, *, method: str = DEFAULT_AGGREGATE,
                      floor_fraction: float = WINDOW_FLOOR_FRACTION, refine: bool = True,
                      min_coverage: float = 0.25) -> _Agg:
    """Combine per-window distance curves into one clip offset (ms) and confidence.

    Windows whose confidence is under ``floor_fraction`` × the clip's 90th-percentile window
    confidence are dropped first (silence, a closed mouth). Each kept window's curve is centred
    on its own median. ``method``:

    * "curve" — confidence-weighted mean of the kept curves; arg-min, refined between steps with
      a parabola (a window's pull grows with the square of its confidence);
    * "curve_uniform" — the same with equal weights (pull ∝ confidence);
    * "curve_norm" — each curve scaled to unit depth first, equal weights (every kept window
      pulls the same);
    * "weighted" — confidence-weighted mean of the kept windows' arg-mins;
    * "filtered" — plain mean of the kept windows' arg-mins;
    * "median" — confidence-weighted median of the kept windows' arg-mins;
    * "mean" — plain mean of every window's arg-min (the naive baseline).

    The clip confidence is the same for every method: how far below its median the equal-weight
    mean curve of the kept windows lies at the chosen offset (distance units, like a window's).
    ``curve`` in the result is the curve the method searched (the equal-weight one for votes).
    """
    if method not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {AGGREGATES}, got {method!r}")
    with warnings.catch_warnings():
        # NaN-aware reductions over shifts no window reaches are expected: they stay NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return _aggregate(curves, shifts_ms, method, floor_fraction, refine, min_coverage)


def _aggregate(curves: np.ndarray, shifts_ms: np.ndarray, method: str, floor_fraction: float, refine: bool,
               min_coverage: float) -> _Agg:
    n, s = curves.shape
    empty = _Agg(None, 0.0, np.full(s, np.nan), np.zeros(n))
    if n == 0:
        return empty
    arg, conf, _mn, usable = _window_stats(curves)
    w = _window_weights(conf, usable, floor_fraction)
    if not np.any(w > 0):
        return replace(empty, weights=w)
    valid = np.isfinite(curves)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(np.where(valid, curves, np.nan), axis=1)
    med = np.nan_to_num(med)
    centred = np.where(valid, curves - med[:, None], 0.0)

    def mean_curve(weights: np.ndarray, rows: np.ndarray) -> np.ndarray:
        cover = (weights[:, None] * valid).sum(0)
        with np.errstate(all="ignore"):
            c = (weights[:, None] * rows).sum(0) / cover
        c[cover < min_coverage * weights.sum()] = np.nan  # shifts seen by too few windows are not searched
        return c

    keep = (w > 0).astype(np.float64)
    flat = mean_curve(keep, centred)
    if not np.any(np.isfinite(flat)):
        return replace(empty, weights=w)
    if method == "curve":
        curve = mean_curve(w, centred)
    elif method == "curve_norm":
        depth = np.where(w > 0, conf, 1.0)
        curve = mean_curve(keep, centred / depth[:, None])
    else:
        curve = flat
    step = float(shifts_ms[1] - shifts_ms[0]) if shifts_ms.size > 1 else float(STEP_MS)
    if method.startswith("curve"):
        i = int(np.nanargmin(curve))
        off = float(shifts_ms[i]) + (_parabolic(curve, i) * step if refine else 0.0)
    else:
        offs = shifts_ms[arg].astype(np.float64)
        k = w > 0
        if method == "weighted":
            off = float(np.sum(w[k] * offs[k]) / np.sum(w[k]))
        elif method == "filtered":
            off = float(np.mean(offs[k]))
        elif method == "median":
            o = np.argsort(offs[k])
            cw = np.cumsum(w[k][o])
            off = float(offs[k][o][np.searchsorted(cw, cw[-1] / 2)])
        else:  # mean
            off = float(np.mean(offs[usable])) if np.any(usable) else float(np.mean(offs))
        i = int(np.argmin(np.abs(shifts_ms - off)))
    at = flat[i] if np.isfinite(flat[i]) else np.nanmin(flat)
    conf_clip = float(np.nanmedian(flat) - at)
    return _Agg(off, conf_clip, curve, w)


def _speaker_windows(per_track, num_frames: int, smooth_windows: int) -> list[np.ndarray]:
    """Per track, a mask of the windows it owns: at each window start, the track with the highest
    moving-average window confidence among the tracks present there."""
    if len(per_track) == 1:
        return [np.ones(per_track[0][0].starts.size, bool)]
    n_t = len(per_track)
    sm = np.full((n_t, num_frames + 1), -np.inf)
    for j, (tw, c, _agg) in enumerate(per_track):
        # moving average over the track's own windows (consecutive model frames within a track)
        sm[j, np.clip(tw.starts, 0, num_frames)] = centred_mean(_window_stats(c)[1], smooth_windows)
    owner = np.argmax(sm, axis=0)
    return [owner[np.clip(tw.starts, 0, num_frames)] == j for j, (tw, _c, _a) in enumerate(per_track)]


def _silent(audio: np.ndarray) -> bool:
    """No 0.2 s stretch of the audio reaches SILENCE_DBFS (:class:`_LoudnessTap` over one piece)."""
    tap = _LoudnessTap([audio])
    for _ in tap:
        pass
    return tap.silent


def _measure(prep: _Prepared, audio: np.ndarray | _Audio, *, search_ms: float, step_ms: float, aggregate: str,
             segment_s: float, drift_tolerance_ms: float, min_confidence: float, track: int | None,
             refine: bool, video_name: str, t_audio: float, progress: ProgressFn,
             audio_emb: np.ndarray | None = None) -> SyncResult:
    t0 = time.perf_counter()
    c0 = time.process_time()
    model = prep.model
    if not isinstance(audio, _Audio):
        audio = _audio_in_memory(model, audio, audio_emb)
    a = prep.analysis
    tl = a.timeline
    step_cols = max(1, int(round(step_ms / MS_PER_COL)))
    max_cols = int(round(search_ms / MS_PER_COL)) // step_cols * step_cols
    shifts = np.arange(-max_cols, max_cols + 1, step_cols, dtype=np.int64)
    shifts_ms = shifts.astype(np.float64) * MS_PER_COL
    duration = min(tl.num_model_frames / VIDEO_FPS, audio.num_samples / 16000.0)
    fingerprint = getattr(model, "fingerprint", "") or "unpackaged"
    base = dict(video=video_name, search_ms=float(search_ms), step_ms=float(step_cols * MS_PER_COL), aggregate=aggregate,
                shifts_ms=shifts_ms, duration_s=duration, source_fps=float(a.info.fps or tl.source_fps), model=fingerprint)

    need = require_span(video_name, duration, search_ms, doing="measuring offsets", hint="pass a smaller search range")

    def none_result(status: str, message: str, tracks=(), windows=None, curves=None, curve=None,
                    confidence=0.0, candidate=None, track_id=None) -> SyncResult:
        empty_w = SyncWindows(*(np.zeros(0, t) for t in (np.int64, np.int64, float, float, float, float, float, float)))
        return SyncResult(status=status, message=message, offset_ms=None, confidence=float(confidence),
                          candidate_ms=candidate, track_id=track_id, track_ids=[], tracks=list(tracks),
                          curve=np.full(shifts.size, np.nan) if curve is None else curve,
                          windows=empty_w if windows is None else windows,
                          window_curves=np.zeros((0, shifts.size), np.float32) if curves is None else curves,
                          segments=[], drift=False, drift_range_ms=0.0,
                          timings={"faces_s": prep.faces_seconds, "video_embed_s": prep.embed_seconds,
                                   "audio_s": t_audio}, **base)

    tws = [t for t in prep.tracks if track is None or t.track.id == track]
    if track is not None and not tws:
        raise NoFaceError(f"{video_name}: no usable face track with id {track}")
    if not tws:
        return none_result("no_face", "no face big enough to read the lips from was found")
    if audio.silent:
        return none_result("no_speech", f"the audio is silent (below {SILENCE_DBFS:.0f} dBFS throughout)")

    if not audio.streamed:
        progress("embed audio", 1, 1)
    t_embed_audio = time.perf_counter() - t0  # in-memory audio only; a streamed pass is in t_audio

    t1 = time.perf_counter()
    per_track = []
    for tw in tws:
        c = window_curves(tw.starts, tw.emb, audio.emb, shifts, step_cols=step_cols)
        agg = aggregate_windows(c, shifts_ms, method=aggregate, refine=refine)
        per_track.append((tw, c, agg))
    # the speaker: at each moment, the face whose lip-sync confidence (smoothed over ~1 s, as
    # active-speaker detection does) is highest owns that moment's windows; the other faces'
    # windows there are left out. One face, or faces in different shots, keep all their windows.
    keep = _speaker_windows(per_track, tl.num_model_frames, smooth_windows=int(round(SPEAKER_SMOOTH_S * VIDEO_FPS)))
    chosen = [j for j in range(len(per_track)) if keep[j].any()]
    best = max(chosen, key=lambda j: float(np.sum(_window_stats(per_track[j][1][keep[j]])[1])))
    track_rows = []
    for j, (tw, _c, tagg) in enumerate(per_track):
        st = tw.starts
        track_rows.append(TrackSync(track_id=int(tw.track.id), shot=int(tw.track.shot), start_s=float(st[0] / VIDEO_FPS),
                                    end_s=float((st[-1] + WINDOW_FRAMES) / VIDEO_FPS), num_windows=int(st.size),
                                    offset_ms=tagg.offset_ms if tagg.confidence >= min_confidence else None,
                                    confidence=float(tagg.confidence), used=j in chosen))

    curves = np.concatenate([per_track[j][1][keep[j]] for j in chosen])
    starts = np.concatenate([per_track[j][0].starts[keep[j]] for j in chosen])
    tids = np.concatenate([np.full(int(keep[j].sum()), per_track[j][0].track.id, np.int64) for j in chosen])
    order = np.argsort(starts, kind="stable")
    curves, starts, tids = curves[order], starts[order], tids[order]
    agg = aggregate_windows(curves, shifts_ms, method=aggregate, refine=refine)
    arg, conf, mn, usable = _window_stats(curves)
    src = tl.model_to_source[np.clip(starts, 0, tl.num_model_frames - 1)]
    windows = SyncWindows(track_id=tids, source_frame=src.astype(np.int64), start_s=starts / VIDEO_FPS,
                          end_s=(starts + WINDOW_FRAMES) / VIDEO_FPS, offset_ms=np.where(usable, shifts_ms[arg], np.nan),
                          confidence=conf, min_distance=mn.astype(np.float64), weight=agg.weights)

    # drift: the same aggregate over consecutive segments
    segments: list[SyncSegment] = []
    if segment_s and segment_s > 0 and starts.size:
        t_start = starts / VIDEO_FPS
        seg_idx = np.floor(t_start / segment_s).astype(np.int64)
        last = int(seg_idx.max())
        # a short tail (under half a segment) joins the segment before it
        if last > 0 and duration - last * segment_s < segment_s / 2:
            seg_idx[seg_idx == last] = last - 1
            last -= 1
        for g in range(last + 1):
            m = seg_idx == g
            if not np.any(m):
                continue
            sa = aggregate_windows(curves[m], shifts_ms, method=aggregate, refine=refine)
            end = duration if g == last else (g + 1) * segment_s
            segments.append(SyncSegment(start_s=g * segment_s, end_s=float(end),
                                        offset_ms=sa.offset_ms if sa.confidence >= min_confidence else None,
                                        confidence=sa.confidence, num_windows=int(m.sum())))
    seg_offs = [s.offset_ms for s in segments if s.offset_ms is not None]
    drift_range = float(max(seg_offs) - min(seg_offs)) if len(seg_offs) > 1 else 0.0
    t_search = time.perf_counter() - t1
    timings = {"faces_s": prep.faces_seconds, "video_embed_s": prep.embed_seconds, "audio_decode_s": t_audio,
               "audio_embed_s": t_embed_audio, "search_s": t_search,
               # CPU seconds (all threads) of everything after decoding and face tracking
               "after_decode_cpu_s": prep.embed_cpu_seconds + time.process_time() - c0}

    main_track = int(per_track[best][0].track.id)
    used_ids = [int(per_track[j][0].track.id) for j in chosen]
    confident = agg.offset_ms is not None and agg.confidence >= min_confidence
    drift = drift_range > drift_tolerance_ms
    if drift:
        # segments that each hold clear evidence but disagree: the offset changes along the video,
        # whatever the whole file's aggregate (which such a spread flattens) says
        per_seg = "; ".join(f"{sg.start_s:.0f}–{sg.end_s:.0f} s: "
                            + ("—" if sg.offset_ms is None else f"{sg.offset_ms:+.0f} ms") for sg in segments)
        status = "drift"
        msg = (f"the offset drifts: segments differ by {drift_range:.0f} ms ({per_seg}); no single offset fits "
               "the whole video")
    elif confident:
        status = "ok"
        msg = f"measured on {starts.size} windows of face track(s) {', '.join(map(str, used_ids))}"
    else:
        status = "low_confidence"
        msg = (f"no clear lip-sync evidence (confidence {agg.confidence:.3f} < {min_confidence:.3f}): "
               "no speech from a visible face, or the face is not the one speaking")
    offset = float(agg.offset_ms) if confident else None
    ev = sync_evidence(agg.curve, shifts_ms, offset, agg.confidence, agg.weights, duration, need)
    p = p_correct(ev) if offset is not None else None
    reliable = p is not None and p >= RELIABLE_P and not drift
    because = [] if reliable or p is None else (["the offset drifts along the video"] if drift else
                                                 unreliable_reasons(ev, p))
    return SyncResult(status=status, message=msg, offset_ms=offset, confidence=float(agg.confidence),
                      candidate_ms=agg.offset_ms, track_id=main_track, track_ids=used_ids, tracks=track_rows,
                      curve=agg.curve, windows=windows, window_curves=curves, segments=segments, drift=drift,
                      drift_range_ms=drift_range, timings=timings, p_correct=p, reliable=reliable,
                      unreliable_because=because,
                      evidence={"confidence": round(ev.confidence, 4), "second_peak": round(ev.second_peak, 4),
                                "windows": ev.windows, "span": round(ev.span, 3)}, **base)


def measure_sync(video: PathLike, *, search_ms: float = DEFAULT_SEARCH_MS, step_ms: float = STEP_MS,
                 aggregate: str = DEFAULT_AGGREGATE, segment_s: float = DEFAULT_SEGMENT_S,
                 drift_tolerance_ms: float = DRIFT_TOLERANCE_MS, min_confidence: float = MIN_CLIP_CONFIDENCE,
                 track: int | None = None, refine: bool = True, model=None, device: str | None = None,
                 detect_every: int = 3, detector=None, analysis=None,
                 progress: ProgressFn | None = None) -> SyncResult:
    """Measure the audio-to-lips offset of ``video``.

    ``search_ms``: offsets within ±this are searched (the clip must be at least
    :func:`min_duration_s` long). ``step_ms``: shift step, 10 ms (one MFCC column) or a multiple
    (40 = whole video frames). ``aggregate``: how windows are combined (see
    :func:`aggregate_windows`). ``segment_s``/``drift_tolerance_ms``: drift check.
    ``min_confidence``: clip confidence under which no offset is reported. ``track``: measure
    this face track only (default: the face with the most lip-sync evidence, per shot).
    ``model``: a :class:`~speakerid.model.SyncNet` or a checkpoint path (default: packaged).
    ``analysis``: a :class:`~speakerid.faces.FaceAnalysis` of this same video to reuse (faces
    are found and tracked when None). ``detector``: a face detector or a backend's name
    (``"retinaface"``, the default, or ``"centerface"``).

    Raises NoVideoStreamError / NoAudioStreamError / TooShortError (and the media errors) for
    unusable input; returns a result with ``offset_ms=None`` when there is no face or no speech.
    """
    from .media import probe, require_audio, require_video
    from .model import resolve_model

    progress = progress or silent
    info = probe(video)
    require_video(info)
    require_audio(info)
    check_sync_settings(search_ms=search_ms, step_ms=step_ms, segment_s=segment_s, aggregate=aggregate)
    m = resolve_model(model, device=device)
    # the audio first (seconds of CPU for an hour): a clip too short fails before the face pass
    audio = _stream_audio(video, m, progress, info.duration_s)
    _require_duration(video, info, audio, search_ms, "pass a smaller search range")
    prep = _prepare_video(video, m, analysis=analysis, progress=progress, detect_every=detect_every,
                          detector=detector)
    return _measure(prep, audio, search_ms=search_ms, step_ms=step_ms, aggregate=aggregate, segment_s=segment_s,
                    drift_tolerance_ms=drift_tolerance_ms, min_confidence=min_confidence, track=track,
                    refine=refine, video_name=str(video), t_audio=audio.seconds, progress=progress)


def check_sync_settings(*, search_ms: float = DEFAULT_SEARCH_MS, step_ms: float = STEP_MS,
                        segment_s: float = DEFAULT_SEGMENT_S, aggregate: str = DEFAULT_AGGREGATE) -> None:
    """Raise :class:`~speakerid.errors.InvalidSettingError` (a ``ValueError``) naming a setting
    the measurement cannot take, before any decoding."""
    if not (step_ms >= STEP_MS and float(step_ms) % STEP_MS == 0):
        raise InvalidSettingError(f"step_ms must be a multiple of {STEP_MS} ms (one MFCC column), got {step_ms:g}")
    if not search_ms > 0:
        raise InvalidSettingError(f"search_ms must be positive, got {search_ms:g}")
    if step_ms > search_ms:
        raise InvalidSettingError(f"step_ms ({step_ms:g}) must not exceed search_ms ({search_ms:g})")
    if segment_s is not None and segment_s < 0:
        raise InvalidSettingError(f"segment_s must be 0 (no drift check) or positive, got {segment_s:g}")
    if aggregate not in AGGREGATES:
        raise InvalidSettingError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {aggregate!r}")


def _require_duration(video: PathLike, info, audio: _Audio, search_ms: float, hint: str) -> None:
    """Early exit before the expensive face pass (the exact check, on the video's own frame
    count, is in :func:`_measure`)."""
    dur = min(info.duration_s or 0.0, audio.num_samples / 16000.0)
    require_span(video, dur, search_ms, doing="measuring offsets", hint=hint, slack_s=0.05)


# --------------------------------------------------------------------------------------------
# repair


def shift_sync(video: PathLike, out: PathLike, offset_ms: float, *, overwrite: bool = False) -> bool:
    """Write a copy of ``video`` whose audio is displaced by ``offset_ms`` (``t_audio − t_video``):
    +120 makes the audio lag by 120 ms. The video stream is copied; returns True when it was.

    This *introduces* an offset (to make test material); :func:`repair_sync` removes one.
    """
    from .media import remux_with_audio, stream_audio_native

    shifted = stream_audio_native(video, -float(offset_ms))  # decoded while it is written
    return remux_with_audio(video, out, shifted, protect=[video], overwrite=overwrite)


def repair_sync(video: PathLike, out: PathLike, offset_ms: float | None = None, *, search_ms: float = DEFAULT_SEARCH_MS,
                overwrite: bool = False, remeasure: bool = True, model=None, device: str | None = None,
                accept_unreliable: bool = False, progress: ProgressFn | None = None, **measure_kw) -> RepairResult:
    """Write ``out``: ``video`` with its audio shifted to undo ``offset_ms`` (measured when None).

    The video stream is copied (not re-encoded) where the container allows; the audio is
    re-encoded with the shift applied, sample-accurately, keeping its rate, channels and length.
    The write is atomic and never replaces ``video``. With ``remeasure`` the output is measured
    again and its residual offset reported (the faces and video embeddings are reused when the
    video was copied bit for bit — only the audio changed).

    Raises NoFaceError / NoSyncEvidenceError when no offset is given and none can be measured, or
    the measured one is not reliable (``accept_unreliable`` applies it all the same).
    """
    from .media import (check_output_path, probe, read_frame_times, remux_with_audio, require_audio, require_video,
                        stream_audio_native, verify_written)

    progress = progress or silent
    opts = dict(step_ms=measure_kw.pop("step_ms", STEP_MS), aggregate=measure_kw.pop("aggregate", DEFAULT_AGGREGATE),
                segment_s=measure_kw.pop("segment_s", DEFAULT_SEGMENT_S),
                drift_tolerance_ms=measure_kw.pop("drift_tolerance_ms", DRIFT_TOLERANCE_MS),
                min_confidence=measure_kw.pop("min_confidence", MIN_CLIP_CONFIDENCE), track=measure_kw.pop("track", None))
    if measure_kw:
        raise TypeError(f"unexpected arguments: {', '.join(measure_kw)}")
    check_sync_settings(search_ms=search_ms, step_ms=opts["step_ms"], segment_s=opts["segment_s"],
                        aggregate=opts["aggregate"])
    info = probe(video)
    require_video(info)
    require_audio(info)
    # refuse before the (slow) measurement, not after it; the atomic write checks again
    check_output_path(out, protect=[video], overwrite=overwrite, need_bytes=Path(video).stat().st_size)
    m = None
    measured = None
    prep = None
    if offset_ms is None or remeasure:
        from .model import resolve_model

        m = resolve_model(model, device=device)
    if offset_ms is None:
        audio = _stream_audio(video, m, progress, info.duration_s)
        _require_duration(video, info, audio, search_ms, "give the offset to repair anyway")
        prep = _prepare_video(video, m, progress=progress)
        measured = _measure(prep, audio, search_ms=search_ms, refine=True, video_name=str(video),
                            t_audio=audio.seconds, progress=progress, **opts)
        if measured.drift:
            raise SyncDriftError(f"{video}: cannot repair with one shift: {measured.message} "
                                 "(pass an offset to apply one anyway)")
        if measured.offset_ms is None:
            if measured.status == "no_face":
                raise NoFaceError(f"{video}: cannot repair: {measured.message}")
            raise NoSyncEvidenceError(f"{video}: cannot repair: {measured.message} (pass an offset to apply it anyway)")
        if not measured.reliable and not accept_unreliable:
            raise NoSyncEvidenceError(
                f"{video}: cannot repair: the measured offset {measured.offset_ms:+.0f} ms is not reliable "
                f"(p_correct {measured.p_correct:.2f}: {'; '.join(measured.unreliable_because)}); pass "
                "accept_unreliable=True (--accept-unreliable) to apply it anyway, or give the offset")
        offset_ms = measured.offset_ms
    source_times = prep.analysis.timeline.source_times if prep is not None else read_frame_times(video)
    residual = None

    def verify(tmp: Path, copied: bool) -> None:
        """The written file itself, before it is renamed into place: every frame decodes, its
        length and audio match the input, and (measured again) no offset is left."""
        nonlocal residual
        progress("verify", 0, 1)
        verify_written(tmp, expect_frames=int(source_times.size), expect_end_s=float(source_times[-1]), name=out)
        progress("verify", 1, 1)
        if not remeasure:
            return
        progress("re-measure", 0, 1)
        audio_out = _stream_audio(tmp, m)
        prep_out = replace(prep, video=str(tmp)) if copied and prep is not None else _prepare_video(tmp, m,
                                                                                                    progress=progress)
        try:
            residual = _measure(prep_out, audio_out, search_ms=search_ms, step_ms=STEP_MS, aggregate=DEFAULT_AGGREGATE,
                                segment_s=DEFAULT_SEGMENT_S, drift_tolerance_ms=DRIFT_TOLERANCE_MS,
                                min_confidence=MIN_CLIP_CONFIDENCE, track=None, refine=True, video_name=str(out),
                                t_audio=audio_out.seconds, progress=progress)
        except TooShortError:
            residual = None
        progress("re-measure", 1, 1)
        # a measured repair must leave (nearly) nothing: a residual as large as a drift means the
        # written file's timing is not what was intended
        if (measured is not None and residual is not None and residual.offset_ms is not None
                and abs(residual.offset_ms) > DRIFT_TOLERANCE_MS):
            raise OutputVerificationError(f"{out}: the repaired file still measures {residual.offset_ms:+.0f} ms "
                                          f"(confidence {residual.confidence:.3f}) after undoing {offset_ms:+.0f} ms; "
                                          "it was not kept")

    # the audio is decoded, shifted and encoded a piece at a time while the output is written
    shifted = stream_audio_native(video, float(offset_ms))
    copied = remux_with_audio(video, out, shifted, protect=[video], overwrite=overwrite, verify=verify)
    return RepairResult(input=str(video), output=str(out), applied_offset_ms=float(offset_ms), measured=measured,
                        residual=residual, video_copied=copied)


# --------------------------------------------------------------------------------------------
# plots


def plot_sync(result: SyncResult, path: PathLike | None = None, *, max_curves: int = 200, overwrite: bool = True):
    """Figure: (top) distance vs audio shift — each window faint, the aggregate bold — and
    (bottom) each window's offset and confidence over time. Saved to ``path`` (PNG) when given."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, (ax0, ax1) = plt.subplots(2, 1, figsize=(9, 7), constrained_layout=True)
    x = result.shifts_ms
    wc = result.window_curves
    if wc.size:
        sel = np.linspace(0, wc.shape[0] - 1, min(max_curves, wc.shape[0])).astype(int)
        for i in sel:
            ax0.plot(x, wc[i] - np.nanmedian(wc[i]), color="0.6", lw=0.4, alpha=0.35)
    ax0.plot([], [], color="0.6", lw=0.6, label="one window")
    if result.offset_ms is not None:
        ax0.axvline(result.offset_ms, color="C3", ls="--", label=f"offset {result.offset_ms:+.0f} ms")
    elif result.candidate_ms is not None:
        ax0.axvline(result.candidate_ms, color="0.3", ls=":", label=f"weak arg-min {result.candidate_ms:+.0f} ms")
    ax0.set_xlabel("audio shift = offset candidate (ms; negative: audio leads)")
    ax0.set_ylabel("distance − window median")
    ax0.set_title(f"{Path(result.video).name}: {result.status}, confidence {result.confidence:.3f}")
    # the aggregate has its own scale (unit-depth curves for "curve_norm")
    axa = ax0.twinx()
    axa.plot(x, result.curve, color="C0", lw=2)
    axa.set_ylabel(f"aggregate ({result.aggregate})", color="C0")
    ax0.plot([], [], color="C0", lw=2, label=f"aggregate ({result.aggregate})")
    ax0.legend(loc="lower right", fontsize=8)
    w = result.windows
    if len(w):
        t = (w.start_s + w.end_s) / 2
        used = w.weight > 0
        ax1.scatter(t[~used], w.offset_ms[~used], s=8, color="0.7", label="window offset (dropped)")
        ax1.scatter(t[used], w.offset_ms[used], s=10, color="C0", label="window offset (used)")
        if result.offset_ms is not None:
            ax1.axhline(result.offset_ms, color="C3", ls="--", lw=1)
        for s in result.segments:
            if s.offset_ms is not None:
                ax1.hlines(s.offset_ms, s.start_s, s.end_s, color="C2", lw=2)
        ax1.set_ylabel("offset (ms)")
        ax1.set_ylim(-result.search_ms * 1.05, result.search_ms * 1.05)
        ax2 = ax1.twinx()
        ax2.plot(t, w.confidence, color="C1", lw=1, label="confidence")
        ax2.set_ylabel("confidence (median − min)", color="C1")
        ax1.legend(loc="upper left", fontsize=8)
    ax1.set_xlabel("time (s, source)")
    if path is not None:
        from .media import atomic_output

        with atomic_output(path, protect=[result.video], overwrite=overwrite) as tmp:
            fig.savefig(tmp, dpi=100, format="png")
        plt.close(fig)
    return fig
