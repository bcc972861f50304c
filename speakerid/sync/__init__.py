"""Lip-sync offset: measure how far a video's audio is out of step with its speaker's lips, and fix it.

Sign convention (everywhere in speakerid): ``offset_ms = t_audio − t_video``.

* **Negative: the audio leads** — a sound is heard *before* the mouth makes it.
* **Positive: the audio lags** — the sound comes after the mouth movement.

Worked example: the speaker closes the lips for a "p" at 2.000 s of video, and the "p" is heard
at 1.700 s. ``offset_ms = 1.700 − 2.000 = −300`` ms: the audio leads by 300 ms. The measurement
finds it by matching the video window at 2.0 s with audio taken 30 MFCC columns (300 ms)
*earlier*, a shift of −30 columns. :func:`repair_sync` then delays the audio by 300 ms.

Two stages, as :mod:`speakerid.speakers` has (:func:`~speakerid.faces.analyze_faces` →
:func:`~speakerid.speakers.score_faces`): :func:`prepare_sync` embeds the audio and every face's
mouth windows (:mod:`.inputs`); :func:`measure_prepared` searches them (:mod:`.measure`).
:func:`measure_sync` does both. :mod:`.repair` writes the repaired file; :mod:`.results` holds
the result types. Settings: :class:`~speakerid.options.SyncOptions`.
"""
from __future__ import annotations

from ..evidence import AGGREGATES, DEFAULT_AGGREGATE, DRIFT_TOLERANCE_MS, aggregate_windows
from ..features import min_duration_s
from ..media import SILENCE_DBFS
from ..options import SyncOptions
from .inputs import SyncAudio, SyncInputs, SyncVideo, audio_embeddings, embed_audio, embed_video
from .measure import measure_prepared, measure_sync, prepare_sync
from .repair import repair_sync, shift_sync
from .results import RepairResult, SyncResult, SyncSegment, SyncWindows, TrackSync

DEFAULT_SEARCH_MS = SyncOptions.search_ms
STEP_MS = SyncOptions.step_ms
DEFAULT_SEGMENT_S = SyncOptions.segment_s
MIN_CLIP_CONFIDENCE = SyncOptions.min_confidence


def plot_sync(result: SyncResult, path=None, **kw):
    """Figure of a result: :func:`speakerid.output.plots.plot_sync`."""
    from ..output.plots import plot_sync as plot

    return plot(result, path, **kw)


def check_sync_settings(**settings) -> SyncOptions:
    """The :class:`~speakerid.options.SyncOptions` of ``settings``: raises
    :class:`~speakerid.errors.InvalidSettingError` naming a setting the measurement cannot take."""
    return SyncOptions(**settings)


__all__ = ["measure_sync", "prepare_sync", "measure_prepared", "repair_sync", "shift_sync", "plot_sync",
           "SyncResult", "RepairResult", "SyncWindows", "SyncSegment", "TrackSync", "SyncInputs", "SyncVideo",
           "SyncAudio", "SyncOptions", "embed_audio", "embed_video", "audio_embeddings", "aggregate_windows",
           "check_sync_settings", "min_duration_s", "AGGREGATES", "DEFAULT_AGGREGATE", "DEFAULT_SEARCH_MS", "STEP_MS",
           "DEFAULT_SEGMENT_S", "MIN_CLIP_CONFIDENCE", "DRIFT_TOLERANCE_MS", "SILENCE_DBFS"]
