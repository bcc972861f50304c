"""Media I/O with PyAV: probe, stream frames, decode aligned audio, map time lines, write files.

Conventions used across speakerid:

* **Time zero is the first video frame.** Audio from :func:`read_audio` / :func:`iter_audio`
  starts at the presentation time of the first decoded video frame (padded with silence or
  trimmed), so audio sample ``n`` plays at ``n / 16000`` s after that frame.
* **The model's timeline** is 25 fps from that first frame. :class:`Timeline` maps each 25 fps
  frame to the source frame shown at that time (by timestamps) and back, so results are
  reported in the source's own frame numbers and seconds.
* Inputs are never written to; outputs go to a partial file beside the target and are renamed
  into place only when complete and verified.

Modules: :mod:`.container` (probe, open), :mod:`.video` (frames), :mod:`.audio` (samples),
:mod:`.timeline`, :mod:`.write` (encode, remux, verify).
"""
from __future__ import annotations

from ..outputs import atomic_output, check_output_path  # noqa: F401  (older imports name them here)
from .audio import SILENCE_BLOCK, SILENCE_DBFS, BlockPower, NativeAudio, NativeAudioStream, audio_extent, channel_warning, iter_audio, read_audio, shift_audio_pieces, stream_audio_native
from .container import MAX_SOURCE_FPS, MIN_SOURCE_FPS, MediaInfo, PathLike, probe, require_audio, require_video
from .timeline import Timeline
from .video import Frame, first_video_time, iter_frames, read_frame_times
from .write import (COPY_AUDIO_CODECS, WrittenMedia, encode_with_source_audio, remux_with_audio, verify_written,
                    write_video)

__all__ = [
    "MediaInfo", "Frame", "Timeline", "WrittenMedia", "NativeAudio", "NativeAudioStream", "PathLike", "BlockPower", "SILENCE_DBFS", "SILENCE_BLOCK", "channel_warning",
    "probe", "require_video", "require_audio", "iter_frames", "read_frame_times", "first_video_time",
    "read_audio", "iter_audio", "audio_extent", "stream_audio_native", "shift_audio_pieces",
    "write_video", "remux_with_audio", "encode_with_source_audio", "verify_written", "COPY_AUDIO_CODECS",
    "MIN_SOURCE_FPS", "MAX_SOURCE_FPS",
]
