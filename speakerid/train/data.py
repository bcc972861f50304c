"""Training data: cached clips → batches of video windows with their audio at every shift.

A batch is ``chunks`` runs of ``chunk_len`` consecutive video windows, each run from one clip.
The audio of a run is one MFCC span covering every window's audio at every shift in
``±max_shift`` columns, so the audio stream embeds that span once (its embeddings at all
10 ms positions are shared by the run's windows and by all their shifts).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..features import CEP_LIFTER, COLS_PER_FRAME, NUM_CEPSTRA, NUM_MEL_FILTERS, WINDOW_COLS, WINDOW_FRAMES
from .cache import CachedClip, clip_geometry, load_clip, usable_windows

MAX_SHIFT = 100
"""Largest audio shift scored, in MFCC columns (±1 s)."""
MAX_ALIGN = 50
"""Largest per-clip audio offset a clip's alignment may correct, in MFCC columns (±0.5 s)."""
PAD = MAX_SHIFT + MAX_ALIGN


def list_cache(cache_dir: str | os.PathLike, split: str = "train") -> list[Path]:
    """Cache files of one split (``train`` or ``eval``), sorted so runs are reproducible."""
    root = Path(cache_dir) / split
    return sorted(p for p in root.rglob("*.npz") if not p.name.endswith(".partial.npz"))


@dataclass
class ClipData:
    """One cached clip, ready for batching."""

    name: str
    group: str
    crops: np.ndarray  # (N, 111, 111) uint8
    mfcc_padded: np.ndarray  # (13, T + 2 PAD) float32, padded with the neutral (mean) MFCC
    num_cols: int
    windows: np.ndarray  # usable window starts
    keep: np.ndarray = field(default=None)  # (num windows,) bool: window kept by refinement
    ref: np.ndarray | None = None  # (N, 111, 111) uint8 mouth references (SyncNet.mouth_reference)
    noisy_padded: np.ndarray | None = None
    """With babble augmentation: the clip's MFCC with another clip's speech mixed in
    (:func:`babble_mfcc`), prepared and padded like ``mfcc_padded``."""
    offset: int = 0
    """The clip's own audio offset in MFCC columns (offset_ms = 10·offset = t_audio − t_video):
    the audio that goes with video frame i starts at column 4i + offset. 0 unless an alignment
    pass (``TrainConfig.align_cols``) measured it."""

    @property
    def mfcc(self) -> np.ndarray:
        """The clip's own (prepared) MFCC, without the padding."""
        return self.mfcc_padded[:, PAD:PAD + self.num_cols]

    @classmethod
    def from_cached(cls, clip: CachedClip, pad_value: np.ndarray, name: str, prepare=None,
                    reference=None) -> ClipData:
        """``prepare``: the model's MFCC normalisation (``SyncNet.prepare_mfcc``), applied to the
        whole clip once; ``reference``: its mouth references (``SyncNet.mouth_reference``)."""
        m = clip.mfcc.astype(np.float32) if prepare is None else prepare(clip.mfcc)
        w = usable_windows(clip)
        return cls(name=name, group=clip.group, crops=clip.crops, mfcc_padded=padded(m, pad_value),
                   num_cols=m.shape[1], windows=w, keep=np.ones(w.size, bool),
                   ref=None if reference is None else reference(clip.crops))


def padded(mfcc: np.ndarray, pad_value: np.ndarray) -> np.ndarray:
    """``mfcc`` with ``PAD`` columns of the neutral MFCC on each side, float32: shifted audio
    windows reach past the clip without leaving the array."""
    pad = np.repeat(pad_value[:, None].astype(np.float32), PAD, axis=1)
    return np.concatenate([pad, np.asarray(mfcc, np.float32), pad], 1)


def mfcc_stats(clips: list[CachedClip], prepare=None) -> tuple[np.ndarray, np.ndarray]:
    prep = prepare or (lambda m: m)
    cols = np.concatenate([prep(c.mfcc) for c in clips if c.mfcc.shape[1]], axis=1).astype(np.float64)
    return cols.mean(1).astype(np.float32), (cols.std(1) + 1e-3).astype(np.float32)


