"""SyncNet: two 2-D CNN streams that embed 0.2 s of audio and 0.2 s of mouth video in one space.

* Audio stream: MFCC window ``(13, 20)`` (13 cepstra × 20 columns at 100 Hz) → ``embed_dim``.
* Video stream: 5 grayscale 111×111 mouth crops at 25 fps, time stacked as channels → ``embed_dim``.
* Euclidean distance between the two embeddings: small = in sync.

The trained weights ship in the package (``speakerid/weights/syncnet.pt``) and load offline with
:func:`load_model`. A checkpoint is a plain dict (see :func:`save_checkpoint`) holding the
architecture config, fp16 weights, the MFCC normalisation, training metadata and a fingerprint
(SHA-256 of the weights) so results can name the exact model that produced them.
"""
from __future__ import annotations

import hashlib
import io
import os
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import ModelWeightsError
from .features import NUM_CEPSTRA, WINDOW_COLS, WINDOW_FRAMES

CHECKPOINT_FORMAT = "speakerid-syncnet"
CHECKPOINT_VERSION = 1
CROP = 111


@dataclass
class SyncNetConfig:
    """Architecture of a :class:`SyncNet`.

    ``width`` scales the video stream's channels, ``audio_width`` the audio stream's.
    """

    width: int = 16
    embed_dim: int = 256
    normalize: bool = True
    """L2-normalise embeddings (distances then lie in [0, 2])."""
    audio_width: int = 16
    mouth_px: int = 0
    """Side of the central square of the 111×111 crop that the video stream sees at full
    resolution; 0 = the whole crop at half resolution (the default, so checkpoints written
    before this field existed load unchanged; the training recipe sets 75)."""

    cmn_cols: int = 0
    """Cepstral mean normalisation of the MFCC over a sliding window of this many columns
    before the audio stream (:func:`speakerid.features.normalize_cepstra`); 0 = none."""

    cvn: bool = False
    """With ``cmn_cols``: normalise each cepstrum's variance over the same window too
    (``normalize_cepstra(variance=True)``)."""

    video_diff: bool = False
    """Give the video stream the 4 frame-to-frame differences beside the 5 frames (9 input
    channels): motion that does not depend on what a face looks like."""

    video_ref: int = 0
    """Subtract from each mouth frame the track's mean mouth over a centred window of this many
    frames (:meth:`SyncNet.mouth_reference`): what the mouth does, less what this face looks
    like at rest; 0 = off. The video stream then takes 6 channels, the 5 frames and the
    reference of the window's centre frame."""

    video_ref_raw: bool = False
    """With ``video_ref``: give the video stream the 5 frames themselves beside the 5
    differences from the reference (10 input channels)."""

    crop_geometry: str = "mouth"
    """How the mouth crops it was trained on were framed (:mod:`speakerid.faces.mouth`):
    ``"mouth"`` (each frame's own mouth; checkpoints from before this field) or ``"stable"``
    (following the upper face). The applications cut crops the same way."""

    def to_dict(self) -> dict:
        return asdict(self)


