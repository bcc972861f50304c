"""Lip-geometry experiment, step 2: a geometry stream trained against the shipped model's audio
stream (frozen), alone and fused with the pixel stream; single-window and clip-level figures on
the eval cache, the tuning group beside the final group (docs/experiments.md, "Lip geometry").

    python benchmarks/lipgeom_ab.py --lips LIPCACHE --pixels PIXCACHE --out results.json

``LIPCACHE``: from benchmarks/lipgeom_extract.py (train/… and eval/); ``PIXCACHE``: a training
cache (``python -m speakerid.train.cache``) holding at least eval/, for the pixel stream's curves
on the same windows.

Why a frozen audio stream: the geometry embedding then lives in the pixel stream's space, so the
two distances can be added window by window, and the audio side (the costly part to train on
2 cores) is not learnt again.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibrate_reliability import FINAL_GROUP, identity  # noqa: E402
from lipgeom_extract import JAW, KEPT, LIPS_INNER, LIPS_OUTER  # noqa: E402

from speakerid.evidence import window_distances  # noqa: E402
from speakerid.features import COLS_PER_FRAME, WINDOW_COLS, WINDOW_FRAMES  # noqa: E402
from speakerid.model import Embedder, load_model  # noqa: E402
from speakerid.train.evaluate import (CLIP_OFFSETS_MS, aggregate_offset, relative_accuracy,  # noqa: E402
                                      shift_mfcc, single_window_accuracy, video_embeddings)

MAX_SHIFT = 100
MOVING = LIPS_OUTER + LIPS_INNER + JAW
_POS = {k: i for i, k in enumerate(KEPT)}
MIN_PRESENCE = 10.0  # the mesh's face logit: below it the crop held no clear face


def frame_features(points: np.ndarray) -> np.ndarray:
    """``(n, K, 3)`` mesh points in source pixels → ``(n, 3·|MOVING|)``: lip and jaw points in a
    face-fixed frame (origin between the eyes, x along the eye line, unit = eye distance)."""
    p = points.astype(np.float64)
    le = (p[:, _POS[33]] + p[:, _POS[133]]) / 2
    re = (p[:, _POS[362]] + p[:, _POS[263]]) / 2
    v = re - le
    d = np.linalg.norm(v[:, :2], axis=1)
    th = np.arctan2(v[:, 1], v[:, 0])
    c, s = np.cos(-th), np.sin(-th)
    q = p[:, [_POS[k] for k in MOVING]] - ((le + re) / 2)[:, None]
    x = c[:, None] * q[..., 0] - s[:, None] * q[..., 1]
    y = s[:, None] * q[..., 0] + c[:, None] * q[..., 1]
    out = np.stack([x, y, q[..., 2]], -1) / d[:, None, None]
    return out.reshape(len(p), -1).astype(np.float32)


class Clip:
    def __init__(self, path: Path):
        z = np.load(path)
        self.path = path
        self.meta = json.loads(str(z["meta"]))
        pts, pres = z["points"], z["presence"]
        self.shot = z["shot"]
        self.mfcc = z["mfcc"]
        ok = np.isfinite(pres) & (np.nan_to_num(pres, nan=-1) >= MIN_PRESENCE)
        f = frame_features(np.nan_to_num(pts))
        f[~ok] = np.nan
        if ok.any():
            f = f - np.nanmedian(f[ok], axis=0)  # the clip's (track's) rest shape: who it is
        self.feat = np.nan_to_num(f)
        self.ok = ok

    def windows(self) -> np.ndarray:
        """Starts of the windows the training cache would use, with "usable" = a face mesh here."""
        from speakerid.train.cache import CachedClip, usable_windows

        return usable_windows(CachedClip(self.path, None, self.ok, self.shot, self.mfcc, self.meta))

    def stacks(self, starts: np.ndarray) -> np.ndarray:
        return self.feat[starts[:, None] + np.arange(WINDOW_FRAMES)]  # (n, 5, F)


class GeometryStream(torch.nn.Module):
    def __init__(self, feat: int, hidden: int = 512, dim: int = 256, dropout: float = 0.1):
        super().__init__()
        self.register_buffer("scale", torch.ones(feat))
        inp = WINDOW_FRAMES * feat + (WINDOW_FRAMES - 1) * feat
        self.net = torch.nn.Sequential(
            torch.nn.Linear(inp, hidden), torch.nn.LayerNorm(hidden), torch.nn.GELU(), torch.nn.Dropout(dropout),
            torch.nn.Linear(hidden, hidden), torch.nn.LayerNorm(hidden), torch.nn.GELU(), torch.nn.Dropout(dropout),
            torch.nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 5, F)
        x = x / self.scale
        d = 4 * (x[:, 1:] - x[:, :-1])  # motion, as the pixel stream's differences
        z = self.net(torch.cat([x.flatten(1), d.flatten(1)], 1))
        return torch.nn.functional.normalize(z, dim=1)


def load_split(root: Path, split: str) -> list[Clip]:
    return [Clip(p) for p in sorted((root / split).rglob("*.npz"))]


def audio_rows(emb: Embedder, clips: list[Clip]) -> tuple[torch.Tensor, np.ndarray]:
    """Every clip's audio embedding at every column, one float16 table, and each clip's first row."""
    rows, base, b = [], [], 0
    for c in clips:
        a = emb.sequence(c.mfcc).astype(np.float16) if c.mfcc.shape[1] >= WINDOW_COLS else np.zeros((0, 256), np.float16)
        rows.append(a)
        base.append(b)
        b += len(a)
    return torch.from_numpy(np.concatenate(rows)), np.asarray(base, np.int64)


def train(clips: list[Clip], audio: torch.Tensor, base: np.ndarray, steps: int, seed: int, log) -> GeometryStream:
    from speakerid.train.config import TrainConfig
    from speakerid.train.loss import lr_at, sync_loss

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    cfg = TrainConfig()
    wins = [c.windows() for c in clips]
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(clips):
        if wins[i].size:
            groups.setdefault(c.meta["group"], []).append(i)
    gnames = sorted(groups)
    gsize = np.array([sum(wins[i].size for i in groups[g]) for g in gnames], np.float64)
    gp = np.sqrt(gsize) / np.sqrt(gsize).sum()
    log(f"train: {sum(w.size for w in wins)} windows; groups {dict(zip(gnames, gsize.astype(int).tolist()))}")
    allf = np.concatenate([c.stacks(w)[:, 2] for c, w in zip(clips, wins) if w.size])
    model = GeometryStream(allf.shape[1])
    model.scale.copy_(torch.from_numpy(allf.std(0) + 1e-3))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    sh = np.arange(-MAX_SHIFT, MAX_SHIFT + 1)
    B = 256
    t0 = time.time()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, 1e-3, 100)
        gi = rng.choice(len(gnames), B, p=gp)
        xs, cols, rowmax, rb = [], [], [], []
        for g in gi:
            ci = groups[gnames[g]][rng.integers(len(groups[gnames[g]]))]
            s = int(wins[ci][rng.integers(wins[ci].size)])
            xs.append(clips[ci].stacks(np.array([s]))[0])
            cols.append(COLS_PER_FRAME * s + sh)
            rb.append(base[ci])
            rowmax.append(clips[ci].mfcc.shape[1] - WINDOW_COLS)
        cols = np.asarray(cols)
        valid = (cols >= 0) & (cols <= np.asarray(rowmax)[:, None])
        idx = np.asarray(rb)[:, None] + np.clip(cols, 0, np.asarray(rowmax)[:, None])
        a = audio[torch.from_numpy(idx)].float()  # (B, S, D)
        v = model(torch.from_numpy(np.stack(xs)))
        d2 = (2 - 2 * torch.einsum("bd,bsd->bs", v, a)).clamp_min(0)
        d = (d2 + 1e-8).sqrt()
        loss, st = sync_loss(d, torch.from_numpy(valid), torch.ones(B), cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % 250 == 0:
            log(f"  step {step + 1}/{steps} loss {st['loss']:.3f} acc {st['acc']:.3f} "
                f"d+ {st['d_pos']:.3f} d- {st['d_neg']:.3f} ({time.time() - t0:.0f}s)")
    model.eval()
    return model


def eval_curves(model: GeometryStream, pix_model, eval_clips: list[Clip], pix_root: Path, log) -> list[dict]:
    """Per eval clip: the windows both caches can score, their geometry and pixel distance
    curves, unshifted and at every artificial offset."""
    from speakerid.train.cache import load_clip, usable_windows

    emb = Embedder(pix_model)
    out = []
    for c in eval_clips:
        rel = Path(c.meta["file"]).with_suffix(".npz")
        pc = load_clip(pix_root / rel)
        if pc.usable.size != c.ok.size:
            log(f"  {rel}: timelines differ ({pc.usable.size} vs {c.ok.size}); skipped")
            continue
        w = np.intersect1d(usable_windows(pc), c.windows())
        if w.size == 0:
            continue
        with torch.no_grad():
            g = model(torch.from_numpy(c.stacks(w))).numpy()
        p = video_embeddings(pix_model, pc.crops, w)
        fill = c.mfcc.mean(1)
        row = {"name": rel.stem, "final": identity(rel.stem) in FINAL_GROUP, "source": rel.stem, "curves": {}}
        for off in (0,) + CLIP_OFFSETS_MS:
            m = c.mfcc if off == 0 else shift_mfcc(c.mfcc, off // 10, fill)
            a = emb.sequence(m)
            sh = np.arange(-MAX_SHIFT, MAX_SHIFT + 1)
            dg = window_distances(w, g, a, sh, chunk=128)
            dp = window_distances(w, p, a, sh, chunk=128)
            row["curves"][off] = (np.where(np.isnan(dp), np.inf, dp), np.where(np.isnan(dg), np.inf, dg))
        out.append(row)
    return out


def figures(rows: list[dict], lam: float | None) -> dict:
    """Single-window (frame steps and relative) and clip-level figures for d_pix + lam·d_geo
    (lam None: geometry alone)."""
    from speakerid.train.evaluate import _eval_source

    def fused(dp, dg):
        return dg if lam is None else (dp if lam == 0 else dp + lam * dg)

    cur0 = [fused(*r["curves"][0]) for r in rows]
    res = single_window_accuracy(np.concatenate(cur0)) if cur0 else {}
    by = {}
    for r, c in zip(rows, cur0):
        by.setdefault(_eval_source(r["name"]), []).append(c)
    res.update({k: v for k, v in relative_accuracy(by).items() if k == "acc_10ms_relative"})
    err = []
    for r in rows:
        for off in CLIP_OFFSETS_MS:
            est, _ = aggregate_offset(fused(*r["curves"][off]))
            err.append(abs(10 * est - off))
    err = np.asarray(err)
    res["clip_within_40ms"] = float((err <= 40).mean()) if err.size else float("nan")
    res["clip_mae_ms"] = float(err.mean()) if err.size else float("nan")
    return res


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--lips", required=True)
    ap.add_argument("--pixels", required=True)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--groups", nargs="*", default=None, help="training groups (default: all)")
    ap.add_argument("--save", default="")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    log = lambda m: print(m, flush=True)  # noqa: E731
    lips = Path(a.lips)
    pix_model = load_model()
    pix_model.eval()
    t0 = time.time()
    clips = [c for c in load_split(lips, "train") if not a.groups or c.meta["group"] in a.groups]
    log(f"{len(clips)} training clips loaded ({time.time() - t0:.0f}s)")
    audio, base = audio_rows(Embedder(pix_model), clips)
    log(f"audio rows {tuple(audio.shape)} ({time.time() - t0:.0f}s)")
    model = train(clips, audio, base, a.steps, a.seed, log)
    if a.save:
        torch.save(model.state_dict(), a.save)
    rows = eval_curves(model, pix_model, load_split(lips, "eval"), Path(a.pixels), log)
    res = {"steps": a.steps, "seed": a.seed, "groups": a.groups, "clips": len(rows), "by_group": {}}
    for name, sel in (("tuning", [r for r in rows if not r["final"]]), ("final", [r for r in rows if r["final"]])):
        res["by_group"][name] = {"clips": len(sel), "pixel": figures(sel, 0.0), "geometry": figures(sel, None),
                                 **{f"fused_{lam:g}": figures(sel, lam) for lam in (0.25, 0.5, 1.0, 2.0)}}
    Path(a.out).write_text(json.dumps(res, indent=1))
    for g, r in res["by_group"].items():
        for k, v in r.items():
            if isinstance(v, dict):
                log(f"{g:7s} {k:12s} frame {v['acc_frame']:.3f} rel10 {v['acc_10ms_relative']:.3f} "
                    f"clip±40 {v['clip_within_40ms']:.3f} mae {v['clip_mae_ms']:.1f}")


if __name__ == "__main__":
    main()
