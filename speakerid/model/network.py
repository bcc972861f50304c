"""SyncNet: two 2-D CNN streams that embed 0.2 s of audio and 0.2 s of mouth video in one space.

* Audio stream: MFCC window ``(13, 20)`` (13 cepstra × 20 columns at 100 Hz) → ``embed_dim``.
* Video stream: 5 grayscale 111×111 mouth crops at 25 fps, time stacked as channels → ``embed_dim``.
* Euclidean distance between the two embeddings: small = in sync.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from ..features import NUM_CEPSTRA, WINDOW_COLS, WINDOW_FRAMES, reference_span
from ..timebase import CROP_SIZE

CROP = CROP_SIZE


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


def _video_channels(cfg: SyncNetConfig) -> int:
    if cfg.video_diff:
        return 2 * WINDOW_FRAMES - 1
    return 2 * WINDOW_FRAMES if cfg.video_ref and cfg.video_ref_raw else WINDOW_FRAMES


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
            from ..features import normalize_cepstra

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
