"""Scoring faces: which face's lips follow the audio, window by window, calibrated per video.

Steps (all on the 25 fps model timeline, then mapped to the source's own frames):

1. Distances ``d[window, shift]`` for shifts in ±``search_frames`` (20 ms steps), each less the
   audio window's mean distance to all mouth windows of the video (``audio_norm``,
   :func:`speakerid.evidence.audio_hubness`). Window confidence profile ``c = median(d) − d``.
2. **Offsets.** The video's offset is the peak of the confidence-weighted sum of all windows'
   profiles; each track then takes the shift that best explains its own windows within
   ±``max_shift_frames`` of it or of zero, unless its own profile peaks clearly elsewhere within
   ±``OWN_OFFSET_MS`` (a face heard with an offset of its own, as when recordings with different
   offsets are edited together).
3. **Score.** Per window: ``c`` at the track's shift (mean over ±20 ms around it), averaged over
   ``smooth_frames`` frames (triangle-weighted) to ride over blinks, blur and short pauses;
   with the turn model and no width set, wider (up to 3 s) the noisier the audio
   (:mod:`.noise`).
4. **Calibration.** The same smoothed statistic at shifts far from the track's (mismatched
   audio) is the null: how large the score gets by chance in *this* video, with *this* model.
   The score is ``(smoothed − null mean) / null std``, a z-score.
5. **Decoding** (:mod:`speakerid.decoding` for ``"hmm"``, :func:`.labels.compete` for
   ``"threshold"``) and labels (:mod:`.labels`).

Memory: every per-window table (audio embeddings, MFCC, confidence profiles) goes to a temporary
file (:class:`speakerid.rowstore.RowStore`) and is read back ``BLOCK_ROWS`` at a time, so the
working memory does not depend on the video's length.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..decoding import speaking_posteriors
from ..evidence import DRIFT_SEGMENT_S, DRIFT_TOLERANCE_MS, audio_hubness, window_distances
from ..features import iter_mfcc, require_span
from ..media import SILENCE_DBFS
from ..model import Embedder
from ..options import SpeakerOptions, split_settings
from ..progress import ProgressFn, silent
from ..rowstore import RowStore, StoredRows
from ..smoothing import triangle_nanmean
from ..timebase import COLS_PER_FRAME, MFCC_RATE, MS_PER_COL, VIDEO_FPS, WINDOW_COLS, WINDOW_FRAMES
from .labels import compete, speech_columns, speech_frames
from .noise import FrameEnergyTap, energy_spread_db, noise_warning, smooth_frames_for
from .results import SpeakerResult, SpeakerTrack

SHIFT_STEP_COLS = 2
"""Shift resolution in MFCC columns (20 ms): offsets such as 60 ms fall between video frames."""
OWN_OFFSET_MS = 200
"""A track whose own evidence clearly peaks may take any shift within ±this (ms), beyond the
band around the video's offset: sources with offsets of their own (an edit of several
recordings, a composite) put one face 80–120 ms away from the others."""
OWN_OFFSET_Z = 4.0
"""How clear that peak must be: its height above the median of the track's profile at shifts
beyond ±2·``OWN_OFFSET_MS``, in standard deviations of those far values; and it must stand at
least one such deviation above the best shift of the band."""
SCORING = "scoring faces against audio shifted"
BLOCK_ROWS = 4096
"""Windows, frames or audio columns handled at a time where a long video's tables are read
from disk: bounds the working memory whatever the video's length."""


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


@dataclass
class _Profiles:
    """Every scored track's window profiles, and the weighted profile of each drift segment."""

    tracks: dict[int, _TrackScores]
    segments: np.ndarray  # (n_segments, n_shifts)


