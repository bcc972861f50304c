"""Repair: write a copy of a video with its audio shifted back into sync, verified before it is
renamed into place; and the reverse, a copy with a known offset added (test material)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..errors import NoFaceError, NoSyncEvidenceError, OutputVerificationError, SyncDriftError, TooShortError
from ..evidence import DRIFT_TOLERANCE_MS
from ..media import probe, read_frame_times, remux_with_audio, require_audio, require_video, stream_audio_native, verify_written
from ..model import resolve_model
from ..options import FaceOptions, SyncOptions, split_settings
from ..outputs import check_output_path
from ..progress import ProgressFn, silent
from .inputs import SyncInputs, embed_video, stream_audio
from .measure import measure_prepared, prepare_sync
from .results import PathLike, RepairResult, SyncResult


def shift_sync(video: PathLike, out: PathLike, offset_ms: float, *, overwrite: bool = False) -> bool:
    """Write a copy of ``video`` whose audio is displaced by ``offset_ms`` (``t_audio − t_video``):
    +120 makes the audio lag by 120 ms. The video stream is copied; returns True when it was.

    This *introduces* an offset (to make test material); :func:`repair_sync` removes one.
    """
    shifted = stream_audio_native(video, -float(offset_ms))  # decoded while it is written
    return remux_with_audio(video, out, shifted, protect=[video], overwrite=overwrite)


def repair_sync(video: PathLike, out: PathLike, offset_ms: float | None = None, options: SyncOptions | None = None, *,
                faces: FaceOptions | None = None, overwrite: bool = False, remeasure: bool = True, model=None,
                device: str | None = None, accept_unreliable: bool = False, progress: ProgressFn | None = None,
                **settings) -> RepairResult:
    """Write ``out``: ``video`` with its audio shifted to undo ``offset_ms`` (measured when None,
    with ``options``/``faces`` or their fields as keywords, as :func:`measure_sync` takes them).

    The video stream is copied (not re-encoded) where the container allows; the audio is
    re-encoded with the shift applied, sample-accurately, keeping its rate, channels and length.
    The write is atomic and never replaces ``video``. Before the rename the written file is
    checked (every frame decodes, same length, audio covering the video) and, with ``remeasure``,
    measured again: its residual offset is reported, and a measured repair that leaves more than
    a drift's worth is not kept (the faces and video embeddings are reused when the video was
    copied bit for bit: only the audio changed).

    Raises NoFaceError / NoSyncEvidenceError when no offset is given and none can be measured, or
    the measured one is not reliable (``accept_unreliable`` applies it all the same);
    SyncDriftError when the offset drifts along the video.
    """
    options, faces = split_settings(settings, options or SyncOptions(), faces or FaceOptions())
    progress = progress or silent
    info = probe(video)
    require_video(info)
    require_audio(info)
    # refuse before the (slow) measurement, not after it; the atomic write checks again
    check_output_path(out, protect=[video], overwrite=overwrite, need_bytes=Path(video).stat().st_size)
    m = resolve_model(model, device=device) if offset_ms is None or remeasure else None
    measured = inputs = None
    if offset_ms is None:
        inputs = prepare_sync(video, model=m, faces=faces, progress=progress, search_ms=options.search_ms,
                              hint="give the offset to repair anyway")
        measured = measure_prepared(inputs, options, progress=progress)
        offset_ms = _offset_to_apply(video, measured, accept_unreliable)
    source_times = inputs.video.analysis.timeline.source_times if inputs is not None else read_frame_times(video)
    residual: list[SyncResult | None] = [None]

    def verify(tmp: Path, copied: bool) -> None:
        """The written file itself, before it is renamed into place: every frame decodes, its
        length and audio match the input, and (measured again) no offset is left."""
        progress("verify", 0, 1)
        verify_written(tmp, expect_frames=int(source_times.size), expect_end_s=float(source_times[-1]), name=out)
        progress("verify", 1, 1)
        if remeasure:
            residual[0] = _remeasure(tmp, out, m, inputs if copied else None, faces, options.search_ms, progress)
            _check_residual(out, measured, residual[0], offset_ms)

    # the audio is decoded, shifted and encoded a piece at a time while the output is written
    shifted = stream_audio_native(video, float(offset_ms))
    copied = remux_with_audio(video, out, shifted, protect=[video], overwrite=overwrite, verify=verify)
    return RepairResult(input=str(video), output=str(out), applied_offset_ms=float(offset_ms), measured=measured,
                        residual=residual[0], video_copied=copied)


def _offset_to_apply(video: PathLike, measured: SyncResult, accept_unreliable: bool) -> float:
    """The measured offset, or the error that says why it cannot be applied."""
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
    return float(measured.offset_ms)


def _remeasure(tmp: Path, out: PathLike, model, inputs: SyncInputs | None, faces: FaceOptions, search_ms: float,
               progress: ProgressFn) -> SyncResult | None:
    """The written file's offset with the default settings (its face windows reused when the video
    was copied bit for bit); None when it is too short to measure."""
    progress("re-measure", 0, 1)
    audio = stream_audio(tmp, model)
    video = (replace(inputs.video, video=str(tmp)) if inputs is not None
             else embed_video(tmp, model, progress=progress, faces=faces))
    try:
        return measure_prepared(SyncInputs(video=video, audio=audio), SyncOptions(search_ms=search_ms),
                                video_name=str(out), progress=progress)
    except TooShortError:
        return None
    finally:
        progress("re-measure", 1, 1)


def _check_residual(out: PathLike, measured: SyncResult | None, residual: SyncResult | None, applied: float) -> None:
    """A measured repair must leave (nearly) nothing: a residual as large as a drift means the
    written file's timing is not what was intended."""
    if (measured is not None and residual is not None and residual.offset_ms is not None
            and abs(residual.offset_ms) > DRIFT_TOLERANCE_MS):
        raise OutputVerificationError(f"{out}: the repaired file still measures {residual.offset_ms:+.0f} ms "
                                      f"(confidence {residual.confidence:.3f}) after undoing {applied:+.0f} ms; "
                                      "it was not kept")
