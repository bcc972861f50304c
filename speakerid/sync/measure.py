"""Stage 2 of a sync measurement: distance curves → the speaker → the clip's offset, drift, trust.

1. For each video window of each track, the audio is slid over ``±search_ms`` in 10 ms steps
   and the distance taken at each shift: one *distance curve* per window
   (:func:`speakerid.evidence.window_distances`).
2. With several faces, at each moment the face with the highest lip-sync confidence (averaged
   over ~1 s) is taken as the speaker and only its windows enter the clip aggregate, so
   turn-taking and cuts are followed; the result names the tracks.
3. The clip offset is the aggregate of those windows' curves
   (:func:`speakerid.evidence.aggregate_windows`); silent windows neither vote nor drag it.
4. Drift: the same aggregate per segment (default 10 s); segments with clear evidence whose
   offsets differ by more than a tolerance flag the video.
5. How far to trust the offset: ``p_correct`` from the evidence of the aggregate curve
   (:mod:`speakerid.reliability`).

A clip without a face, without audible speech, or whose evidence is below the confidence
threshold gets ``offset_ms = None`` and a status that says why, never a made-up offset.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..errors import NoFaceError
from ..evidence import ClipAggregate, aggregate_windows, window_confidence, window_distances
from ..features import require_span
from ..media import SILENCE_DBFS, probe, require_audio, require_video
from ..model import resolve_model
from ..options import FaceOptions, SyncOptions, split_settings
from ..progress import ProgressFn, silent
from ..reliability import RELIABLE_P, p_correct, sync_evidence, unreliable_reasons
from ..smoothing import centred_mean
from ..timebase import MS_PER_COL, SAMPLE_RATE, VIDEO_FPS, WINDOW_FRAMES
from .inputs import SyncAudio, SyncInputs, SyncVideo, TrackWindows, embed_video, stream_audio
from .results import PathLike, SyncResult, SyncSegment, SyncWindows, TrackSync

SPEAKER_SMOOTH_S = 1.0
"""With several faces, window confidences are averaged over this long before picking the
speaker at each moment (blinks, pauses and single bad windows do not switch it)."""


def measure_sync(video: PathLike, options: SyncOptions | None = None, *, faces: FaceOptions | None = None,
                 model=None, device: str | None = None, analysis=None, progress: ProgressFn | None = None,
                 **settings) -> SyncResult:
    """Measure the audio-to-lips offset of ``video``: :func:`prepare_sync`, then
    :func:`measure_prepared`.

    ``options``: a :class:`~speakerid.options.SyncOptions` (the search range ``search_ms``, its
    step, the aggregate, the drift check, the confidence floor, one ``track`` only); ``faces``: a
    :class:`~speakerid.options.FaceOptions` (``detector``, ``detect_every``, ``detect_width``).
    Any of their fields can be given as keywords instead (``measure_sync(v, search_ms=500)``).
    ``model``: a :class:`~speakerid.model.SyncNet` or a checkpoint path (default: packaged).
    ``analysis``: a :class:`~speakerid.faces.FaceAnalysis` of this same video to reuse.

    Raises NoVideoStreamError / NoAudioStreamError / TooShortError (and the media errors) for
    unusable input; returns a result with ``offset_ms=None`` when there is no face or no speech.
    """
    options, faces = split_settings(settings, options or SyncOptions(), faces or FaceOptions())
    progress = progress or silent
    inputs = prepare_sync(video, model=model, device=device, faces=faces, analysis=analysis, progress=progress,
                          search_ms=options.search_ms)
    return measure_prepared(inputs, options, progress=progress)


def prepare_sync(video: PathLike, *, model=None, device: str | None = None, faces: FaceOptions | None = None,
                 analysis=None, progress: ProgressFn | None = None, search_ms: float = SyncOptions.search_ms,
                 hint: str = "pass a smaller search range") -> SyncInputs:
    """Stage 1: the embedded audio and face windows of ``video``. The audio comes first (seconds
    of CPU for an hour), so a clip too short for ``search_ms`` fails before the face pass."""
    progress = progress or silent
    info = probe(video)
    require_video(info)
    require_audio(info)
    m = resolve_model(model, device=device)
    audio = stream_audio(video, m, progress, info.duration_s)
    # early exit before the expensive face pass (the exact check, on the video's own frame
    # count, is in measure_prepared)
    require_span(video, min(info.duration_s or 0.0, audio.num_samples / SAMPLE_RATE), search_ms,
                 doing="measuring offsets", hint=hint, slack_s=0.05)
    return SyncInputs(video=embed_video(video, m, analysis=analysis, progress=progress, faces=faces), audio=audio)


@dataclass
class _Grid:
    """The shifts searched: in MFCC columns and in ms, and the step in columns."""

    cols: np.ndarray
    ms: np.ndarray
    step_cols: int

    @classmethod
    def of(cls, options: SyncOptions) -> _Grid:
        step_cols = max(1, int(round(options.step_ms / MS_PER_COL)))
        max_cols = int(round(options.search_ms / MS_PER_COL)) // step_cols * step_cols
        cols = np.arange(-max_cols, max_cols + 1, step_cols, dtype=np.int64)
        return cls(cols=cols, ms=cols.astype(np.float64) * MS_PER_COL, step_cols=step_cols)


def measure_prepared(inputs: SyncInputs, options: SyncOptions | None = None, *, video_name: str | None = None,
                     progress: ProgressFn | None = None, **settings) -> SyncResult:
    """Stage 2: the offset of a prepared video (:func:`prepare_sync`), with ``options`` (or its
    fields as keywords). ``video_name``: the name the result gives (default: the video's)."""
    (options,) = split_settings(settings, options or SyncOptions())
    progress = progress or silent
    t0, c0 = time.perf_counter(), time.process_time()
    video, audio = inputs.video, inputs.audio
    name = video.video if video_name is None else video_name
    grid = _Grid.of(options)
    duration = inputs.duration_s
    need = require_span(name, duration, options.search_ms, doing="measuring offsets",
                        hint="pass a smaller search range")
    tws = [t for t in video.tracks if options.track is None or t.track.id == options.track]
    if options.track is not None and not tws:
        raise NoFaceError(f"{name}: no usable face track with id {options.track}")
    if not tws or audio.silent:
        status, msg = (("no_face", "no face big enough to read the lips from was found") if not tws else
                       ("no_speech", f"the audio is silent (below {SILENCE_DBFS:.0f} dBFS throughout)"
                                     + video.analysis.info.first_audio_only()))
        return _no_answer(inputs, options, grid, name, status, msg)
    if not audio.streamed:
        progress("embed audio", 1, 1)
    t1 = time.perf_counter()
    per_track = [_track_evidence(tw, audio, grid, options) for tw in tws]
    keep = _speaker_windows(per_track, video.analysis.timeline.num_model_frames,
                            smooth_windows=int(round(SPEAKER_SMOOTH_S * VIDEO_FPS)))
    chosen = [j for j in range(len(per_track)) if keep[j].any()]
    curves, starts, tids = _chosen_windows(per_track, keep, chosen)
    agg = aggregate_windows(curves, grid.ms, method=options.aggregate, refine=options.refine)
    windows = _window_table(video, curves, starts, tids, grid, agg)
    segments, drift_range = _segments(curves, starts, duration, grid, options)
    best = max(chosen, key=lambda j: float(np.sum(window_confidence(per_track[j][1][keep[j]])[1])))
    timings = _timings(video, audio, time.perf_counter() - t1, time.perf_counter() - t0, c0)
    return _answer(inputs, options, grid, name, per_track, chosen, best, agg, windows, curves, segments,
                   drift_range, need, timings)


def _track_evidence(tw: TrackWindows, audio: SyncAudio, grid: _Grid, options: SyncOptions):
    c = window_distances(tw.starts, tw.emb, audio.emb, grid.cols, col_step=grid.step_cols)
    return tw, c, aggregate_windows(c, grid.ms, method=options.aggregate, refine=options.refine)


def _speaker_windows(per_track, num_frames: int, smooth_windows: int) -> list[np.ndarray]:
    """Per track, a mask of the windows it owns: at each window start, the track with the highest
    moving-average window confidence among the tracks present there. One face, or faces in
    different shots, keep all their windows."""
    if len(per_track) == 1:
        return [np.ones(per_track[0][0].starts.size, bool)]
    n_t = len(per_track)
    sm = np.full((n_t, num_frames + 1), -np.inf)
    for j, (tw, c, _agg) in enumerate(per_track):
        # moving average over the track's own windows (consecutive model frames within a track)
        sm[j, np.clip(tw.starts, 0, num_frames)] = centred_mean(window_confidence(c)[1], smooth_windows)
    owner = np.argmax(sm, axis=0)
    return [owner[np.clip(tw.starts, 0, num_frames)] == j for j, (tw, _c, _a) in enumerate(per_track)]


def _chosen_windows(per_track, keep, chosen):
    """The speaker's windows of every moment, in time order: curves, start frames, track ids."""
    curves = np.concatenate([per_track[j][1][keep[j]] for j in chosen])
    starts = np.concatenate([per_track[j][0].starts[keep[j]] for j in chosen])
    tids = np.concatenate([np.full(int(keep[j].sum()), per_track[j][0].track.id, np.int64) for j in chosen])
    order = np.argsort(starts, kind="stable")
    return curves[order], starts[order], tids[order]


def _window_table(video: SyncVideo, curves, starts, tids, grid: _Grid, agg: ClipAggregate) -> SyncWindows:
    tl = video.analysis.timeline
    arg, conf, mn, usable = window_confidence(curves)
    src = tl.model_to_source[np.clip(starts, 0, tl.num_model_frames - 1)]
    return SyncWindows(track_id=tids, source_frame=src.astype(np.int64), start_s=starts / VIDEO_FPS,
                       end_s=(starts + WINDOW_FRAMES) / VIDEO_FPS, offset_ms=np.where(usable, grid.ms[arg], np.nan),
                       confidence=conf, min_distance=mn.astype(np.float64), weight=agg.weights)


def _segments(curves, starts, duration: float, grid: _Grid, options: SyncOptions) -> tuple[list[SyncSegment], float]:
    """The same aggregate over consecutive segments, and the spread of their clear offsets."""
    segment_s = options.segment_s
    segments: list[SyncSegment] = []
    if segment_s and segment_s > 0 and starts.size:
        seg_idx = np.floor(starts / VIDEO_FPS / segment_s).astype(np.int64)
        last = int(seg_idx.max())
        # a short tail (under half a segment) joins the segment before it
        if last > 0 and duration - last * segment_s < segment_s / 2:
            seg_idx[seg_idx == last] = last - 1
            last -= 1
        for g in range(last + 1):
            m = seg_idx == g
            if not np.any(m):
                continue
            sa = aggregate_windows(curves[m], grid.ms, method=options.aggregate, refine=options.refine)
            end = duration if g == last else (g + 1) * segment_s
            segments.append(SyncSegment(start_s=g * segment_s, end_s=float(end),
                                        offset_ms=sa.offset_ms if sa.confidence >= options.min_confidence else None,
                                        confidence=sa.confidence, num_windows=int(m.sum())))
    seg_offs = [s.offset_ms for s in segments if s.offset_ms is not None]
    return segments, float(max(seg_offs) - min(seg_offs)) if len(seg_offs) > 1 else 0.0


def _timings(video: SyncVideo, audio: SyncAudio, search_s: float, measure_s: float, c0: float) -> dict:
    return {"faces_s": video.faces_seconds, "video_embed_s": video.embed_seconds,
            "audio_decode_s": audio.seconds if audio.streamed else 0.0,
            "audio_embed_s": 0.0 if audio.streamed else audio.seconds + measure_s - search_s, "search_s": search_s,
            # CPU seconds (all threads) of everything after decoding and face tracking
            "after_decode_cpu_s": video.embed_cpu_seconds + time.process_time() - c0}


def _base(inputs: SyncInputs, options: SyncOptions, grid: _Grid, name: str) -> dict:
    a = inputs.video.analysis
    model = inputs.video.model
    return dict(video=name, search_ms=float(options.search_ms), step_ms=float(grid.step_cols * MS_PER_COL),
                aggregate=options.aggregate, shifts_ms=grid.ms, duration_s=inputs.duration_s,
                source_fps=float(a.info.fps or a.timeline.source_fps),
                model=getattr(model, "fingerprint", "") or "unpackaged", warnings=list(inputs.audio.warnings))


def _no_answer(inputs: SyncInputs, options: SyncOptions, grid: _Grid, name: str, status: str, message: str) -> SyncResult:
    """A result without an offset: no face, or no speech."""
    empty_w = SyncWindows(*(np.zeros(0, t) for t in (np.int64, np.int64, float, float, float, float, float, float)))
    n = grid.cols.size
    return SyncResult(status=status, message=message, offset_ms=None, confidence=0.0, candidate_ms=None, track_id=None,
                      track_ids=[], tracks=[], curve=np.full(n, np.nan), windows=empty_w,
                      window_curves=np.zeros((0, n), np.float32), segments=[], drift=False, drift_range_ms=0.0,
                      timings={"faces_s": inputs.video.faces_seconds, "video_embed_s": inputs.video.embed_seconds,
                               "audio_s": inputs.audio.seconds}, **_base(inputs, options, grid, name))


def _answer(inputs, options: SyncOptions, grid: _Grid, name: str, per_track, chosen, best, agg: ClipAggregate,
            windows: SyncWindows, curves, segments, drift_range: float, need: float, timings: dict) -> SyncResult:
    """The result: offset (when the evidence is clear), status and message, the tracks'
    own figures, drift, and how far to trust it."""
    track_rows = [TrackSync(track_id=int(tw.track.id), shot=int(tw.track.shot), start_s=float(tw.starts[0] / VIDEO_FPS),
                            end_s=float((tw.starts[-1] + WINDOW_FRAMES) / VIDEO_FPS), num_windows=int(tw.starts.size),
                            offset_ms=tagg.offset_ms if tagg.confidence >= options.min_confidence else None,
                            confidence=float(tagg.confidence), used=j in chosen)
                  for j, (tw, _c, tagg) in enumerate(per_track)]
    used_ids = [int(per_track[j][0].track.id) for j in chosen]
    confident = agg.offset_ms is not None and agg.confidence >= options.min_confidence
    drift = drift_range > options.drift_tolerance_ms
    if drift:
        # segments that each hold clear evidence but disagree: the offset changes along the video,
        # whatever the whole file's aggregate (which such a spread flattens) says
        per_seg = "; ".join(f"{sg.start_s:.0f}–{sg.end_s:.0f} s: "
                            + ("—" if sg.offset_ms is None else f"{sg.offset_ms:+.0f} ms") for sg in segments)
        status, msg = "drift", (f"the offset drifts: segments differ by {drift_range:.0f} ms ({per_seg}); no single "
                                "offset fits the whole video")
    elif confident:
        status, msg = "ok", f"measured on {windows.start_s.size} windows of face track(s) {', '.join(map(str, used_ids))}"
    else:
        status, msg = "low_confidence", (f"no clear lip-sync evidence (confidence {agg.confidence:.3f} < "
                                         f"{options.min_confidence:.3f}): no speech from a visible face, or the face "
                                         "is not the one speaking")
    offset = float(agg.offset_ms) if confident else None
    ev = sync_evidence(agg.curve, grid.ms, offset, agg.confidence, agg.weights, inputs.duration_s, need)
    p = p_correct(ev) if offset is not None else None
    reliable = p is not None and p >= RELIABLE_P and not drift
    because = [] if reliable or p is None else (["the offset drifts along the video"] if drift else
                                                 unreliable_reasons(ev, p))
    return SyncResult(status=status, message=msg, offset_ms=offset, confidence=float(agg.confidence),
                      candidate_ms=agg.offset_ms, track_id=int(per_track[best][0].track.id), track_ids=used_ids,
                      tracks=track_rows, curve=agg.curve, windows=windows, window_curves=curves, segments=segments,
                      drift=drift, drift_range_ms=drift_range, timings=timings, p_correct=p, reliable=reliable,
                      unreliable_because=because,
                      evidence={"confidence": round(ev.confidence, 4), "second_peak": round(ev.second_peak, 4),
                                "windows": ev.windows, "span": round(ev.span, 3)}, **_base(inputs, options, grid, name))
