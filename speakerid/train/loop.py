"""Training (kept importable from here): :mod:`.trainer` (the run), :mod:`.loss`, :mod:`.evaluate`
and :mod:`.refine`."""
from __future__ import annotations

from .config import TrainConfig
from .evaluate import (CLIP_OFFSETS_MS, aggregate_offset, clip_distance_curves, evaluate, relative_accuracy, shift_mfcc,
                       single_window_accuracy, video_embeddings)
from .loss import lr_at, pair_distances, sync_loss
from .refine import clip_alignment, refinement_threshold, score_training_windows
from .trainer import Trainer, TrainingDataError, TrainingInterrupted, WeightAverage, export_weights

__all__ = ["TrainConfig", "Trainer", "TrainingDataError", "TrainingInterrupted", "WeightAverage", "export_weights",
           "evaluate", "aggregate_offset", "clip_alignment", "clip_distance_curves", "relative_accuracy", "shift_mfcc",
           "single_window_accuracy", "video_embeddings", "lr_at", "pair_distances", "sync_loss", "refinement_threshold",
           "score_training_windows", "CLIP_OFFSETS_MS"]
