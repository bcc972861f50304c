"""Inference: batched, gradient-free embedding of mouth windows and of audio at every 10 ms."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..features import NUM_CEPSTRA, WINDOW_COLS, WINDOW_FRAMES
from ..rowstore import RowStore
from .network import CROP, SyncNet

def model_key(model: SyncNet) -> str:
    """A name for a model's weights: its fingerprint, or (weights not from a checkpoint, as in
    training) the object's identity. Embeddings made with one key are reused only for that key."""
    return getattr(model, "fingerprint", "") or f"object-{id(model)}"


@dataclass
class Embedder:
    """Batched, gradient-free embedding of windows from a clip's crops and MFCC."""

    model: SyncNet
    batch_size: int = 256
    _dev: torch.device = field(init=False)

    def __post_init__(self):
        self._dev = next(self.model.parameters()).device

    @property
    def model_key(self) -> str:
        return model_key(self.model)

    @torch.no_grad()
    def windows(self, windows: np.ndarray) -> np.ndarray:
        """``(B, 5, 111, 111)`` stacked mouth windows (uint8) → ``(B, D)`` float32 embeddings."""
        out = [self._embed_video(windows[b:b + self.batch_size]) for b in range(0, len(windows), self.batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.model.config.embed_dim), np.float32)

    @torch.no_grad()
    def video(self, crops: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Embeddings of the 5-frame windows ``crops[s:s+5]`` for each start ``s`` → ``(n, D)``.
        Windows are gathered a batch at a time, so overlapping windows are not all copied at once."""
        starts = np.asarray(starts, dtype=np.int64)
        ref = self.model.mouth_reference(crops)
        out = []
        for b in range(0, starts.size, self.batch_size):
            st = starts[b:b + self.batch_size]
            win = crops[st[:, None] + np.arange(WINDOW_FRAMES)]
            if ref is not None:
                win = np.concatenate([win, ref[st + WINDOW_FRAMES // 2][:, None]], axis=1)
            out.append(self._embed_video(win))
        return np.concatenate(out) if out else np.zeros((0, self.model.config.embed_dim), np.float32)

    def _embed_video(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(batch)).to(self._dev)
        return self.model.embed_video(x).float().cpu().numpy()

    @torch.no_grad()
    def audio(self, mfcc: np.ndarray, start_cols: np.ndarray) -> np.ndarray:
        """Embeddings of the MFCC windows ``mfcc[:, c:c+20]`` for each start column ``c`` → ``(n, D)``.

        ``mfcc``: the whole clip's raw MFCC (normalised here as the model needs). Many
        overlapping windows (e.g. every shift of a clip) are embedded through the audio
        stream's sliding path, which computes each 10 ms position once.
        """
        start_cols = np.asarray(start_cols, dtype=np.int64)
        D = self.model.config.embed_dim
        if start_cols.size == 0:
            return np.zeros((0, D), np.float32)
        if start_cols.min() < 0 or start_cols.max() + WINDOW_COLS > mfcc.shape[1]:
            raise ValueError("audio window outside the MFCC")
        mfcc = self.model.prepare_mfcc(mfcc)
        lo, hi = int(start_cols.min()), int(start_cols.max()) + 1
        if start_cols.size >= 8 and (hi - lo) <= 4 * start_cols.size:
            seq = self._sequence(mfcc[:, lo:hi + WINDOW_COLS - 1])
            return seq[start_cols - lo]
        out = []
        for b in range(0, start_cols.size, self.batch_size):
            idx = start_cols[b:b + self.batch_size, None] + np.arange(WINDOW_COLS)
            x = torch.from_numpy(np.ascontiguousarray(mfcc[:, idx].transpose(1, 0, 2), dtype=np.float32)).to(self._dev)
            out.append(self.model.embed_audio(x).float().cpu().numpy())
        return np.concatenate(out)

    @torch.no_grad()
    def sequence(self, mfcc: np.ndarray, chunk: int = 4096, *, prepared: bool = False) -> np.ndarray:
        """Embedding of the window starting at every column of a clip's raw MFCC ``(13, T)``
        → ``(T − 19, D)``. ``prepared``: ``mfcc`` already went through ``model.prepare_mfcc``
        (as a whole: pass slices of a prepared clip to embed it piece by piece)."""
        return self._sequence(mfcc if prepared else self.model.prepare_mfcc(mfcc), chunk)

    @torch.no_grad()
    def stored_sequence(self, mfcc_blocks, step: int = 1, dtype=np.float16, chunk: int = 4096):
        """:meth:`sequence` of a long clip whose raw MFCC arrive in column blocks (e.g. from
        :func:`~speakerid.features.iter_mfcc`), kept on disk: the embedding of the window
        starting at every ``step``-th column, rows ``(ceil((T − 19) / step), D)`` of ``dtype``
        in a :class:`~speakerid.rowstore.StoredRows`, and ``T``. The MFCC go to disk too; they
        are then normalised and embedded ``chunk`` columns at a time, each chunk read with the
        context its normalisation looks at, so neither the MFCC nor the embeddings are ever held
        whole and the numbers are those of the whole-clip path."""

        mfcc = RowStore(NUM_CEPSTRA, np.float32)
        for blk in mfcc_blocks:
            mfcc.append(blk.T)
        T = len(mfcc)
        n = T - WINDOW_COLS + 1
        out = RowStore(self.model.config.embed_dim, dtype)
        h = int(self.model.config.cmn_cols) // 2  # the normalisation looks this many columns either side
        chunk = max(step, chunk - chunk % step)
        for c0 in range(0, max(n, 0), chunk):
            c1 = min(n, c0 + chunk)
            lo, hi = max(0, c0 - h), min(T, c1 + WINDOW_COLS - 1 + h)
            m = self.model.prepare_mfcc(mfcc.read(lo, hi).T)[:, c0 - lo:c1 + WINDOW_COLS - 1 - lo]
            out.append(self._sequence(m)[::step])
        mfcc.close()
        return out.view(), T

    def _sequence(self, mfcc: np.ndarray, chunk: int = 4096) -> np.ndarray:
        T = mfcc.shape[1]
        n = T - WINDOW_COLS + 1
        if n <= 0:
            return np.zeros((0, self.model.config.embed_dim), np.float32)
        out = []
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            x = torch.from_numpy(np.ascontiguousarray(mfcc[:, s:e + WINDOW_COLS - 1], dtype=np.float32))[None].to(self._dev)
            out.append(self.model.embed_audio_seq(x)[0].T.float().cpu().numpy())
        return np.concatenate(out)


class VideoWindowEmbedder:
    """``(B, 5, 111, 111)`` uint8 mouth windows → ``(B, D)`` float32 embeddings: the ``embed``
    callable of :func:`speakerid.faces.analyze_faces`, which embeds each track's windows while
    it decodes instead of keeping the crops. Counts the wall and CPU seconds spent embedding.
    For a model with mouth references (``reference`` > 0) a window is ``(6, 111, 111)``: its 5
    crops and its reference (:meth:`SyncNet.mouth_reference`), which the faces stage makes.

    ``batch_size`` 32 costs as little CPU per window as larger batches on CPU, and ~25 MB of
    activations instead of ~90–150 MB at 128."""

    def __init__(self, model: SyncNet, batch_size: int = 32):
        self.model = model
        self.model_key = model_key(model)
        """Names the weights (:func:`model_key`): the faces stage records it with the embeddings."""
        self.reference = int(model.config.video_ref)
        """Frames of the mouth reference each window needs beside its 5 crops (0: none)."""
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self._embedder = Embedder(model, batch_size=int(batch_size))

    def __call__(self, windows: np.ndarray) -> np.ndarray:

        t0, c0 = time.perf_counter(), time.process_time()
        windows = np.asarray(windows)
        depth = WINDOW_FRAMES + (1 if self.reference else 0)
        if windows.ndim != 4 or windows.shape[1:] != (depth, CROP, CROP):
            raise ValueError(f"expected (B, {depth}, {CROP}, {CROP}) windows, got {windows.shape}")
        out = self._embedder.windows(windows)
        self.seconds += time.perf_counter() - t0
        self.cpu_seconds += time.process_time() - c0
        return out