class WindowSampler:
    """Draws runs of ``chunk_len`` consecutive usable windows.

    ``group_balance`` = 1: uniformly over all runs, so each cache group is drawn in proportion
    to its size. Below 1, a group of ``n`` runs is drawn in proportion to ``n**group_balance``
    (0: every group equally often), uniformly within the group. Meant to show the model the
    many identities of the small groups more often; at 0.5 it did not improve held-out accuracy
    (docs/experiments.md, run R2).
    """

    def __init__(self, clips: list[ClipData], chunk_len: int, group_balance: float = 1.0):
        self.clips = clips
        self.chunk_len = chunk_len
        self.group_balance = float(group_balance)
        self.rebuild()

    def rebuild(self) -> None:
        L = self.chunk_len
        cidx, starts = [], []
        for k, c in enumerate(self.clips):
            w = c.windows
            if w.size < L:
                continue
            # runs: w[j] .. w[j+L-1] consecutive and at least one of them kept
            ok = (w[L - 1:] - w[:w.size - L + 1]) == L - 1
            kept = np.convolve(c.keep.astype(np.int32), np.ones(L, np.int32), "valid") > 0
            j = np.nonzero(ok & kept)[0]
            cidx.append(np.full(j.size, k))
            starts.append(j)  # index into c.windows
        self.cidx = np.concatenate(cidx) if cidx else np.zeros(0, np.int64)
        self.widx = np.concatenate(starts) if starts else np.zeros(0, np.int64)
        self.p = None
        if self.group_balance != 1.0 and self.cidx.size:
            g = np.array([self.clips[k].group for k in self.cidx])
            _, inv, counts = np.unique(g, return_inverse=True, return_counts=True)
            w = counts.astype(np.float64) ** self.group_balance / counts
            p = w[inv]
            self.p = p / p.sum()

    def __len__(self) -> int:
        return int(self.cidx.size)

    def batch(self, rng: np.random.Generator, chunks: int, speed: float = 0.0, babble: float = 0.0) -> dict:
        """``video`` (C·L, 5, 111, 111) uint8, ``audio`` (C, 13, 4(L−1) + 20 + 2·MAX_SHIFT),
        ``valid`` (C·L, 2·MAX_SHIFT+1) bool (shift inside the real audio), ``weight`` (C·L,)
        (0 for windows dropped by refinement), ``group`` names, ``rate`` (C,) playback rates.

        ``speed`` > 0: each run is played at a rate drawn uniformly from [1 − speed, 1 + speed]
        (speed perturbation, as in speech recognition): the video frames and the MFCC columns
        are both resampled in time, linearly, so lips and audio stay in sync while the speaking
        tempo changes. A run whose faster playback would reach past its clip's usable windows
        plays at rate 1. ``babble``: the share of runs whose audio is the clip's noisy copy
        (``ClipData.noisy_padded``), the positive still the clip's own speech."""
        L = self.chunk_len
        pick = rng.integers(0, len(self), chunks) if self.p is None else rng.choice(len(self), chunks, p=self.p)
        rates = rng.uniform(1.0 - speed, 1.0 + speed, chunks) if speed > 0 else np.ones(chunks)
        span = COLS_PER_FRAME * (L - 1) + WINDOW_COLS + 2 * MAX_SHIFT
        with_ref = self.clips[self.cidx[pick[0]]].ref is not None if len(pick) else False
        video = np.empty((chunks * L, WINDOW_FRAMES + int(with_ref), 111, 111), np.uint8)
        audio = np.empty((chunks, 13, span), np.float32)
        valid = np.empty((chunks * L, 2 * MAX_SHIFT + 1), bool)
        weight = np.empty(chunks * L, np.float32)
        groups = []
        shifts = np.arange(-MAX_SHIFT, MAX_SHIFT + 1)
        for b, p in enumerate(pick):
            c = self.clips[self.cidx[p]]
            j0 = int(self.widx[p])
            i0 = int(c.windows[j0])
            if rates[b] != 1.0 and not self._fits(c, j0, rates[b]):
                rates[b] = 1.0
            if rates[b] != 1.0:
                self._resampled_run(c, i0, float(rates[b]), b, video, audio, valid, with_ref)
            else:
                idx = i0 + np.arange(L)[:, None] + np.arange(WINDOW_FRAMES)
                video[b * L:(b + 1) * L, :WINDOW_FRAMES] = c.crops[idx]
                if with_ref:
                    video[b * L:(b + 1) * L, WINDOW_FRAMES] = c.ref[i0 + np.arange(L) + WINDOW_FRAMES // 2]
                # padded column of real column (4 i0 + offset − MAX_SHIFT): shift 0 is the clip's own alignment
                s0 = COLS_PER_FRAME * i0 + c.offset + MAX_ALIGN
                noisy = babble > 0 and c.noisy_padded is not None and rng.random() < babble
                audio[b] = (c.noisy_padded if noisy else c.mfcc_padded)[:, s0:s0 + span]
                starts = COLS_PER_FRAME * (i0 + np.arange(L))[:, None] + shifts + c.offset
                valid[b * L:(b + 1) * L] = (starts >= 0) & (starts + WINDOW_COLS <= c.num_cols)
            weight[b * L:(b + 1) * L] = c.keep[j0:j0 + L]
            groups.append(c.group)
        return {"video": torch.from_numpy(video), "audio": torch.from_numpy(audio),
                "valid": torch.from_numpy(valid), "weight": torch.from_numpy(weight), "groups": groups,
                "rate": rates}

    def _fits(self, c: ClipData, j0: int, rate: float) -> bool:
        """Whether a run starting at usable window ``j0`` played at ``rate`` reads only frames
        covered by consecutive usable windows (no shot cut, one face)."""
        last = c.windows[j0] + (self.chunk_len + WINDOW_FRAMES - 2) * rate  # last source frame read
        need = int(math.ceil(last - 1e-9)) - (WINDOW_FRAMES - 1) - int(c.windows[j0])  # windows past j0
        j1 = j0 + max(need, self.chunk_len - 1)
        return j1 < c.windows.size and int(c.windows[j1] - c.windows[j0]) == j1 - j0

    def _resampled_run(self, c: ClipData, i0: int, rate: float, b: int, video: np.ndarray,
                       audio: np.ndarray, valid: np.ndarray, with_ref: bool) -> None:
        """Fill run ``b`` of a batch with the run starting at frame ``i0`` played at ``rate``:
        output frame k is source frame i0 + k·rate, output column u (shift 0 of window k at
        u = 4k + MAX_SHIFT) is source column 4·i0 + offset + (u − MAX_SHIFT)·rate."""
        L = self.chunk_len
        n_out = L + WINDOW_FRAMES - 1
        pos = i0 + np.arange(n_out) * rate
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, c.crops.shape[0] - 1)
        f = (pos - lo).astype(np.float32)[:, None, None]
        frames = np.rint(c.crops[lo] * (1 - f) + c.crops[hi] * f).astype(np.uint8)
        idx = np.arange(L)[:, None] + np.arange(WINDOW_FRAMES)
        video[b * L:(b + 1) * L, :WINDOW_FRAMES] = frames[idx]
        if with_ref:
            video[b * L:(b + 1) * L, WINDOW_FRAMES] = c.ref[np.rint(pos[np.arange(L) + WINDOW_FRAMES // 2]).astype(np.int64)]
        span = audio.shape[2]
        src = COLS_PER_FRAME * i0 + c.offset + (np.arange(span) - MAX_SHIFT) * rate  # real columns
        padded = np.clip(src + PAD, 0, c.mfcc_padded.shape[1] - 1)
        lo = np.floor(padded).astype(np.int64)
        hi = np.minimum(lo + 1, c.mfcc_padded.shape[1] - 1)
        g = (padded - lo).astype(np.float32)
        audio[b] = c.mfcc_padded[:, lo] * (1 - g) + c.mfcc_padded[:, hi] * g
        shifts = np.arange(-MAX_SHIFT, MAX_SHIFT + 1)
        first = COLS_PER_FRAME * i0 + c.offset + (COLS_PER_FRAME * np.arange(L)[:, None] + shifts) * rate
        valid[b * L:(b + 1) * L] = (first >= 0) & (first + WINDOW_COLS * rate <= c.num_cols)


def augment_video(x: torch.Tensor, rng: torch.Generator, strength: float = 1.0, aspect: float = 0.0,
                  blur: float = 0.0) -> torch.Tensor:
    """Random per-window geometry (scale, shift, small rotation, horizontal flip) and photometry
    (brightness, contrast, gamma, noise) on a ``(B, 5, H, W)`` uint8 batch → float 0..255.
    The 5 frames of a window get the same transform, so motion between them is untouched.

    Identity augmentations (0 = off), because the training set has few faces and the model
    learns them (held-in accuracy far above held-out, docs/model.md):

    * ``aspect``: the crop is stretched by ``exp(±aspect)`` horizontally and squeezed as much
      vertically: wider, narrower, thicker and thinner lips than the training faces have;
    * ``blur``: that share of windows is downsampled to 40, 55 or 75 % of its size and back, as
      a small or compressed face looks (the eval and bench sources include 224 px VoxCeleb).
    """
    B, _, H, W = x.shape
    x = x.float()

    def u(lo, hi, n=B):
        return lo + (hi - lo) * torch.rand(n, generator=rng)

    scale = u(1 - 0.12 * strength, 1 + 0.12 * strength)
    ang = u(-6, 6) * strength * math.pi / 180
    tx, ty = u(-0.08, 0.08) * strength, u(-0.08, 0.08) * strength
    flip = torch.where(torch.rand(B, generator=rng) < 0.5, -1.0, 1.0)
    r = torch.exp(u(-aspect, aspect)) if aspect > 0 else torch.ones(B)
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    # output → input sampling matrix: x stretched by r (sampled at 1/r), y squeezed (sampled at r)
    theta = torch.stack([torch.stack([cos * flip / r, -sin / r, tx], 1),
                         torch.stack([sin * flip * r, cos * r, ty], 1)], 1)
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    x = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if blur > 0:
        # three fixed levels, each a single batched resize (a per-window size costs 2× the step)
        level = torch.randint(0, 3, (B,), generator=rng)
        level[torch.rand(B, generator=rng) >= blur] = -1
        for k, f in enumerate((0.40, 0.55, 0.75)):
            idx = torch.nonzero(level == k).flatten()
            if idx.numel():
                small = torch.nn.functional.interpolate(x[idx], size=(int(H * f), int(W * f)), mode="area")
                x[idx] = torch.nn.functional.interpolate(small, size=(H, W), mode="bilinear", align_corners=False)
    x = x / 255.0
    gamma = torch.exp(u(-0.3, 0.3) * strength)[:, None, None, None]
    x = x.clamp(1e-4, 1) ** gamma
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    contrast = u(0.6, 1.4)[:, None, None, None]
    bright = u(-0.12, 0.12)[:, None, None, None] * strength
    x = (x - mean) * contrast + mean + bright
    x = x + torch.randn(x.shape, generator=rng) * (0.02 * strength)
    return (x.clamp(0, 1) * 255.0)


def augment_audio(a: torch.Tensor, rng: torch.Generator, warp: float = 0.0) -> torch.Tensor:
    """Loudness change (offset of the log-energy coefficient c0) and a little noise; with
    ``warp`` > 0, each run's spectral envelope is also stretched along the mel axis by a factor
    in ``1 ± warp`` (:func:`cepstral_warp_matrix`: another vocal tract, a voice the training set
    does not have). ``a``: ``(C, 13, T)``."""
    a = a.clone()
    if warp > 0:
        alpha = 1 + (torch.rand(a.shape[0], generator=rng) * 2 - 1) * warp
        m = torch.stack([torch.from_numpy(cepstral_warp_matrix(float(al))) for al in alpha])  # (C, 12, 12)
        a[:, 1:] = torch.einsum("cij,cjt->cit", m.to(a.dtype), a[:, 1:])
    a[:, 0] += (torch.rand(a.shape[0], 1, generator=rng) - 0.5) * 2.0
    return a + torch.randn(a.shape, generator=rng) * 0.05 * a.std(dim=2, keepdim=True)


def cepstral_warp_matrix(alpha: float, num_cep: int = NUM_CEPSTRA, nfilt: int = NUM_MEL_FILTERS,
                         lifter: int = CEP_LIFTER) -> np.ndarray:
    """The ``(num_cep−1)²`` linear map of cepstra c1… (as :func:`speakerid.features.compute_mfcc`
    makes them: orthonormal DCT-II of the log mel energies, liftered) that stretches the
    spectral envelope along the mel axis by ``alpha`` (band ``n`` takes the value of band
    ``n / alpha``; edges held). Linear, so it commutes with cepstral mean normalisation.
    c0 (log energy) is left alone."""
    n = np.arange(nfilt)
    k = np.arange(num_cep)
    dct = np.sqrt(2.0 / nfilt) * np.cos(np.pi * k[:, None] * (2 * n[None] + 1) / (2 * nfilt))
    dct[0] /= np.sqrt(2.0)
    lift = 1 + (lifter / 2.0) * np.sin(np.pi * k / lifter)
    pos = np.clip(n / alpha, 0, nfilt - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, nfilt - 1)
    w = pos - lo
    interp = np.zeros((nfilt, nfilt))
    interp[n, lo] += 1 - w
    interp[n, hi] += w
    full = (lift[:, None] * dct) @ interp @ (dct.T / lift[None, :])
    return full[1:, 1:].astype(np.float32)


def load_clips(paths: list[Path], pad_value: np.ndarray, root: Path | None = None, prepare=None,
               reference=None, geometry: str | None = None, babble_snr_db: tuple[float, float] | None = None,
               seed: int = 0) -> list[ClipData]:
    """Cached clips ready for sampling. ``geometry``: the crop geometry every clip must have.
    ``babble_snr_db``: also make each clip a noisy copy, another clip's speech mixed in at an SNR
    drawn from this range (:func:`babble_mfcc`)."""
    out, raw = [], []
    for p in paths:
        c = load_clip(p)
        if geometry is not None:
            require_geometry(c, geometry)
        name = p.relative_to(root).as_posix() if root else p.name
        out.append(ClipData.from_cached(c, pad_value, name, prepare, reference))
        raw.append(c.mfcc)
    if babble_snr_db is not None and len(out) > 1:
        rng = np.random.default_rng(seed)
        for i, c in enumerate(out):
            j = (i + 1 + int(rng.integers(len(out) - 1))) % len(out)  # another clip: another voice
            mixed = babble_mfcc(raw[i], raw[j], float(rng.uniform(*babble_snr_db)))
            c.noisy_padded = padded(mixed if prepare is None else prepare(mixed), pad_value)
    return out


def _dct_rows(n_cep: int = NUM_CEPSTRA, nfilt: int = NUM_MEL_FILTERS) -> np.ndarray:
    """The orthonormal DCT-II rows ``compute_mfcc`` takes its cepstra from: ``(n_cep, nfilt)``."""
    k = np.arange(nfilt)
    d = np.sqrt(2.0 / nfilt) * np.cos(np.pi * np.arange(n_cep)[:, None] * (2 * k + 1) / (2 * nfilt))
    d[0] /= np.sqrt(2.0)
    return d


def babble_mfcc(target: np.ndarray, other: np.ndarray, snr_db: float) -> np.ndarray:
    """The raw MFCC of ``target`` with the speech of ``other`` (raw MFCC, tiled to its length)
    mixed in at ``snr_db`` (against the loudest half of the target's frames), computed in the mel
    power domain: each frame's log-mel energies are read back from its 12 cepstra (the lifter
    undone; their level from the frame's log energy c0), the powers added, and the cepstra taken
    again. The 12 cepstra hold a smoothed spectrum, so this is the mixture of those smoothed
    spectra: an approximation, good enough to teach that another voice is not this mouth's."""
    t = np.asarray(target, np.float64)
    o = np.resize(np.asarray(other, np.float64), t.shape)
    d = _dct_rows()
    lift = 1 + (CEP_LIFTER / 2.0) * np.sin(np.pi * np.arange(NUM_CEPSTRA) / CEP_LIFTER)

    def log_mel(m: np.ndarray) -> np.ndarray:
        shape = d[1:].T @ (m[1:] / lift[1:, None])          # (nfilt, T): the spectrum's shape
        return shape - shape.mean(0) + m[0]                  # its level: the frame's log energy

    e_t, e_o = np.exp(t[0]), np.exp(o[0])
    loud = np.sort(e_t)[e_t.size // 2:]
    g = (loud.mean() if loud.size else 1.0) / max(e_o.mean(), 1e-12) / 10 ** (snr_db / 10)
    mel = np.exp(log_mel(t)) + g * np.exp(log_mel(o))
    lm = np.log(mel)
    out = np.empty_like(t)
    out[1:] = (d[1:] @ lm) * lift[1:, None]
    out[0] = np.log(e_t + g * e_o)
    return out.astype(np.float32)


def require_geometry(clip: CachedClip, geometry: str) -> None:
    """Refuse a cached clip whose crops were framed otherwise than the model expects: mixing
    framings would train or measure a model on crops it will never (or always) be given."""
    if clip_geometry(clip) != geometry:
        raise ValueError(f"{clip.path}: cached with crop geometry {clip_geometry(clip)!r}, but the model uses "
                         f"{geometry!r}; rebuild the cache with --crop-geometry {geometry}")
