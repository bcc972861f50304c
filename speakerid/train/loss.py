"""The training objective: distances of a batch's windows at every shift, the contrastive loss with
a multi-way term, and the learning-rate schedule (see :mod:`speakerid.train.trainer`)."""
from __future__ import annotations

import math

import torch

from ..features import COLS_PER_FRAME
from ..model import SyncNet
from .config import TrainConfig
from .data import MAX_SHIFT

NEAR = 4 * COLS_PER_FRAME  # shifts below 4 frames are "near" negatives


def pair_distances(model: SyncNet, video: torch.Tensor, audio: torch.Tensor, chunk_len: int) -> torch.Tensor:
    """Distances of every window of a batch to its audio at every shift → ``(C·L, 2·MAX_SHIFT+1)``."""
    v = model.embed_video(video)  # (C·L, D)
    a = model.embed_audio_seq(audio)  # (C, D, P)
    C, D, _ = a.shape
    L = chunk_len
    idx = (COLS_PER_FRAME * torch.arange(L)[:, None] + torch.arange(2 * MAX_SHIFT + 1)).to(a.device)  # (L, S)
    a = a[:, :, idx]  # (C, D, L, S)
    v = v.view(C, L, D)
    if model.config.normalize:
        d2 = (2 - 2 * torch.einsum("cld,cdls->cls", v, a)).clamp_min(0)
    else:
        d2 = ((v[..., None] - a.permute(0, 2, 1, 3)) ** 2).sum(2)
    return (d2 + 1e-8).sqrt().reshape(C * L, -1)


def sync_loss(d: torch.Tensor, valid: torch.Tensor, weight: torch.Tensor, cfg: TrainConfig) -> tuple[torch.Tensor, dict]:
    S = d.shape[1]
    shifts = torch.arange(S, device=d.device) - MAX_SHIFT
    w = weight[:, None] * valid
    pos = d[:, MAX_SHIFT]
    wp = weight * valid[:, MAX_SHIFT]
    pos_loss = (wp * pos ** 2).sum() / wp.sum().clamp_min(1)
    neg_l = torch.relu(cfg.margin - d) ** 2
    near = (shifts.abs() >= cfg.neg_min) & (shifts.abs() < NEAR)
    far = shifts.abs() >= NEAR
    wn, wf = w * near, w * far
    neg_loss = 0.5 * (wn * neg_l).sum() / wn.sum().clamp_min(1) + 0.5 * (wf * neg_l).sum() / wf.sum().clamp_min(1)
    loss = pos_loss + neg_loss
    stats = {"pos_loss": pos_loss.item(), "neg_loss": neg_loss.item()}
    # candidate set of the single-window task: valid shifts; right if |argmin| ≤ 1 frame
    dm = d.detach().masked_fill(~valid, float("inf"))
    am = dm.argmin(1) - MAX_SHIFT
    full = valid.all(1) & (weight > 0)
    stats["acc"] = ((am.abs() <= COLS_PER_FRAME) & full).sum().item() / max(1, full.sum().item())
    stats["d_pos"] = (pos * wp).sum().item() / max(1.0, wp.sum().item())
    stats["d_neg"] = (d.detach() * wf).sum().item() / max(1.0, wf.sum().item())
    if cfg.ce_weight > 0:
        # multi-way term: softmax over the shifts, target = no shift (shifts of 1..neg_min-1 columns ignored)
        ign = (shifts.abs() > 0) & (shifts.abs() < cfg.neg_min)
        logits = (-(d ** 2) / cfg.ce_temp).masked_fill(~valid | ign, -1e4)
        ce = torch.nn.functional.cross_entropy(logits, torch.full((d.shape[0],), MAX_SHIFT, device=d.device), reduction="none")
        ce = (ce * wp).sum() / wp.sum().clamp_min(1)
        loss = loss + cfg.ce_weight * ce
        stats["ce"] = ce.item()
    stats["loss"] = loss.item()
    return loss, stats


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * p)))
