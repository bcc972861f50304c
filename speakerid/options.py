"""Every setting of the pipelines, with its default, its meaning and its check, in one place.

One frozen dataclass per stage (after faster-whisper's options dataclass):

* :class:`FaceOptions`: which detector, how often and at what width it runs;
* :class:`SyncOptions`: the offset search, the clip aggregate, the drift check;
* :class:`SpeakerOptions`: the speaker scoring and its decoder.

The API takes an options object or the same names as keywords
(``measure_sync(video, search_ms=500)``); the CLI's flags are generated from the fields
(``metadata``: flag name, help, choices); each object checks itself when it is made, so a setting
the work cannot take fails before any decoding, with an :class:`~speakerid.errors.InvalidSettingError`
(a ``ValueError``) that names it.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from .errors import InvalidSettingError
from .evidence import AGGREGATES, DEFAULT_AGGREGATE, DRIFT_SEGMENT_S, DRIFT_TOLERANCE_MS
from .faces.detector import DETECTORS
from .timebase import MS_PER_COL

__all__ = ["FaceOptions", "SyncOptions", "SpeakerOptions", "DECODERS", "DECODER_DEFAULTS", "split_settings"]

DECODERS = ("hmm", "threshold")
DECODER_DEFAULTS = {"hmm": {"smooth_frames": 25, "threshold": 0.5},
                    "threshold": {"smooth_frames": 50, "threshold": 1.5}}
"""Smoothing window (25 fps model frames, triangle-weighted) and label threshold of each decoder,
chosen on the own composites and the bundled example (docs/speakers.md)."""
DEFAULT_COMPETITION = 0.5
"""``"threshold"`` decoder: share of the best other face's (positive) score taken off each face's
score, frame by frame, when labelling is exclusive; 0 with ``exclusive=False`` (overlapping
speech). The ``"hmm"`` decoder lets faces compete through its states instead."""


def _opt(default, help: str, **cli) -> Any:
    """A field with its CLI description: ``help``, and optionally ``flag``, ``metavar``,
    ``choices``, ``invert`` (a ``store_true`` flag that sets the field False), ``cli=False``."""
    return field(default=default, metadata={"help": help, **cli})


@dataclass(frozen=True)
class FaceOptions:
    """How faces are found: the settings of :func:`speakerid.faces.analyze_faces` the pipelines
    pass on."""

    detector: Any = _opt(None, "face detector (default retinaface; docs/design.md compares them)",
                         choices=DETECTORS, cli_default=DETECTORS[0])
    """A backend's name (``"retinaface"``, the default, or ``"centerface"``) or a detector object
    (:class:`~speakerid.faces.detector.FaceDetector`); None = the default."""
    detect_every: int = _opt(3, "run the face detector every N frames", metavar="N")
    detect_width: int = _opt(512, "face detector input width in pixels", metavar="PX")

    def __post_init__(self):
        if isinstance(self.detector, str) and self.detector not in DETECTORS:
            raise InvalidSettingError(f"detector must be one of {', '.join(DETECTORS)}, got {self.detector!r}")
        if int(self.detect_every) < 1:
            raise InvalidSettingError(f"detect_every must be at least 1, got {self.detect_every}")
        if int(self.detect_width) < 32:
            raise InvalidSettingError(f"detect_width must be at least 32 pixels, got {self.detect_width}")

    def analyze_kwargs(self) -> dict:
        return {"detector": self.detector, "detect_every": int(self.detect_every),
                "detect_width": int(self.detect_width)}


@dataclass(frozen=True)
class SyncOptions:
    """How an offset is measured (:func:`speakerid.sync.measure_sync`)."""

    search_ms: float = _opt(1000.0, "search offsets within ±MS ms (the clip must be at least MS ms + 0.6 s long)",
                          metavar="MS")
    step_ms: float = _opt(float(MS_PER_COL), "shift step in ms, a multiple of 10 (40 = whole video frames)",
                        metavar="MS")
    aggregate: str = _opt(DEFAULT_AGGREGATE, "how windows are combined (speakerid.evidence.aggregate_windows)",
                          choices=AGGREGATES, cli=False)
    segment_s: float = _opt(DRIFT_SEGMENT_S, "segment length for the drift check, s (0: no drift check)",
                           metavar="S")
    drift_tolerance_ms: float = _opt(DRIFT_TOLERANCE_MS, "segment offsets further apart than this are drift",
                                     cli=False)
    min_confidence: float = _opt(0.05, "clip confidence under which no offset is reported", cli=False)
    """Distances lie in [0, 2]; docs/sync.md says how the threshold was set."""
    track: int | None = _opt(None, "measure this face track only (ids as in `speakerid tracks`)",
                             metavar="ID")
    refine: bool = _opt(True, "refine the offset between shift steps with a parabola", cli=False)

    def __post_init__(self):
        if not (self.step_ms >= MS_PER_COL and float(self.step_ms) % MS_PER_COL == 0):
            raise InvalidSettingError(f"step_ms must be a multiple of {MS_PER_COL} ms (one MFCC column), "
                                      f"got {self.step_ms:g}")
        if not self.search_ms > 0:
            raise InvalidSettingError(f"search_ms must be positive, got {self.search_ms:g}")
        if self.step_ms > self.search_ms:
            raise InvalidSettingError(f"step_ms ({self.step_ms:g}) must not exceed search_ms ({self.search_ms:g})")
        if self.segment_s is not None and self.segment_s < 0:
            raise InvalidSettingError(f"segment_s must be 0 (no drift check) or positive, got {self.segment_s:g}")
        if self.aggregate not in AGGREGATES:
            raise InvalidSettingError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {self.aggregate!r}")


@dataclass(frozen=True)
class SpeakerOptions:
    """How faces are scored and labelled (:func:`speakerid.speakers.detect_speakers`)."""

    decoder: str = _opt("hmm", "hmm: scores are the probability that a face speaks, from a turn model; "
                               "threshold: calibrated z-scores less the competition term", choices=DECODERS)
    """How scores become labels: ``"hmm"`` (the default, as it beat the threshold rule on ten of
    twelve benchmark sets in AP and in F1, docs/speakers.md) or ``"threshold"``."""
    threshold: float | None = _opt(None, "score at which a face counts as speaking (default 0.5 with the hmm "
                                         "decoder, 1.5 with threshold)")
    smooth_frames: int | None = _opt(None, "average scores over this many 25 fps frames (default 25 with the hmm "
                                           "decoder, 50 with threshold)", flag="--smooth", metavar="FRAMES")
    noise_smoothing: bool = _opt(True, "keep the score averaging at its default width in noisy audio (default: "
                                       "with the hmm decoder and no --smooth, widen it up to 75 frames as the "
                                       "background gets louder)", flag="--fixed-smooth", invert=True)
    """With the hmm decoder and ``smooth_frames`` unset: average the scores over up to 3 s as the
    audio gets noisier (:mod:`speakerid.speakers.noise`)."""
    max_shift_frames: int = _opt(1, "how far (40 ms frames) a face's audio offset may differ from the video's",
                                 flag="--max-shift", metavar="FRAMES")
    search_frames: int = _opt(25, "shift range (± 40 ms frames) over which distances are compared", cli=False)
    window_step: int = _opt(1, "score every k-th window (faster, coarser)", cli=False)
    exclusive: bool = _opt(True, "let several faces be labelled speaking at once (default: only the "
                                 "highest-scoring face)", flag="--overlap", invert=True)
    competition: float | None = _opt(None, "threshold decoder: share of the best other face's score taken off each "
                                           f"face's score (default {DEFAULT_COMPETITION:g}; 0 with --overlap)",
                                     metavar="SHARE")
    audio_norm: bool = _opt(True, "subtract each audio window's mean distance to all mouths", cli=False)

    def __post_init__(self):
        self.decoded()
        if int(self.search_frames) < 1 or int(self.window_step) < 1 or int(self.max_shift_frames) < 0:
            raise InvalidSettingError("search_frames and window_step must be at least 1, max_shift_frames at least 0")

    def decoded(self) -> tuple[float, int, float]:
        """``(threshold, smooth_frames, competition)``: the decoder's defaults where None; an
        :class:`~speakerid.errors.InvalidSettingError` for a decoder it does not know or a
        competition it does not take."""
        if self.decoder not in DECODERS:
            raise InvalidSettingError(f"decoder must be one of {', '.join(DECODERS)}, got {self.decoder!r}")
        defaults = DECODER_DEFAULTS[self.decoder]
        threshold = float(defaults["threshold"] if self.threshold is None else self.threshold)
        smooth_frames = max(1, int(defaults["smooth_frames"] if self.smooth_frames is None else self.smooth_frames))
        competition = self.competition
        if self.decoder == "hmm":
            if competition:
                raise InvalidSettingError("competition applies to the 'threshold' decoder; the 'hmm' decoder's faces "
                                          "compete through its states")
            competition = 0.0
        elif competition is None:
            competition = DEFAULT_COMPETITION if self.exclusive else 0.0
        if not 0.0 <= competition < 1.0:
            raise InvalidSettingError(f"competition must be in [0, 1), got {competition}")
        return threshold, smooth_frames, float(competition)


def split_settings(settings: dict, *bases) -> tuple:
    """``bases`` (options objects) with the keyword ``settings`` that name their fields
    applied; a keyword no base has raises ``TypeError`` naming it."""
    left = dict(settings)
    out = []
    for base in bases:
        names = {f.name for f in fields(base)}
        mine = {k: left.pop(k) for k in list(left) if k in names}
        out.append(replace(base, **mine) if mine else base)
    if left:
        raise TypeError(f"unexpected arguments: {', '.join(sorted(left))}")
    return tuple(out)
