"""The model: the SyncNet network (:mod:`.network`), its weights (:mod:`.weights`) and inference
(:mod:`.inference`)."""
from __future__ import annotations

from .inference import Embedder, VideoWindowEmbedder
from .network import CROP, SyncNet, SyncNetConfig, reference_span
from .weights import (CHECKPOINT_FORMAT, CHECKPOINT_VERSION, PACKAGED_WEIGHTS, fingerprint, load_model,
                      model_from_checkpoint, read_checkpoint, resolve_model, save_checkpoint)

__all__ = ["SyncNet", "SyncNetConfig", "CROP", "reference_span", "Embedder", "VideoWindowEmbedder", "load_model",
           "resolve_model", "read_checkpoint", "save_checkpoint", "model_from_checkpoint", "fingerprint",
           "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "PACKAGED_WEIGHTS"]
