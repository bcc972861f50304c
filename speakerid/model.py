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
    """Architecture of a :class:`SyncNet`. ``width`` scales every layer's channels."""

    width: int = 16
    embed_dim: int = 256
    normalize: bool = True
    """L2-normalise embeddings (distances then lie in [0, 2])."""

    def to_dict(self) -> dict:
        return asdict(self)


def _block(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SyncNet(nn.Module):
    """The two-stream network. Inputs are raw: uint8-range crops and un-normalised MFCC."""

    def __init__(self, config: SyncNetConfig | None = None):
        super().__init__()
        self.config = cfg = config or SyncNetConfig()
        w = cfg.width
        # video: 111 → 56 → 28 → 14 → 7, then a 3×3 spatial summary keeps where things are
        self.video = nn.Sequential(
            _block(WINDOW_FRAMES, 2 * w, 5, 2),
            _block(2 * w, 2 * w, 3, 2),
            _block(2 * w, 4 * w),
            _block(4 * w, 4 * w, 3, 2),
            _block(4 * w, 8 * w),
            _block(8 * w, 8 * w, 3, 2),
            nn.AdaptiveAvgPool2d(3),
            nn.Flatten(),
            nn.Linear(8 * w * 9, cfg.embed_dim),
        )
        # audio: 13×20 → 13×10 → 6×5 → pooled 3×3
        self.audio = nn.Sequential(
            _block(1, 2 * w),
            _block(2 * w, 4 * w),
            nn.MaxPool2d((1, 2)),
            _block(4 * w, 8 * w),
            nn.MaxPool2d(2),
            _block(8 * w, 8 * w),
            nn.AdaptiveAvgPool2d(3),
            nn.Flatten(),
            nn.Linear(8 * w * 9, cfg.embed_dim),
        )
        # fixed input normalisation, set from training data (kept in the checkpoint)
        self.register_buffer("mfcc_mean", torch.zeros(NUM_CEPSTRA))
        self.register_buffer("mfcc_std", torch.ones(NUM_CEPSTRA))
        self.register_buffer("pixel_mean", torch.tensor(0.45))
        self.register_buffer("pixel_std", torch.tensor(0.25))

    def embed_video(self, crops: torch.Tensor) -> torch.Tensor:
        """``(B, 5, 111, 111)`` crops with values 0..255 (uint8 or float) → ``(B, D)``."""
        x = crops.to(self.pixel_mean.dtype) / 255.0
        x = (x - self.pixel_mean) / self.pixel_std
        z = self.video(x)
        return nn.functional.normalize(z, dim=1) if self.config.normalize else z

    def embed_audio(self, mfcc: torch.Tensor) -> torch.Tensor:
        """``(B, 13, 20)`` raw MFCC windows → ``(B, D)``."""
        x = (mfcc.to(self.mfcc_mean.dtype) - self.mfcc_mean[:, None]) / self.mfcc_std[:, None]
        z = self.audio(x[:, None])
        return nn.functional.normalize(z, dim=1) if self.config.normalize else z

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


@dataclass
class Embedder:
    """Batched, gradient-free embedding of windows from a clip's crops and MFCC."""

    model: SyncNet
    batch_size: int = 256
    _dev: torch.device = field(init=False)

    def __post_init__(self):
        self._dev = next(self.model.parameters()).device

    @torch.no_grad()
    def video(self, crops: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Embeddings of the 5-frame windows ``crops[s:s+5]`` for each start ``s`` → ``(n, D)``."""
        starts = np.asarray(starts, dtype=np.int64)
        out = []
        for b in range(0, starts.size, self.batch_size):
            idx = starts[b:b + self.batch_size, None] + np.arange(WINDOW_FRAMES)
            x = torch.from_numpy(np.ascontiguousarray(crops[idx])).to(self._dev)
            out.append(self.model.embed_video(x).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.model.config.embed_dim), np.float32)

    @torch.no_grad()
    def audio(self, mfcc: np.ndarray, start_cols: np.ndarray) -> np.ndarray:
        """Embeddings of the MFCC windows ``mfcc[:, c:c+20]`` for each start column ``c`` → ``(n, D)``."""
        start_cols = np.asarray(start_cols, dtype=np.int64)
        out = []
        for b in range(0, start_cols.size, self.batch_size):
            idx = start_cols[b:b + self.batch_size, None] + np.arange(WINDOW_COLS)
            x = torch.from_numpy(np.ascontiguousarray(mfcc[:, idx].transpose(1, 0, 2))).to(self._dev)
            out.append(self.model.embed_audio(x).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.model.config.embed_dim), np.float32)
