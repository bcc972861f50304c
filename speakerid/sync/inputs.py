"""Stage 1 of a sync measurement: what the offset search compares.

* the audio: the embedding of the audio window at every MFCC column (every 10 ms), decoded,
  turned into MFCC and embedded a piece at a time (on disk, so a long file's audio is never held
  whole), with its loudness (silence gives no answer);
* the video: faces found, tracked and mouth-cropped, and one embedding per 0.2 s window of every
  track, embedded while the faces stage decodes.

:func:`speakerid.sync.prepare_sync` makes both; :func:`~speakerid.sync.measure_prepared` searches
them. Audio can be swapped for other samples (:func:`embed_audio`), as the benchmarks do.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..faces import analyze_faces
from ..features import compute_mfcc, iter_mfcc
from ..media import SILENCE_BLOCK, BlockPower, channel_warning, iter_audio
from ..model import Embedder, VideoWindowEmbedder
from ..options import FaceOptions
from ..progress import ProgressFn, silent
from ..timebase import SAMPLE_RATE, VIDEO_FPS
from .results import PathLike

@dataclass
class TrackWindows:
    """One face track's 0.2 s windows: the model frame each starts at, and its embedding."""

    track: Any  # FaceTrack
    starts: np.ndarray   # model frame of each window's first frame
    emb: np.ndarray      # (n, D) video embeddings


@dataclass
class SyncVideo:
    """A video's faces (the analysis) and the embedded windows of every track that has any."""

    video: str
    analysis: Any        # FaceAnalysis
    tracks: list[TrackWindows]
    model: Any
    seconds: float
    faces_seconds: float = 0.0
    """Decoding, face detection, tracking and mouth crops."""
    embed_seconds: float = 0.0
    """Video embeddings."""
    embed_cpu_seconds: float = 0.0


@dataclass
class SyncAudio:
    """A video's audio as the search needs it: the embedding of the window at every MFCC
    column (``(T − 19, D)``, in memory or on disk), how many 16 kHz samples there were, and
    whether any 0.2 s of them reached SILENCE_DBFS."""
    emb: Any             # np.ndarray or StoredRows
    num_samples: int
    silent: bool
    seconds: float = 0.0
    """Decoding, MFCC and embedding."""
    streamed: bool = False
    """Embedded piece by piece while decoding (the pass reported its own progress)."""
    warnings: list[str] = field(default_factory=list)
    """What may make a measurement from this audio wrong (channels that cancel in a mono mix)."""


class LoudnessTap:
    """Passes audio pieces through, counting samples and keeping the loudest 0.2 s block's RMS
    (blocks aligned at sample 0, so any cut into pieces gives the same answer): the silence rule
    of :func:`measure_sync`, for a whole signal too (:func:`is_silent`)."""

    HOP = SILENCE_BLOCK

    def __init__(self, pieces, on_seconds=None):
        self._blocks = BlockPower(pieces, self.HOP)
        self._on_seconds = on_seconds  # called with the seconds passed, every 10 s of audio
        self.num_samples = 0

    def __iter__(self):
        for x in self._blocks:
            before = self.num_samples // (10 * SAMPLE_RATE)
            self.num_samples += int(x.size)
            if self._on_seconds is not None and self.num_samples // (10 * SAMPLE_RATE) > before:
                self._on_seconds(self.num_samples / float(SAMPLE_RATE))
            yield x

    @property
    def silent(self) -> bool:
        return self._blocks.silent


def is_silent(audio: np.ndarray) -> bool:
    """No 0.2 s stretch of the audio reaches SILENCE_DBFS (:class:`LoudnessTap` over one piece)."""
    tap = LoudnessTap([audio])
    for _ in tap:
        pass
    return tap.silent


def embed_audio(model, audio: np.ndarray) -> SyncAudio:
    """16 kHz mono ``audio`` (sample 0 at the first video frame) as the search needs it, embedded
    in memory."""
    t0 = time.perf_counter()
    emb = audio_embeddings(model, compute_mfcc(audio))
    return SyncAudio(emb=emb, num_samples=int(audio.size), silent=is_silent(audio), seconds=time.perf_counter() - t0)


def stream_audio(video: PathLike, model, progress: ProgressFn = silent, duration_s: float | None = None) -> SyncAudio:
    """Decode, turn into MFCC and embed the audio of ``video`` a piece at a time; the
    embeddings (float32, so the numbers are those of the in-memory path) go to a temporary
    file, so a long video's audio is never held whole. Progress: seconds decoded of
    ``duration_s`` (the container's figure)."""
    t0 = time.perf_counter()
    total = max(1, int(math.ceil(duration_s or 0.0)))
    report: dict = {}
    tap = LoudnessTap(iter_audio(video, report=report),
                      on_seconds=lambda sec: progress("audio", min(int(sec), total), total))
    emb, _T = Embedder(model).stored_sequence(iter_mfcc(tap), step=1, dtype=np.float32)
    progress("audio", total, total)
    return SyncAudio(emb=emb, num_samples=tap.num_samples, silent=tap.silent, seconds=time.perf_counter() - t0,
                     streamed=True, warnings=channel_warning(report))


def embed_video(video: PathLike, model, *, analysis=None, progress: ProgressFn = silent,
                faces: FaceOptions | None = None) -> SyncVideo:
    """Faces and one video embedding per 0.2 s window of every track: embedded while the faces
    stage decodes (streaming; the mouth crops are not kept), or from the crops of a given
    ``analysis``."""
    t0 = time.perf_counter()
    c0 = time.process_time()
    streamed = VideoWindowEmbedder(model)
    if analysis is None:
        analysis = analyze_faces(video, **(faces or FaceOptions()).analyze_kwargs(), embed=streamed,
                                 crop_geometry=model.config.crop_geometry, progress=progress)
    analysis.require_geometry(model.config.crop_geometry)
    # embedding time spent inside the faces pass counts as embedding, not as faces
    t_faces = time.perf_counter() - t0 - streamed.seconds
    c_faces = time.process_time() - c0 - streamed.cpu_seconds
    emb = Embedder(model)
    out = []
    for tr in analysis.tracks:
        pos, v = tr.window_embeddings_or(emb)
        if pos.size == 0:
            continue
        out.append(TrackWindows(track=tr, starts=tr.model_frames[pos].astype(np.int64), emb=v))
        progress("embed video", len(out), len(analysis.tracks))
    t_all = time.perf_counter() - t0
    return SyncVideo(video=str(video), analysis=analysis, tracks=out, model=model, seconds=t_all,
                     faces_seconds=t_faces, embed_seconds=t_all - t_faces,
                     embed_cpu_seconds=time.process_time() - c0 - c_faces)


def audio_embeddings(model, mfcc: np.ndarray) -> np.ndarray:
    """Embedding of the audio window starting at every MFCC column ``c`` (``(T − 19, D)``); a
    coarser search keeps only its own columns (:func:`speakerid.evidence.window_distances`)."""
    # the audio stream is fully convolutional along time: one pass gives every column
    return Embedder(model).sequence(mfcc)


@dataclass
class SyncInputs:
    """Stage 1's result: a video's embedded face windows and its embedded audio."""

    video: SyncVideo
    audio: SyncAudio

    @property
    def duration_s(self) -> float:
        """Seconds of video with audio: what the offset search can use."""
        return min(self.video.analysis.timeline.num_model_frames / VIDEO_FPS, self.audio.num_samples / float(SAMPLE_RATE))
