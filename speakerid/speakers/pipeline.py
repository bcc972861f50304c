"""``detect_speakers``: faces, then scores, streamed from one video file."""
from __future__ import annotations

import os

from ..faces import analyze_faces
from ..features import require_span
from ..media import channel_warning, iter_audio, probe, require_audio, require_video
from ..model import VideoWindowEmbedder, resolve_model
from ..options import FaceOptions, SpeakerOptions, split_settings
from ..progress import ProgressFn, silent
from ..timebase import VIDEO_FPS
from .results import SpeakerResult
from .scoring import SCORING, score_faces


def detect_speakers(video: str | os.PathLike, options: SpeakerOptions | None = None, *,
                    faces: FaceOptions | None = None, model=None, device: str | None = None,
                    progress: ProgressFn | None = None, **settings) -> SpeakerResult:
    """Find every face in ``video`` and say, frame by frame, which of them is speaking.

    ``options``: a :class:`~speakerid.options.SpeakerOptions` (``decoder`` "hmm", whose scores
    are the posterior probability that the face speaks, or "threshold"; the label ``threshold``;
    ``smooth_frames``, 10–100 sensible; ``max_shift_frames``; ``exclusive``; ``competition``;
    ``window_step``); ``faces``: a :class:`~speakerid.options.FaceOptions` (``detector``,
    ``detect_every``, ``detect_width``). Any of their fields can be given as keywords instead
    (``detect_speakers(v, threshold=0.6)``). ``model``: a :class:`~speakerid.model.SyncNet`, a
    checkpoint path, or None for the packaged weights.

    Raises :class:`~speakerid.errors.NoAudioStreamError` for a video without sound; a video
    without faces gives a result with no tracks.
    """
    opts, faces = split_settings(settings, options or SpeakerOptions(), faces or FaceOptions())
    progress = progress or silent
    info = probe(video)
    require_video(info)
    require_audio(info)  # fail before the expensive face pass
    require_span(video, info.duration_s or 0.0, opts.search_frames * 1000.0 / VIDEO_FPS, doing=SCORING, slack_s=0.05)
    net = resolve_model(model, device=device)
    # stream: each track's mouth windows are embedded while the faces stage decodes, so the
    # crops (12 KB per frame per face) are never all held
    analysis = analyze_faces(video, **faces.analyze_kwargs(), embed=VideoWindowEmbedder(net),
                             embed_step=opts.window_step, crop_geometry=net.config.crop_geometry, progress=progress)
    # the audio streams too: decoded, turned into MFCC and embedded a piece at a time
    report: dict = {}
    result = score_faces(analysis, iter_audio(video, video_start_s=info.video_start_s, report=report), net, opts,
                         progress=progress)
    result.warnings.extend(channel_warning(report))
    return result
