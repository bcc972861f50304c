"""The weight average a training run evaluates, aligns and refines with, and ships."""
from __future__ import annotations

import copy

import torch

from ..model import SyncNet


class WeightAverage:
    """Exponential moving average of a model's weights (parameters and float buffers, so the
    batch-norm statistics follow too), updated after every optimiser step.

    Averaging the last few hundred steps' weights lands in a flatter part of the loss surface
    than the last step alone; with a model that fits its training clips far better than new
    people (docs/model.md), that was meant to help on new people. Measured: +0.004 single-window
    accuracy, free at inference. The first steps use a smaller decay (``(1 + n) / (10 + n)``)
    so the average does not keep the random initialisation.
    """

    def __init__(self, model: SyncNet, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: SyncNet) -> None:
        self.updates += 1
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        for avg, cur in zip(self.model.state_dict().values(), model.state_dict().values()):
            if avg.dtype.is_floating_point:
                avg.lerp_(cur.to(avg.dtype), 1.0 - d)
            else:
                avg.copy_(cur)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "weights": self.model.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.updates = int(state["updates"])
        self.model.load_state_dict(state["weights"])
