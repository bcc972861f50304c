"""Checkpoints and the packaged weights.

The trained weights ship in the package (``speakerid/weights/syncnet.pt``) and load offline with
:func:`load_model`. A checkpoint is a plain dict (see :func:`save_checkpoint`) holding the
architecture config, fp16 weights, the MFCC normalisation, training metadata and a fingerprint
(SHA-256 of the weights) so results can name the exact model that produced them. Checkpoints are
read with ``torch.load(weights_only=True)``: a file can hold tensors and plain data, never code.
"""
from __future__ import annotations

import hashlib
import io
import os
from importlib import resources
from pathlib import Path

import torch

from ..errors import ModelWeightsError
from ..outputs import atomic_output
from .network import SyncNet, SyncNetConfig

CHECKPOINT_FORMAT = "speakerid-syncnet"
CHECKPOINT_VERSION = 1


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
    with atomic_output(path) as tmp:
        torch.save(ckpt, tmp)
    return fp


def read_checkpoint(path_or_bytes) -> dict:
    try:
        src = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes | bytearray) else path_or_bytes
        ckpt = torch.load(src, map_location="cpu", weights_only=True)
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


def export_weights(src: str | os.PathLike, dst: str | os.PathLike, metrics: dict | None = None) -> str:
    """Write the shipping checkpoint (fp16 weights, metadata, no optimizer state)."""
    ckpt = read_checkpoint(Path(src))
    model = model_from_checkpoint(ckpt)
    meta = dict(ckpt.get("meta", {}))
    if metrics:
        meta["metrics"] = metrics
    return save_checkpoint(model, dst, half=True, meta=meta)