def _block(cin: int, cout: int, k=3, stride=1, padding=None) -> nn.Sequential:
    if padding is None:
        padding = k // 2 if isinstance(k, int) else tuple(x // 2 for x in k)
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, padding, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _CentreCrop(nn.Module):
    def __init__(self, size: int):
        super().__init__()
        self.size = int(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = (x.shape[-1] - self.size) // 2
        return x[..., o:o + self.size, o:o + self.size]


def reference_span(centre, n: int, width: int):
    """``(lo, hi)``: the frames ``[lo, hi)`` of a track of ``n`` frames whose mean is the mouth
    reference of frame ``centre`` (an int or an array): ``width`` frames centred on it, cut at
    the track's ends. The one definition :meth:`SyncNet.mouth_reference` and the streaming
    faces stage share."""
    lo = np.clip(centre - width // 2, 0, n)
    return lo, np.clip(centre - width // 2 + width, 0, n)


def _video_channels(cfg: SyncNetConfig) -> int:
    if cfg.video_diff:
        return 2 * WINDOW_FRAMES - 1
    return 2 * WINDOW_FRAMES if cfg.video_ref and cfg.video_ref_raw else WINDOW_FRAMES


AUDIO_FIELD = WINDOW_COLS
"""Receptive field of the audio stream in MFCC columns: exactly one window (20 columns)."""


class SyncNet(nn.Module):
    """The two-stream network. Inputs are raw: uint8-range crops and un-normalised MFCC.

    Video: the 5 crops (time as channels) are reduced to what the stream looks at: with
    ``mouth_px`` (the shipped model: 75) the central ``mouth_px`` square at full resolution
    (the crop is centred on the mouth, so this is lips, chin and nostrils; the lips stay ~40 px
    wide), otherwise the whole crop average-pooled 2× (111 → 55, lips ~18 px). Then 5 conv
    blocks, each stride-2 block halving the side, and a 3×3 spatial summary, so where things
    are in the mouth region is kept.

    Audio: a 2-D CNN over (cepstra × time) that pads and strides only along the cepstra axis
    and uses *valid* convolutions along time with a receptive field of exactly 20 columns. A
    ``(13, 20)`` window therefore maps to one embedding, and a longer ``(13, T)`` span maps to
    ``T − 19`` embeddings, one per 10 ms shift, computed once for all shifts
    (:meth:`embed_audio_seq`). The two paths give the same numbers (eval mode).
    """

    def __init__(self, config: SyncNetConfig | None = None):
        super().__init__()
        self.config = cfg = config or SyncNetConfig()
        w = cfg.width
        self.video = nn.Sequential(
            _CentreCrop(cfg.mouth_px) if cfg.mouth_px else nn.AvgPool2d(2),  # 111 → mouth_px, or → 55
            _block(_video_channels(cfg), 2 * w, 5, 2),    # → 28
            _block(2 * w, 4 * w, 3, 2),            # → 14
            _block(4 * w, 4 * w),
            _block(4 * w, 8 * w, 3, 2),            # → 7
            _block(8 * w, 8 * w),
            nn.AdaptiveAvgPool2d(3),
            nn.Flatten(),
            nn.Linear(8 * w * 9, cfg.embed_dim),
        )
        a = cfg.audio_width
        # time kernels 4,4,4,4,4,5 → receptive field 3·5 + 4 + 1 = 20 columns; cepstra 13 → 7 → 4 → 1
        self.audio = nn.Sequential(
            _block(1, a, (3, 4), 1, (1, 0)),
            _block(a, 2 * a, (3, 4), (2, 1), (1, 0)),
            _block(2 * a, 2 * a, (3, 4), 1, (1, 0)),
            _block(2 * a, 4 * a, (3, 4), (2, 1), (1, 0)),
            _block(4 * a, 4 * a, (3, 4), 1, (1, 0)),
            _block(4 * a, 8 * a, (4, 5), 1, 0),
            nn.Conv2d(8 * a, cfg.embed_dim, 1),
        )
        # fixed input normalisation, set from training data (kept in the checkpoint)
        self.register_buffer("mfcc_mean", torch.zeros(NUM_CEPSTRA))
        self.register_buffer("mfcc_std", torch.ones(NUM_CEPSTRA))
        self.register_buffer("pixel_mean", torch.tensor(0.45))
        self.register_buffer("pixel_std", torch.tensor(0.25))

    def _norm(self, z: torch.Tensor, dim: int = 1) -> torch.Tensor:
        return nn.functional.normalize(z, dim=dim) if self.config.normalize else z

    def prepare_mfcc(self, mfcc: np.ndarray) -> np.ndarray:
        """A whole clip's raw MFCC ``(13, T)`` as the audio stream takes it (cepstral mean
        normalisation when the model was trained with it). Apply to the whole clip before
        cutting windows: the normalisation looks at the neighbourhood of each column."""
        if self.config.cmn_cols:
            from .features import normalize_cepstra

            return normalize_cepstra(mfcc, self.config.cmn_cols, variance=self.config.cvn)
        return np.asarray(mfcc, np.float32)

    def mouth_reference(self, crops: np.ndarray) -> np.ndarray | None:
        """Per frame of one track's ``(N, 111, 111)`` crops, the mean crop over a centred window
        of ``config.video_ref`` frames (cut at the track's ends), uint8; None when the model
        does not use references."""
        w = int(self.config.video_ref)
        if not w:
            return None
        n = crops.shape[0]
        cs = np.zeros((n + 1,) + crops.shape[1:], np.float32)
        np.cumsum(crops, axis=0, dtype=np.float32, out=cs[1:])
        lo, hi = reference_span(np.arange(n), n, w)
        mean = (cs[hi] - cs[lo]) / (hi - lo)[:, None, None]
        return np.clip(np.rint(mean), 0, 255).astype(np.uint8)

    def embed_video(self, crops: torch.Tensor) -> torch.Tensor:
        """``(B, 5, 111, 111)`` crops with values 0..255 (uint8 or float) → ``(B, D)``; with
        ``config.video_ref``, ``(B, 6, 111, 111)``: the 5 crops and their reference."""
        x = crops.to(self.pixel_mean.dtype) / 255.0
        if self.config.video_ref:
            if x.shape[1] != WINDOW_FRAMES + 1:
                raise ValueError("this model needs each window's mouth reference as a 6th channel "
                                 "(SyncNet.mouth_reference)")
            # residual ×4: a few grey levels next to the frames' spread
            res = 4 * (x[:, :WINDOW_FRAMES] - x[:, WINDOW_FRAMES:]) / self.pixel_std
            if self.config.video_ref_raw:
                res = torch.cat([(x[:, :WINDOW_FRAMES] - self.pixel_mean) / self.pixel_std, res], 1)
            return self._norm(self.video(res))
        x = (x - self.pixel_mean) / self.pixel_std
        if self.config.video_diff:
            # differences ×4: they are small next to the frames, and carry the timing
            x = torch.cat([x, 4 * (x[:, 1:] - x[:, :-1])], 1)
        return self._norm(self.video(x))

    def embed_audio_seq(self, mfcc: torch.Tensor) -> torch.Tensor:
        """``(B, 13, T)`` MFCC after :meth:`prepare_mfcc` (T ≥ 20) → ``(B, D, T − 19)``: the embedding of the window
        starting at every column."""
        x = (mfcc.to(self.mfcc_mean.dtype) - self.mfcc_mean[:, None]) / self.mfcc_std[:, None]
        z = self.audio(x[:, None])  # (B, D, 1, T-19)
        return self._norm(z[:, :, 0], dim=1)

    def embed_audio(self, mfcc: torch.Tensor) -> torch.Tensor:
        """``(B, 13, 20)`` raw MFCC windows → ``(B, D)``."""
        if mfcc.shape[-1] != WINDOW_COLS:
            raise ValueError(f"embed_audio expects {WINDOW_COLS}-column windows, got {mfcc.shape[-1]}")
        return self.embed_audio_seq(mfcc)[:, :, 0]

    def forward(self, crops: torch.Tensor, mfcc: torch.Tensor) -> torch.Tensor:
        """Euclidean distance between paired video and audio windows, ``(B,)``."""
        return torch.linalg.vector_norm(self.embed_video(crops) - self.embed_audio(mfcc), dim=1)


def fingerprint(state_dict: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(state_dict):
        h.update(k.encode())
        h.update(state_dict[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def save_checkpoint(model: SyncNet, path: str | os.PathLike, *, half: bool = True, meta: dict | None = None,
                    extra: dict | None = None) -> str:
    """Write a checkpoint atomically; returns the weights' fingerprint.

    ``half`` stores float weights as fp16 (shipping); ``extra`` (optimizer state etc.) is for
    resuming training only.
    """
    sd = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone() for k, v in model.state_dict().items()}
    fp = fingerprint(sd)
    ckpt = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "config": model.config.to_dict(),
            "state_dict": sd, "fingerprint": fp, "meta": meta or {}}
    if extra:
        ckpt["extra"] = extra
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    torch.save(ckpt, tmp)
    os.replace(tmp, path)
    return fp


def read_checkpoint(path_or_bytes) -> dict:
    try:
        src = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes | bytearray) else path_or_bytes
        ckpt = torch.load(src, map_location="cpu", weights_only=False)
    except FileNotFoundError as e:
        raise ModelWeightsError(f"model weights not found: {path_or_bytes}") from e
    except Exception as e:  # noqa: BLE001 - torch raises many types for a damaged file
        raise ModelWeightsError(f"cannot read model weights ({type(e).__name__}: {e})") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ModelWeightsError("not a speakerid SyncNet checkpoint")
    if int(ckpt.get("version", 0)) > CHECKPOINT_VERSION:
        raise ModelWeightsError(f"checkpoint version {ckpt.get('version')} is newer than this speakerid")
    return ckpt


def model_from_checkpoint(ckpt: dict) -> SyncNet:
    model = SyncNet(SyncNetConfig(**ckpt["config"]))
    sd = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:
        raise ModelWeightsError(f"checkpoint does not fit the SyncNet architecture: {e}") from e
    model.fingerprint = ckpt.get("fingerprint", "")
    model.meta = ckpt.get("meta", {})
    return model


PACKAGED_WEIGHTS = "syncnet.pt"

_CACHE: dict = {}


def load_model(path: str | os.PathLike | None = None, *, device: str | torch.device | None = None) -> SyncNet:
    """Load a SyncNet in eval mode: the weights shipped in the package, or a checkpoint file.

    ``device``: "cpu", "cuda", … (default: CUDA when available). Offline: nothing is fetched.
    The packaged model is loaded once per process and device.
    """
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    key = (str(path) if path else None, str(dev))
    if key in _CACHE:
        return _CACHE[key]
    if path is None:
        res = resources.files("speakerid").joinpath("weights", PACKAGED_WEIGHTS)
        if not res.is_file():
            raise ModelWeightsError("the packaged SyncNet weights (speakerid/weights/syncnet.pt) are missing: "
                                    "reinstall speakerid or pass a checkpoint path")
        ckpt = read_checkpoint(res.read_bytes())
    else:
        ckpt = read_checkpoint(Path(path))
    model = model_from_checkpoint(ckpt).to(dev).eval()
    _CACHE[key] = model
    return model


def resolve_model(model: SyncNet | str | os.PathLike | None = None, *,
                  device: str | torch.device | None = None) -> SyncNet:
    """A SyncNet in eval mode from what an API caller passed: a model, a checkpoint path, or
    ``None`` for the packaged weights."""
    if isinstance(model, SyncNet):
        return model.eval()
    return load_model(model, device=device)


@dataclass
class Embedder:
    """Batched, gradient-free embedding of windows from a clip's crops and MFCC."""

    model: SyncNet
    batch_size: int = 256
    _dev: torch.device = field(init=False)

    def __post_init__(self):
        self._dev = next(self.model.parameters()).device

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
        from .rowstore import RowStore

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
        self.reference = int(model.config.video_ref)
        """Frames of the mouth reference each window needs beside its 5 crops (0: none)."""
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self._embedder = Embedder(model, batch_size=int(batch_size))

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        import time

        t0, c0 = time.perf_counter(), time.process_time()
        windows = np.asarray(windows)
        depth = WINDOW_FRAMES + (1 if self.reference else 0)
        if windows.ndim != 4 or windows.shape[1:] != (depth, CROP, CROP):
            raise ValueError(f"expected (B, {depth}, {CROP}, {CROP}) windows, got {windows.shape}")
        out = self._embedder.windows(windows)
        self.seconds += time.perf_counter() - t0
        self.cpu_seconds += time.process_time() - c0
        return out
