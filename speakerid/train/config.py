"""Training hyper-parameters (kept free of torch so the CLI starts fast).

Defaults are the recipe of the shipped weights (docs/model.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrainConfig:
    cache_dir: str = "cache"
    out_dir: str = "runs/syncnet"
    seed: int = 0
    width: int = 16
    audio_width: int = 20
    mouth_px: int = 75
    cmn_cols: int = 301
    cvn: int = 0
    """Cepstral variance normalisation beside the mean normalisation (``SyncNetConfig.cvn``)."""
    video_diff: int = 0
    video_ref: int = 0
    """Mouth reference window in frames (``SyncNetConfig.video_ref``); 0 = off."""
    video_ref_raw: int = 0
    """With ``video_ref``: the frames themselves too (``SyncNetConfig.video_ref_raw``)."""
    embed_dim: int = 256
    chunks: int = 12
    chunk_len: int = 10
    steps1: int = 5000
    steps2: int = 1000
    lr1: float = 1e-3
    lr2: float = 3e-4
    weight_decay: float = 1e-4
    margin: float = 1.2
    augment: float = 1.0
    augment_aspect: float = 0.0
    augment_blur: float = 0.0
    augment_warp: float = 0.0
    augment_speed: float = 0.0
    """Speed perturbation: each run of windows is played at a rate in [1 − s, 1 + s], video and
    audio resampled together (``WindowSampler.batch``); 0 = off."""
    augment_babble: float = 0.0
    """Share of runs whose audio has another training clip's speech mixed in (``babble_snr_lo``
    to ``babble_snr_hi`` dB below it; :func:`~speakerid.train.data.babble_mfcc`), the positive
    still the clip's own audio: evidence that holds when others talk too. 0 = off."""
    babble_snr_lo: float = 0.0
    babble_snr_hi: float = 20.0
    init: str = ""
    """A checkpoint to start from (fine-tuning; its architecture replaces the one above) instead
    of random weights."""
    group_balance: float = 1.0
    ema: float = 0.999
    """Decay of the weight average that is evaluated, used for alignment and refinement, and
    shipped (0: off, the last step's weights)."""
    align_cols: int = 30
    """Measure each clip's own audio offset within ±this many MFCC columns (±300 ms) and train
    on it (0: off; every clip at offset 0)."""
    align_at: int = 2000
    """Stage-1 step of the first alignment pass (the refinement pass aligns again)."""
    neg_min: int = 3
    ce_weight: float = 1.0
    ce_temp: float = 0.1
    warmup: int = 100
    threads: int = 1
    device: str = "cpu"
    """Where the network trains ("cpu", "cuda", "cuda:1"); batches are still drawn and augmented
    on the CPU. The shipped weights were trained on the CPU."""
    ckpt_minutes: float = 4.0
    eval_every: int = 500
    rescan_every: int = 200
    groups: list[str] = field(default_factory=list)


def check_device(name: str) -> None:
    """Raise :class:`~speakerid.errors.InvalidSettingError` unless ``name`` is a device that
    torch can train on here (before any work, not at the first step)."""
    import torch

    from ..errors import InvalidSettingError

    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError) as e:
        raise InvalidSettingError(f"device {name!r} is not a torch device ({e})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidSettingError(f"device {name!r}: torch {torch.__version__} sees no CUDA GPU on this machine")
    if dev.type not in ("cpu", "cuda"):
        raise InvalidSettingError(f"device {name!r}: training runs on 'cpu' or 'cuda' only")
