#!/usr/bin/env python3
"""An activity model trained on real, noisy video (LR-ASD, on AVA then TalkSet) beside the
SyncNet evidence: alone, and fused into the turn model.

LR-ASD (Liao et al., IJCV 2025; MIT-licensed code and weights, github.com/Junhua-Liao/LR-ASD)
reads a face (112×112 grey) and the audio (13 MFCC at 100 Hz) and says whether that face is
talking. Its network is written again here from the paper's description and the checkpoint's
layout, and its weights are read from ``--weights`` (the repository's
``weight/finetuning_TalkSet.model``); nothing of it ships with speakerid.

Per face track: its boxes (smoothed by a 13-frame running median) cut a face square padded as
the reference pipeline does, resized to 224 and centre-cropped to 112; the crops are read at
25 fps (nearest source frame) and scored in one pass of 6 s chunks against the same span of
audio. The face's activity is the network's log-odds per frame.

Fusion: the turn model's evidence per face and frame becomes
``0.5 · (z − 1.25) + a · clip(activity, ±4)`` (``z``: the calibrated SyncNet score), for ``a`` in
``--weights-a``; ``a = 0`` is the shipped decoding.

Measured:
* composites (``--sets``, bench_asd.py's face cache; clean, and with babble at
  ``--composite-snr``): AP, F1, top-1 of LR-ASD alone (its
  log-odds as the score), of the shipped decoding, and of each fusion;
* a person talking to the camera in babble (``bench_talking_head_noise.py``'s proxy, one group's
  eval clips, ``--snr``): the share of voiced frames labelled speaking, and of unvoiced frames;
* the cost: seconds of processing (decoding, cropping, network) per second of video and face.

Each ``a`` is tried constant and gated by the noise (``a`` times where the audio's energy spread
falls between the bounds at which the score averaging widens: 0 in clean audio, so clean
composites decode as shipped).

The rule, fixed before the final group is read: on the tuning group, among the variants whose
mean composite AP (clean and babble composites alike) is within 0.005 of the shipped
decoding's, the one labelling the largest share of voiced talking-head frames at 0 dB. It
would be worth shipping if, on the final group, it also keeps the composites' mean AP within
0.005 and raises the share of voiced frames labelled at 0 dB by at least 0.05, with unvoiced
frames labelled rising by at most 0.05.

    python benchmarks/lrasd_ab.py --weights FILE --sets SET... --faces-cache DIR --group tuning \\
        [--babble FILE...] [--out F.json]
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_asd import match_item, metrics  # noqa: E402
from bench_noise import make_babble, mix  # noqa: E402
from bench_talking_head_noise import clips, labelled_frames, voiced_frames  # noqa: E402
from calibrate_segments import composite_inputs  # noqa: E402

CHUNK_FRAMES = 150
"""6 s of 25 fps video per pass (600 MFCC columns)."""
ACTIVITY_CLIP = 4.0


def build_network():
    """LR-ASD's network: per-frame visual and audio encoders of factorised convolutions
    (spatial/frequency then temporal, two kernel sizes), a channel gate over the joined
    features, two one-way GRUs (forward, and backward over the reversed sequence) and a gate
    over their outputs; a linear head of two classes. Attribute names follow the checkpoint's."""
    import torch
    from torch import nn

    def bn(c, dims):
        return (nn.BatchNorm3d if dims == 3 else nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d)(
            c, momentum=0.01, eps=0.001)

    class Factorised(nn.Module):
        """Two convolutions over space (or frequency), then two over time; each BN + ReLU."""

        def __init__(self, cin, cout, k1, k2, video: bool, down: bool = False):
            super().__init__()
            conv = nn.Conv3d if video else nn.Conv2d
            dims = 3 if video else 2

            def sp(k):  # spatial (video: 1×k×k) or frequency (audio: k×1) kernel and padding
                return ((1, k, k), (0, k // 2, k // 2)) if video else ((k, 1), (k // 2, 0))

            def tm(k):  # temporal (video: k×1×1, audio: 1×k)
                return ((k, 1, 1), (k // 2, 0, 0)) if video else ((1, k), (0, k // 2))

            stride = (1, 2, 2) if down else 1
            self.s_1 = conv(cin, cout // 2, sp(k1)[0], stride=stride, padding=sp(k1)[1], bias=False)
            self.s_norm_1 = bn(cout // 2, dims)
            self.s_2 = conv(cout // 2, cout, sp(k2)[0], padding=sp(k2)[1], bias=False)
            self.s_norm_2 = bn(cout, dims)
            self.t_1 = conv(cout, cout, tm(k1)[0], padding=tm(k1)[1], bias=False)
            self.t_norm_1 = bn(cout, dims)
            self.t_2 = conv(cout, cout, tm(k2)[0], padding=tm(k2)[1], bias=False)
            self.t_norm_2 = bn(cout, dims)

        def forward(self, x):
            for c, n in ((self.s_1, self.s_norm_1), (self.s_2, self.s_norm_2), (self.t_1, self.t_norm_1),
                         (self.t_2, self.t_norm_2)):
                x = torch.relu(n(c(x)))
            return x

    class Visual(nn.Module):
        def __init__(self):
            super().__init__()
            self.block1 = Factorised(1, 32, 5, 3, video=True, down=True)
            self.block2 = Factorised(32, 64, 5, 3, video=True)
            self.block3 = Factorised(64, 128, 5, 3, video=True)
            self.pool = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))

        def forward(self, faces):  # (B, T, 112, 112) uint8-valued → (B, T, 128)
            x = ((faces / 255.0 - 0.4161) / 0.1688).unsqueeze(1)
            x = self.block3(self.pool(self.block2(self.pool(self.block1(x)))))
            return x.amax(dim=(3, 4)).transpose(1, 2)

    class Audio(nn.Module):
        def __init__(self):
            super().__init__()
            self.block1 = Factorised(1, 32, 5, 3, video=False)
            self.block2 = Factorised(32, 64, 5, 3, video=False)
            self.block3 = Factorised(64, 128, 5, 3, video=False)
            self.pool = nn.MaxPool2d((1, 3), stride=(1, 2), padding=(0, 1))

        def forward(self, mfcc):  # (B, 4T, 13) → (B, T, 128): time halved twice
            x = mfcc.transpose(1, 2).unsqueeze(1)  # (B, 1, 13, 4T)
            x = self.block3(self.pool(self.block2(self.pool(self.block1(x)))))
            return x.mean(dim=2).transpose(1, 2)

    class Gate(nn.Module):
        """Channels reweighted by a sigmoid of a 1×1 convolution of themselves."""

        def __init__(self, c):
            super().__init__()
            self.attention = nn.Conv1d(c, c, 1, bias=False)
            self.bn = bn(c, 1)

        def forward(self, a, b):
            x = torch.cat((a, b), 2).transpose(1, 2)
            return (x * torch.sigmoid(self.bn(self.attention(x)))).transpose(1, 2)

    class Temporal(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.gru_forward = nn.GRU(c, c // 4, batch_first=True)
            self.gru_backward = nn.GRU(c, c // 4, batch_first=True)
            self.attention = Gate(c // 2)

        def forward(self, x):
            f, _ = self.gru_forward(x)
            b, _ = self.gru_backward(torch.flip(x, dims=[1]))
            return self.attention(f, torch.flip(b, dims=[1]))

    class LRASD(nn.Module):
        def __init__(self):
            super().__init__()
            self.visualEncoder = Visual()
            self.audioEncoder = Audio()
            self.fusion = Gate(256)
            self.detector = Temporal(256)
            self.head = nn.Linear(128, 2)

        def forward(self, mfcc, faces):  # → (B, T) log-odds of talking
            x = self.detector(self.fusion(self.audioEncoder(mfcc), self.visualEncoder(faces)))
            out = self.head(x)
            return out[..., 1] - out[..., 0]

    return LRASD()


def load_network(path: Path):
    import torch

    net = build_network()
    state = torch.load(path, map_location="cpu", weights_only=True)
    renamed = {}
    for k, v in state.items():
        k = k.replace("module.", "")
        if k.startswith("model.audioEncoder."):  # its frequency convolutions are named m_*
            k = re.sub(r"\.m_(norm_)?(\d)", r".s_\g<1>\2", k)
        if k.startswith("lossAV.FC."):
            renamed["head." + k[len("lossAV.FC."):]] = v
        elif k.startswith("model."):
            renamed[k[len("model."):]] = v
    mine = net.state_dict()
    missing = [k for k in mine if k not in renamed]
    if missing:
        raise SystemExit(f"{path}: the checkpoint lacks {missing[:5]}")
    net.load_state_dict({k: renamed[k] for k in mine})
    return net.eval()


def _median(x: np.ndarray, k: int = 13) -> np.ndarray:
    from scipy.signal import medfilt

    return medfilt(x, kernel_size=k) if x.size >= k else x


def face_crops(frames: dict, boxes: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """112×112 grey faces of one track at the source frames ``indices`` (``frames``: index →
    grey image; ``boxes``: x, y, w, h per index), cut as the reference pipeline cuts them."""
    import cv2

    b = np.asarray(boxes, np.float64)
    s = _median(np.maximum(b[:, 2], b[:, 3]) / 2)
    cx = _median(b[:, 0] + b[:, 2] / 2)
    cy = _median(b[:, 1] + b[:, 3] / 2)
    cs = 0.4
    out = np.empty((indices.size, 112, 112), np.uint8)
    for i, j in enumerate(indices):
        img = frames[int(j)]
        pad = int(s[i] * (1 + 2 * cs))
        big = np.pad(img, pad, constant_values=110)
        my, mx = cy[i] + pad, cx[i] + pad
        face = big[int(my - s[i]):int(my + s[i] * (1 + 2 * cs)), int(mx - s[i] * (1 + cs)):int(mx + s[i] * (1 + cs))]
        out[i] = cv2.resize(face, (224, 224))[56:168, 56:168]
    return out


def track_activity(net, video: Path, analysis, audio: np.ndarray) -> dict[int, np.ndarray]:
    """Per track: LR-ASD's log-odds at each of its source frames (NaN where not scored)."""
    import torch
    from python_speech_features import mfcc

    from speakerid.media import iter_frames

    need = set()
    for t in analysis.tracks:
        need.update(int(f) for f in t.frames)
    frames = {fr.index: fr.image for fr in iter_frames(video, gray=True, indices=sorted(need))}
    cep = mfcc(np.clip(audio, -1, 1) * 32768.0, 16000, numcep=13, winlen=0.025, winstep=0.010).astype(np.float32)
    tl = analysis.timeline
    out = {}
    for t in analysis.tracks:
        src = np.asarray(t.frames, np.int64)
        model_of = np.asarray(tl.source_to_model(src), np.int64)
        m0, m1 = int(model_of.min()), int(model_of.max())
        ticks = np.arange(m0, m1 + 1)
        # the track's source frame nearest each 25 fps tick
        pick = np.clip(np.searchsorted(model_of, ticks), 0, src.size - 1)
        crops = face_crops(frames, np.asarray(t.boxes)[pick], src[pick])
        logit = np.full(ticks.size, np.nan, np.float32)
        for a in range(0, ticks.size, CHUNK_FRAMES):
            b = min(ticks.size, a + CHUNK_FRAMES)
            c0, c1 = 4 * (m0 + a), 4 * (m0 + b)
            au = cep[c0:c1]
            n = min(b - a, au.shape[0] // 4)
            if n < 1:
                continue
            with torch.no_grad():
                y = net(torch.from_numpy(au[:4 * n]).unsqueeze(0), torch.from_numpy(crops[a:a + n].astype(np.float32))
                        .unsqueeze(0))
            logit[a:a + n] = y[0].numpy()
        out[t.id] = logit[np.clip(model_of - m0, 0, ticks.size - 1)]
    return out


def noise_share(res) -> float:
    """0 in clean audio, 1 in loud noise: where the audio's energy spread falls between the
    bounds at which the score averaging widens (:mod:`speakerid.speakers.noise`)."""
    from speakerid.speakers.noise import CLEAN_SPREAD_DB, NOISY_SPREAD_DB

    spread = float(res.diagnostics.get("energy_spread_db", CLEAN_SPREAD_DB))
    if not math.isfinite(spread):
        return 0.0
    return float(np.clip((CLEAN_SPREAD_DB - spread) / (CLEAN_SPREAD_DB - NOISY_SPREAD_DB), 0.0, 1.0))


def fused(res, act: dict, a: float, gated: bool = False):
    """``res`` decoded again with the activity added to the turn model's evidence (``gated``:
    its weight scaled by :func:`noise_share`, so clean audio decodes as shipped)."""
    import copy

    from speakerid.decoding import HMM_BIAS, HMM_SCALE, speaking_posteriors

    if gated:
        a *= noise_share(res)
    res = copy.deepcopy(res)
    tracks = [t for t in res.tracks if t.offset_ms is not None]
    ev = []
    for t in tracks:
        z = np.asarray(res.diagnostics["calibrated"][t.id], np.float64)
        x = np.clip(np.nan_to_num(act.get(t.id, np.zeros(z.size)), nan=0.0), -ACTIVITY_CLIP, ACTIVITY_CLIP)
        ev.append(np.where(np.isfinite(z), HMM_SCALE * (z - HMM_BIAS) + a * x, np.nan))
    post = speaking_posteriors([t.frames for t in tracks], ev, res.num_frames, res.fps, scale=1.0, bias=0.0)
    for t, p in zip(tracks, post, strict=True):
        t.scores = p
    res.relabel()
    return res


def alone(res, act: dict):
    """``res`` with LR-ASD's log-odds as the scores (speaking where > 0)."""
    import copy

    res = copy.deepcopy(res)
    for t in res.tracks:
        t.scores = np.asarray(act.get(t.id, np.full(len(t.frames), np.nan)), np.float32)
        t.speaking = np.isfinite(t.scores) & (t.scores > 0)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", type=Path, required=True, help="LR-ASD checkpoint (finetuning_TalkSet.model)")
    ap.add_argument("--sets", nargs="+", type=Path, required=True, help="composite sets (one group's)")
    ap.add_argument("--faces-cache", type=Path, required=True)
    ap.add_argument("--group", choices=("tuning", "final"), required=True, help="talking-head clips' group")
    ap.add_argument("--babble", nargs="+", type=Path, default=None)
    ap.add_argument("--snr", nargs="+", type=float, default=[math.inf, 5.0, 0.0, -5.0])
    ap.add_argument("--weights-a", nargs="+", type=float, default=[0.0, 0.05, 0.1, 0.2, 0.4])
    ap.add_argument("--composite-snr", nargs="+", type=float, default=[math.inf, 5.0])
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    import torch

    from speakerid.faces import analyze_faces
    from speakerid.media import read_audio
    from speakerid.model import load_model
    from speakerid.speakers import score_faces

    torch.set_num_threads(2)
    net = load_network(a.weights)
    model = load_model()
    cost_s = cost_face_s = 0.0
    out: dict = {"composites": {}, "talking_head": {}, "weights": str(a.weights)}
    babble = make_babble(60.0, files=a.babble)
    variants = [(f"a={w:g}", w, False) for w in a.weights_a] + [(f"a={w:g}·noise", w, True) for w in a.weights_a if w]
    for d in a.sets:
        labels = json.loads((d / "labels.json").read_text())["items"]
        for snr in a.composite_snr:
            per: dict = {"lrasd": [], **{k: [] for k, _, _ in variants}}
            for i, (name, lab) in enumerate(sorted(labels.items())):
                fa, audio = composite_inputs(d, name, model, a.faces_cache)
                audio = audio if math.isinf(snr) else mix(audio, babble, snr, at=i * 7919)
                t0 = time.perf_counter()
                act = track_activity(net, d / name, fa, audio)
                cost_s += time.perf_counter() - t0
                cost_face_s += sum(len(t.frames) / fa.timeline.source_fps for t in fa.tracks)
                res = score_faces(fa, audio, model)
                per["lrasd"].append(match_item(alone(res, act), lab["frames"]))
                for k, w, gated in variants:
                    per[k].append(match_item(fused(res, act, w, gated), lab["frames"]))
            key = f"{d.name} {snr:g} dB"
            out["composites"][key] = {k: metrics(v) for k, v in per.items()}
            print(key, "  ".join(f"{k}: AP {m['ap']:.3f} F1 {m['f1']:.3f} top-1 {m['top1']:.3f}"
                                 for k, m in out["composites"][key].items()), flush=True)
    tally: dict = {}
    for i, video in enumerate(clips(a.group)):
        fa = analyze_faces(video, crop_geometry=model.config.crop_geometry)
        audio = read_audio(video, video_start_s=fa.info.video_start_s)
        for snr in a.snr:
            noisy = mix(audio, babble, snr, at=i * 7919)
            act = track_activity(net, video, fa, noisy)
            res = score_faces(fa, noisy, model)
            voiced = voiced_frames(audio, np.asarray(res.frame_times, np.float64))
            for key, r in [("lrasd", alone(res, act))] + [(k, fused(res, act, w, g)) for k, w, g in variants]:
                lab = labelled_frames(r)
                k = tally.setdefault(f"{snr:g}", {}).setdefault(key, [0, 0, 0, 0])
                k[0] += int(voiced.sum())
                k[1] += int((voiced & lab).sum())
                k[2] += int((~voiced).sum())
                k[3] += int((~voiced & lab).sum())
        print(f"[{i + 1}] {video.name}", flush=True)
    for snr, per in tally.items():
        out["talking_head"][snr] = {k: {"voiced_labelled": v[1] / max(v[0], 1), "unvoiced_labelled": v[3] / max(v[2], 1)}
                                    for k, v in per.items()}
        print(f"talking head {snr} dB: " + "  ".join(f"{k}: {m['voiced_labelled']:.3f}/{m['unvoiced_labelled']:.3f}"
                                                     for k, m in out["talking_head"][snr].items()))
    out["cost_s_per_face_s"] = cost_s / max(cost_face_s, 1e-9)
    print(f"cost: {out['cost_s_per_face_s']:.3f} s per second of face (decoding, cropping, network)")
    mean_ap = {k: float(np.mean([s[k]["ap"] for s in out["composites"].values()])) for k in
               next(iter(out["composites"].values()))}
    out["mean_ap"] = mean_ap
    print("mean composite AP: " + "  ".join(f"{k} {v:.4f}" for k, v in mean_ap.items()))
    if a.out:
        a.out.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