def _window_profiles(starts: np.ndarray, v, audio_emb, hub: np.ndarray | None, shifts: np.ndarray, store: RowStore,
                     segments: np.ndarray, segment_frames: int, block: int = 128) -> _TrackScores:
    """Distances of each window (video embeddings ``v``, model-frame ``starts``) to the audio at
    every shift → confidence profiles, written to ``store``; each window's weighted profile is
    added to its drift segment's row of ``segments`` too. Rows are independent: done ``block``
    windows at a time."""
    weight = np.empty(starts.size, np.float32)
    profile = np.zeros(shifts.size)
    rows = []
    for b in range(0, starts.size, block):
        st = starts[b:b + block]
        # audio_emb holds every SHIFT_STEP_COLS-th start column
        d = window_distances(st, v[b:b + block], audio_emb, shifts, audio_step=SHIFT_STEP_COLS, audio_bias=hub,
                             chunk=block)
        inside = np.isfinite(d)
        with np.errstate(invalid="ignore"):
            med = np.nanmedian(np.where(inside.any(1, keepdims=True), d, 0.0), axis=1)
        c = med[:, None] - d
        peak = np.max(np.where(np.isfinite(c), c, -np.inf), axis=1)
        w = np.maximum(np.where(np.isfinite(peak), peak, 0.0), 0.0)
        weight[b:b + block] = w
        profile += np.nansum(c * w[:, None], axis=0)
        g = np.minimum(st // segment_frames, segments.shape[0] - 1)
        np.add.at(segments, g, np.nan_to_num(c.astype(np.float64) * w[:, None]))
        rows.append(store.append(c))
    conf = store.view(np.concatenate(rows)) if rows else np.zeros((0, shifts.size), np.float32)
    return _TrackScores(starts=starts, conf=conf, weight=weight, profile=profile)


def _clear_peak(profile: np.ndarray, shifts: np.ndarray, within: np.ndarray | None = None) -> tuple[int, bool]:
    """The profile's peak (among ``within`` shifts, default all) and whether it stands
    ``OWN_OFFSET_Z`` standard deviations above the median of the shifts beyond ±2·``OWN_OFFSET_MS``
    (chance structure rarely does)."""
    ms = shifts * MS_PER_COL
    far = np.abs(ms) > 2 * OWN_OFFSET_MS
    j = int(np.argmax(profile)) if within is None else int(np.flatnonzero(within)[np.argmax(profile[within])])
    sd = float(np.std(profile[far])) if far.sum() >= 10 else 0.0
    return j, sd > 0 and (profile[j] - float(np.median(profile[far]))) / sd >= OWN_OFFSET_Z


def _segment_offsets(segments: np.ndarray, shifts: np.ndarray) -> list[float | None]:
    """The video's offset (ms) in each drift segment, or None where its peak is not clear."""
    out: list[float | None] = []
    for p in segments:
        j, clear = _clear_peak(p, shifts)
        out.append(float(shifts[j] * MS_PER_COL) if clear else None)
    return out


def _track_shift(profile: np.ndarray, shifts: np.ndarray, near: np.ndarray) -> int:
    """Index of the shift a track is scored at: its profile's peak among the ``near`` shifts, or
    its clear peak within ±``OWN_OFFSET_MS`` (a face heard with an offset of its own), when that
    stands at least one far-shift deviation above the first."""
    j = int(np.flatnonzero(near)[np.argmax(profile[near])])
    ms = shifts * MS_PER_COL
    own = np.abs(ms) <= OWN_OFFSET_MS
    far = np.abs(ms) > 2 * OWN_OFFSET_MS
    if far.sum() >= 10 and own.any():
        k, clear = _clear_peak(profile, shifts, own)
        # two close peaks (a bimodal profile) are not evidence enough to leave the band
        if clear and profile[k] - profile[j] >= float(np.std(profile[far])):
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
        stats.add(triangle_nanmean(nul, smooth_frames)[f0 - a:f1 - a])


def _blocks(rows):
    """``(first, block)`` of consecutive rows of an array or of rows on disk."""
    for b in range(0, len(rows), BLOCK_ROWS):
        yield b, rows[b:b + BLOCK_ROWS]


def _unscored(t) -> SpeakerTrack:
    n = len(t.frames)
    return SpeakerTrack(id=t.id, frames=t.frames.copy(), boxes=t.boxes.copy(), scores=np.full(n, np.nan, np.float32),
                        speaking=np.zeros(n, bool), offset_ms=None)


def score_faces(analysis, audio: np.ndarray | Iterable[np.ndarray], model, options: SpeakerOptions | None = None, *,
                progress: ProgressFn | None = None, **settings) -> SpeakerResult:
    """Score the face tracks of ``analysis`` (with mouth crops, or with window embeddings
    streamed by ``analyze_faces(embed=VideoWindowEmbedder(model))``) against ``audio`` (16 kHz
    mono, sample 0 = first video frame: one array, or consecutive pieces such as
    :func:`speakerid.media.iter_audio` gives). The scoring half of
    :func:`~speakerid.speakers.detect_speakers`; ``options`` (or its fields as keywords):
    :class:`~speakerid.options.SpeakerOptions`."""
    (opts,) = split_settings(settings, options or SpeakerOptions())
    progress = progress or silent
    threshold, smooth_frames, competition = opts.decoded()
    analysis.require_geometry(model.config.crop_geometry)
    tl = analysis.timeline
    fps = float(analysis.info.fps) if analysis.info.fps else tl.source_fps
    result = SpeakerResult(fps=fps, num_frames=tl.num_source_frames, video=str(analysis.info.path),
                           threshold=threshold, smooth_frames=smooth_frames, exclusive=bool(opts.exclusive),
                           competition=competition, decoder=opts.decoder,
                           model=str(getattr(model, "fingerprint", "") or ""),
                           frame_times=np.asarray(tl.source_times, np.float64))
    if not analysis.tracks:
        return result
    search = int(opts.search_frames) * COLS_PER_FRAME
    search -= search % SHIFT_STEP_COLS
    shifts = np.arange(-search, search + 1, SHIFT_STEP_COLS)
    emb = Embedder(model)
    energy: list[np.ndarray] = []  # c0 of every 10 ms column (4 bytes each): what is speech
    # every SHIFT_STEP_COLS-th audio window, float16 rows on disk: neither the signal, the MFCC
    # nor the embeddings are ever held whole (a caller's array is freed with the pieces)
    loudness = FrameEnergyTap([audio] if isinstance(audio, np.ndarray) else audio)
    audio_emb, n_cols = emb.stored_sequence(_energy_tap(iter_mfcc(loudness), energy), step=SHIFT_STEP_COLS,
                                            dtype=np.float16, chunk=BLOCK_ROWS)
    del audio
    diag: dict[str, Any] = {}
    smooth_frames = result.smooth_frames = _smoothing(opts, smooth_frames, loudness, diag)
    result.speech = speech_frames(speech_columns(np.concatenate(energy) if energy else np.zeros(0)),
                                  np.asarray(tl.source_times, np.float64))
    require_span(analysis.info.path, min(tl.num_model_frames / VIDEO_FPS, n_cols / MFCC_RATE),
                 opts.search_frames * 1000.0 / VIDEO_FPS, doing=SCORING)
    result.diagnostics = diag
    if loudness.silent:
        # chance structure in the evidence would otherwise be decoded into speakers
        result.warnings.append(f"the audio is silent (below {SILENCE_DBFS:.0f} dBFS throughout): nobody can be "
                               f"heard speaking, so no face is scored" + analysis.info.first_audio_only())
        result.tracks = [_unscored(t) for t in analysis.tracks]
        return result
    result.warnings.extend(noise_warning(diag["energy_spread_db"], smooth_frames))
    prof = _profiles(analysis.tracks, audio_emb, n_cols, shifts, emb, opts, progress)
    diag.update({"shifts_ms": shifts * MS_PER_COL, "profiles": {}, "window_scores": {}, "null": None})
    if not prof.tracks:
        result.tracks = [_unscored(t) for t in analysis.tracks]
        return result
    total = np.zeros(shifts.size)
    for s in prof.tracks.values():
        total += s.profile
    g = int(np.argmax(total))
    result.offset_ms = float(shifts[g] * MS_PER_COL)
    diag["global_profile"] = total
    diag["segment_offsets_ms"] = _segment_offsets(prof.segments, shifts)
    result.warnings.extend(_drift_warning(diag["segment_offsets_ms"], result.offset_ms))
    raw, chosen, null = _raw_scores(analysis.tracks, prof.tracks, shifts, g, opts, smooth_frames, diag)
    mu, sd = _calibration(null, raw)
    diag["null"] = (mu, sd)
    out = [_speaker_track(t, raw[t.id], float(shifts[chosen[t.id]] * MS_PER_COL), mu, sd, smooth_frames, tl)
           if t.id in raw else _unscored(t) for t in analysis.tracks]
    diag["calibrated"] = {t.id: t.scores.copy() for t in out}  # before the decoder
    if opts.decoder == "hmm":
        scored_out = [t for t in out if t.offset_ms is not None]
        post = speaking_posteriors([t.frames for t in scored_out], [t.scores for t in scored_out],
                                   tl.num_source_frames, fps, exclusive=opts.exclusive)
        for t, p in zip(scored_out, post, strict=True):
            t.scores = p
    elif competition > 0:
        compete(out, tl.num_source_frames, competition)
    result.tracks = out
    result.relabel(threshold, exclusive=opts.exclusive)
    return result


def _smoothing(opts: SpeakerOptions, default: int, loudness: FrameEnergyTap, diag: dict[str, Any]) -> int:
    """The averaging width: wider in noisy audio (:mod:`.noise`), unless set or turned off."""
    spread = energy_spread_db(loudness.energies_db)
    diag["energy_spread_db"] = spread
    if opts.noise_smoothing and opts.smooth_frames is None and opts.decoder == "hmm" and not loudness.silent:
        return smooth_frames_for(spread, default)
    return default


def _energy_tap(blocks, energy: list):
    """The MFCC blocks passed on, their first row (the log energy) kept in ``energy``."""
    for b in blocks:
        energy.append(np.asarray(b[0], np.float32))
        yield b


def _profiles(tracks, audio_emb, n_cols: int, shifts: np.ndarray, emb: Embedder, opts: SpeakerOptions,
              progress: ProgressFn) -> _Profiles:
    """Step 1: each track's window profiles (on disk), from its streamed embeddings or its crops."""
    empty = _Profiles(tracks={}, segments=np.zeros((1, shifts.size)))
    if n_cols < WINDOW_COLS:
        return empty
    vid: dict[int, tuple[np.ndarray, Any]] = {}
    for i, t in enumerate(tracks):
        local, v = t.window_embeddings_or(emb, step=opts.window_step, lazy=True)
        if local.size:
            vid[t.id] = (t.model_frames[local], v)
        progress("scoring", i + 1, len(tracks))
    if not vid:
        return empty
    hub = audio_hubness(audio_emb, [v for _, v in vid.values()]) if opts.audio_norm else None
    segment_frames = int(round(DRIFT_SEGMENT_S * VIDEO_FPS))
    # a tail under half a segment joins the segment before it
    n_seg = max(1, int(round(max(int(st.max()) for st, _ in vid.values()) / segment_frames)))
    segments = np.zeros((n_seg, shifts.size))
    store = RowStore(shifts.size, np.float32)
    per_track = {tid: _window_profiles(st, v, audio_emb, hub, shifts, store, segments, segment_frames)
                 for tid, (st, v) in vid.items()}
    return _Profiles(tracks=per_track, segments=segments)


def _drift_warning(seg_offsets: list[float | None], offset_ms: float) -> list[str]:
    clear = [o for o in seg_offsets if o is not None]
    if len(clear) < 2 or max(clear) - min(clear) <= DRIFT_TOLERANCE_MS:
        return []
    return [f"the audio offset drifts along the video ({', '.join('—' if o is None else f'{o:+.0f}' for o in seg_offsets)}"
            f" ms in {DRIFT_SEGMENT_S:.0f} s segments): scores assume one offset per face, so they are unreliable "
            f"where the offset is far from {offset_ms:+.0f} ms; measure it with `speakerid sync`"]


def _raw_scores(tracks, scored: dict[int, _TrackScores], shifts: np.ndarray, g: int, opts: SpeakerOptions,
                smooth_frames: int, diag: dict) -> tuple[dict[int, np.ndarray], dict[int, int], _RunningStats]:
    """Steps 2–3: each track's own shift near the video's (``g``) and its raw per-model-frame
    score there; and the null statistic of the same score at far shifts."""
    band = int(opts.max_shift_frames) * COLS_PER_FRAME
    # near the video's peak ... or near zero: with weak evidence (few, short or quiet speech turns)
    # the video's peak can land on chance structure far from the truth, and most videos are within ±200 ms
    near = (np.abs(shifts - shifts[g]) <= band) | (np.abs(shifts) <= band)
    raw: dict[int, np.ndarray] = {}
    chosen: dict[int, int] = {}
    null = _RunningStats()
    for t in tracks:
        s = scored.get(t.id)
        if s is None:
            continue
        diag["profiles"][t.id] = s.profile
        j = chosen[t.id] = _track_shift(s.profile, shifts, near)
        # ±1 step around the chosen shift (the true offset may lie between grid points), as the
        # null below averages its far shifts
        lo = max(0, j - 1)
        w = np.concatenate([_neighbour_mean(np.asarray(c[:, lo:j + 2], np.float64))[:, j - lo]
                            for _, c in _blocks(s.conf)] or [np.zeros(0)])
        centre = s.starts - int(t.model_frames[0]) + WINDOW_FRAMES // 2
        series = np.full(t.model_frames.size, np.nan)
        series[centre] = w
        raw[t.id] = series
        diag["window_scores"][t.id] = (s.starts + WINDOW_FRAMES // 2, w.astype(np.float32))
        far = np.flatnonzero(np.abs(shifts - shifts[j]) > band)
        _add_null(null, s, centre, t.model_frames.size, far, smooth_frames)
    return raw, chosen, null


def _calibration(null: _RunningStats, raw: dict[int, np.ndarray]) -> tuple[float, float]:
    """Step 4: the null's mean and deviation (the raw scores' spread when the video is too short)."""
    if null.n >= 10:
        mu, sd = null.mean, null.std
    else:
        allw = np.concatenate([v[np.isfinite(v)] for v in raw.values()])
        mu, sd = 0.0, float(np.std(allw)) if allw.size > 1 else 1.0
    return mu, max(sd, 1e-6)


def _speaker_track(t, raw: np.ndarray, offset_ms: float, mu: float, sd: float, smooth_frames: int,
                   tl) -> SpeakerTrack:
    """Step 5: smooth, calibrate, and map to the track's source frames (nearest in time)."""
    z = (triangle_nanmean(raw, smooth_frames) - mu) / sd
    k = np.clip(tl.source_to_model(t.frames) - int(t.model_frames[0]), 0, t.model_frames.size - 1)
    zs = z[k].astype(np.float32)
    if t.scorable is not None:  # frames the face was too small for stay unscored
        zs[~t.scorable[k]] = np.nan
    return SpeakerTrack(id=t.id, frames=t.frames.copy(), boxes=t.boxes.copy(), scores=zs,
                        speaking=np.zeros(len(zs), bool), offset_ms=offset_ms)
