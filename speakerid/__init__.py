"""speakerid: a self-supervised SyncNet for lip-sync offsets and active speakers.

Sign convention, everywhere: ``offset_ms = t_audio − t_video``. Negative = the audio leads the
video (a sound is heard before the mouth makes it); positive = the audio lags.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import (  # noqa: E402
    CorruptMediaError,
    EmptyMediaError,
    InputNotFoundError,
    ModelWeightsError,
    NoAudioStreamError,
    NoFaceError,
    NotAMediaFileError,
    NoVideoStreamError,
    OutputExistsError,
    SpeakerIdError,
    TooShortError,
    UnsupportedCodecError,
    UnsupportedFrameRateError,
)

__all__ = [
    "__version__",
    "SpeakerIdError", "InputNotFoundError", "EmptyMediaError", "NotAMediaFileError", "CorruptMediaError",
    "UnsupportedCodecError", "NoVideoStreamError", "NoAudioStreamError", "TooShortError",
    "UnsupportedFrameRateError", "NoFaceError", "OutputExistsError", "ModelWeightsError",
]
