"""Exceptions raised by speakerid: one type per cause, all under :class:`SpeakerIdError`.

Every message names the file and the problem, so the CLI can print it as it is.
"""
from __future__ import annotations


class SpeakerIdError(Exception):
    """Base class of every error speakerid raises on purpose."""

    exit_code = 2


class InputNotFoundError(SpeakerIdError, FileNotFoundError):
    """The input path does not exist or is not a regular file."""


class EmptyMediaError(SpeakerIdError):
    """The file is zero bytes long, or holds no decodable frames or samples."""


class NotAMediaFileError(SpeakerIdError):
    """The file is not a container FFmpeg can open (a text file, an image, garbage)."""


class CorruptMediaError(SpeakerIdError):
    """The container opens but its streams cannot be decoded (truncated, damaged)."""


class UnsupportedCodecError(SpeakerIdError):
    """A stream uses a codec this build of FFmpeg cannot decode."""


class NoVideoStreamError(SpeakerIdError):
    """The file has no video stream, and video is needed."""


class NoAudioStreamError(SpeakerIdError):
    """The file has no audio stream, and audio is needed."""


class TooShortError(SpeakerIdError):
    """The media is shorter than the operation needs."""


class UnsupportedFrameRateError(SpeakerIdError):
    """The video's frame rate is outside what the 25 fps timeline can resample."""


class NoFaceError(SpeakerIdError):
    """No usable face was found where one is required."""


class NoSyncEvidenceError(SpeakerIdError):
    """The video has a face and audio, but no lip-sync evidence to measure an offset from."""


class OutputExistsError(SpeakerIdError, FileExistsError):
    """Refusing to overwrite a file (never the input, and not an output unless asked)."""


class ModelWeightsError(SpeakerIdError):
    """The model weights are missing, damaged, or of another architecture."""


class OutputNotWritableError(SpeakerIdError):
    """The output cannot be written there: a read-only or missing folder, a full disk."""


class OutputVerificationError(SpeakerIdError):
    """A written file failed its check (frames that do not decode, a wrong length, audio that
    does not cover the video, a residual offset): it was removed, not left at the target."""


class InvalidSettingError(SpeakerIdError, ValueError):
    """An option's value is outside what the computation takes (named in the message)."""


class SyncDriftError(NoSyncEvidenceError):
    """The offset changes along the video (segments disagree): one constant shift cannot repair it."""


class TrainingDataError(SpeakerIdError, ValueError):
    """The training cache cannot be trained on (no clips, or clips cut with different crop framings)."""
