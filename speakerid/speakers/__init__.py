"""Active speaker detection: which face speaks, frame by frame, from lip-sync evidence.

Every face track's 0.2 s mouth windows are embedded by the SyncNet and compared with the one
audio track at the same time, over a range of audio shifts. The evidence that a window is in
sync is how much closer the audio is at the track's shift than typically
(``median over shifts − distance at the track's shift``), so a mouth that moves while somebody
else is heard scores near zero: only lip *sync* counts, not motion.

Two stages: :func:`~speakerid.faces.analyze_faces`, then :func:`score_faces`
(:mod:`.scoring`: offsets, scores, calibration, decoding); :func:`detect_speakers` does both
(:mod:`.pipeline`). :mod:`.labels` turns scores into labels and segments; :mod:`.results` holds
the result types. Settings: :class:`~speakerid.options.SpeakerOptions`.
"""
from __future__ import annotations

from ..options import DECODER_DEFAULTS, DECODERS, DEFAULT_COMPETITION, SpeakerOptions
from .labels import MIN_SEGMENT_S, label_tracks
from .pipeline import detect_speakers
from .results import CSV_FIELDS, OFFSCREEN, Segment, SpeakerResult, SpeakerTrack, speaker_name
from .scoring import score_faces

DEFAULT_DECODER = SpeakerOptions.decoder
DEFAULT_SMOOTH_FRAMES = DECODER_DEFAULTS[DEFAULT_DECODER]["smooth_frames"]
DEFAULT_THRESHOLD = DECODER_DEFAULTS[DEFAULT_DECODER]["threshold"]
DEFAULT_MAX_SHIFT_FRAMES = SpeakerOptions.max_shift_frames
DEFAULT_SEARCH_FRAMES = SpeakerOptions.search_frames


def decoder_settings(decoder: str, threshold: float | None = None, smooth_frames: int | None = None,
                     competition: float | None = None, *, exclusive: bool = True) -> tuple[float, int, float]:
    """``(threshold, smooth_frames, competition)`` for ``decoder``, its defaults where None
    (:meth:`SpeakerOptions.decoded`)."""
    return SpeakerOptions(decoder=decoder, threshold=threshold, smooth_frames=smooth_frames, competition=competition,
                          exclusive=exclusive).decoded()


__all__ = ["detect_speakers", "score_faces", "label_tracks", "decoder_settings", "SpeakerResult", "SpeakerTrack",
           "Segment", "OFFSCREEN", "SpeakerOptions", "CSV_FIELDS", "speaker_name", "MIN_SEGMENT_S", "DECODERS", "DEFAULT_DECODER",
           "DECODER_DEFAULTS", "DEFAULT_THRESHOLD", "DEFAULT_COMPETITION", "DEFAULT_SMOOTH_FRAMES",
           "DEFAULT_MAX_SHIFT_FRAMES", "DEFAULT_SEARCH_FRAMES"]
