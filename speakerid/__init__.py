"""speakerid: a self-supervised SyncNet for lip-sync offsets and active speakers.

Sign convention, everywhere: ``offset_ms = t_audio − t_video``. Negative = the audio leads the
video (a sound is heard before the mouth makes it); positive = the audio lags.
"""
from __future__ import annotations

__version__ = "0.2.0"

from .errors import (  # noqa: E402
    CorruptMediaError,
    EmptyMediaError,
    InputNotFoundError,
    ModelWeightsError,
    NoAudioStreamError,
    NoFaceError,
    NoSyncEvidenceError,
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
    "UnsupportedFrameRateError", "NoFaceError", "NoSyncEvidenceError", "OutputExistsError", "ModelWeightsError",
]

# Heavy parts (torch, PyAV) load on first use so ``import speakerid`` stays light.
# name → module under speakerid that defines it
_LAZY = {
    "detect_speakers": "speakers",
    "SpeakerResult": "speakers",
    "measure_sync": "sync",
    "repair_sync": "sync",
    "SyncResult": "sync",
    "FaceOptions": "options",
    "SpeakerOptions": "options",
    "SyncOptions": "options",
}
__all__ += list(_LAZY)


def __getattr__(name: str):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'speakerid' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value
