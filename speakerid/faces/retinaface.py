"""RetinaFace (MobileNet-0.25) face detector, run with torch alone (no torchvision).

RetinaFace (Deng et al., 2019) is the detector the design card names. This is our own
implementation of the MobileNet-0.25 variant: a depthwise-separable backbone, a three-level
feature pyramid, SSH context modules, and per-anchor heads for face/background, box offsets and
five landmarks; anchors of 10–256 px at strides 8, 16 and 32. Its weights (``mobilenet0.25_Final``,
1.7 MB, MIT, trained on WIDER FACE by the Pytorch_Retinaface author) ship in the package as
``weights/retinaface_mnet025.pt`` (credited in NOTICE), or can be given as a path.

It is the default detector: docs/design.md compares it with CenterFace.
"""
from __future__ import annotations

import threading
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ModelWeightsError
from .detection import Detection, clip_box, nms

MIN_SIZES = ((10, 20), (32, 64), (128, 256))
"""Anchor sizes (px) per level, as these weights were trained (the 1 MB variant of the MobileNet-0.25
RetinaFace; the original used 16–512)."""
STEPS = (8, 16, 32)
VARIANCES = (0.1, 0.2)
MEAN_BGR = (104.0, 117.0, 123.0)
WEIGHTS_FILE = "retinaface_mnet025.pt"


def _conv_bn(cin, cout, stride=1, kernel=3, act=True):
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _separable(cin, cout, stride):
    # depthwise 3×3 then pointwise 1×1, each with batch norm and a ReLU
    return nn.Sequential(nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin),
                         nn.ReLU(inplace=True), nn.Conv2d(cin, cout, 1, 1, 0, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Backbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.stage1 = nn.Sequential(_conv_bn(3, 8, 2), _separable(8, 16, 1), _separable(16, 32, 2),
                                    _separable(32, 32, 1), _separable(32, 64, 2), _separable(64, 64, 1))
        self.stage2 = nn.Sequential(_separable(64, 128, 2), *[_separable(128, 128, 1) for _ in range(5)])
        self.stage3 = nn.Sequential(_separable(128, 256, 2), _separable(256, 256, 1))


class Pyramid(nn.Module):
    def __init__(self, cins=(64, 128, 256), c=64):
        super().__init__()
        self.output1, self.output2, self.output3 = (_conv_bn(ci, c, kernel=1) for ci in cins)
        self.merge1, self.merge2 = _conv_bn(c, c), _conv_bn(c, c)

    def forward(self, c1, c2, c3):
        o1, o2, o3 = self.output1(c1), self.output2(c2), self.output3(c3)
        o2 = self.merge2(o2 + F.interpolate(o3, size=o2.shape[2:], mode="nearest"))
        o1 = self.merge1(o1 + F.interpolate(o2, size=o1.shape[2:], mode="nearest"))
        return o1, o2, o3


class Context(nn.Module):
    """SSH: 3×3, 5×5 and 7×7 receptive fields (stacked 3×3s) side by side."""

    def __init__(self, c=64):
        super().__init__()
        self.conv3X3 = _conv_bn(c, c // 2, act=False)
        self.conv5X5_1 = _conv_bn(c, c // 4)
        self.conv5X5_2 = _conv_bn(c // 4, c // 4, act=False)
        self.conv7X7_2 = _conv_bn(c // 4, c // 4)
        self.conv7x7_3 = _conv_bn(c // 4, c // 4, act=False)

    def forward(self, x):
        a = self.conv5X5_1(x)
        return F.relu(torch.cat([self.conv3X3(x), self.conv5X5_2(a), self.conv7x7_3(self.conv7X7_2(a))], 1))


class Head(nn.Module):
    def __init__(self, cout, c=64):
        super().__init__()
        self.conv1x1 = nn.Conv2d(c, cout, 1)

    def forward(self, x):
        return self.conv1x1(x).permute(0, 2, 3, 1)


class RetinaFace(nn.Module):
    def __init__(self, anchors=2):
        super().__init__()
        self.body = Backbone()
        self.fpn = Pyramid()
        self.ssh1, self.ssh2, self.ssh3 = Context(), Context(), Context()
        self.ClassHead = nn.ModuleList(Head(anchors * 2) for _ in range(3))
        self.BboxHead = nn.ModuleList(Head(anchors * 4) for _ in range(3))
        self.LandmarkHead = nn.ModuleList(Head(anchors * 10) for _ in range(3))

    def forward(self, x):
        c1 = self.body.stage1(x)
        c2 = self.body.stage2(c1)
        c3 = self.body.stage3(c2)
        feats = [m(f) for m, f in zip((self.ssh1, self.ssh2, self.ssh3), self.fpn(c1, c2, c3))]
        n = x.shape[0]
        cls = torch.cat([h(f).reshape(n, -1, 2) for h, f in zip(self.ClassHead, feats)], 1)
        box = torch.cat([h(f).reshape(n, -1, 4) for h, f in zip(self.BboxHead, feats)], 1)
        lms = torch.cat([h(f).reshape(n, -1, 10) for h, f in zip(self.LandmarkHead, feats)], 1)
        return box, F.softmax(cls, dim=-1)[..., 1], lms


def _network() -> nn.Module:
    """The MobileNet-0.25 RetinaFace as a torch module."""
    return RetinaFace()


def priors(height: int, width: int) -> np.ndarray:
    """Anchor centres and sizes ``(cx, cy, w, h)`` in [0, 1] units, in the heads' output order
    (level, row, column, anchor)."""
    out = []
    for sizes, step in zip(MIN_SIZES, STEPS):
        fh, fw = int(np.ceil(height / step)), int(np.ceil(width / step))
        cy, cx = np.meshgrid((np.arange(fh) + 0.5) * step / height, (np.arange(fw) + 0.5) * step / width,
                             indexing="ij")
        for_level = [np.stack([cx, cy, np.full_like(cx, s / width), np.full_like(cy, s / height)], -1)
                     for s in sizes]
        out.append(np.stack(for_level, 2).reshape(-1, 4))
    return np.concatenate(out).astype(np.float32)


_LOCK = threading.Lock()
_NETS: dict[str, object] = {}


def _load(weights: str | Path | None):
    key = str(weights or "packaged")
    with _LOCK:
        if key in _NETS:
            return _NETS[key]
        try:
            src = (resources.files("speakerid").joinpath("weights", WEIGHTS_FILE) if weights is None
                   else Path(weights))
            with src.open("rb") as fh:
                state = torch.load(fh, map_location="cpu", weights_only=True)
        except (FileNotFoundError, OSError) as e:
            raise ModelWeightsError(f"RetinaFace weights not found ({weights or WEIGHTS_FILE}): {e}") from e
        state = {k.removeprefix("module."): v.float() for k, v in state.items()}
        net = _network()
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise ModelWeightsError(f"{weights or WEIGHTS_FILE}: not MobileNet-0.25 RetinaFace weights ({e})") from e
        net.eval()
        _NETS[key] = net
        return net


class RetinaFaceDetector:
    """RetinaFace MobileNet-0.25: boxes and five landmarks, the :class:`FaceDetector` interface.

    ``input_width``: images are resized to this width (height in proportion) before detection;
    boxes are mapped back to the input's pixels. ``weights``: a checkpoint path (default: the
    packaged weights)."""

    def __init__(self, input_width: int = 512, score_threshold: float = 0.5, nms_iou: float = 0.4,
                 threads: int = 2, weights: str | Path | None = None):
        self.input_width = int(input_width)
        self.score_threshold = float(score_threshold)
        self.nms_iou = float(nms_iou)
        self.threads = int(threads)
        self._net = _load(weights)
        self._priors: dict[tuple[int, int], np.ndarray] = {}

    def detect(self, image: np.ndarray) -> list[Detection]:
        import cv2

        h, w = image.shape[:2]
        scale = min(1.0, self.input_width / w) if self.input_width else 1.0
        img = cv2.resize(image, (int(round(w * scale)), int(round(h * scale))), interpolation=cv2.INTER_AREA) \
            if scale != 1.0 else image
        ih, iw = img.shape[:2]
        x = torch.from_numpy((img.astype(np.float32) - np.float32(MEAN_BGR)).transpose(2, 0, 1).copy())[None]
        # torch's thread count is process-wide: switch it only when it differs (a switch costs
        # more than a small frame's inference), and put it back for the SyncNet
        threads = torch.get_num_threads()
        if threads != self.threads:
            torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                loc, conf, lms = (t[0].numpy() for t in self._net(x))
        finally:
            if threads != self.threads:
                torch.set_num_threads(threads)
        pri = self._priors.get((ih, iw))
        if pri is None:
            pri = self._priors[(ih, iw)] = priors(ih, iw)
        keep = np.flatnonzero(conf > self.score_threshold)
        if keep.size == 0:
            return []
        p, loc, lms, conf = pri[keep], loc[keep], lms[keep], conf[keep]
        v0, v1 = VARIANCES
        centre = p[:, :2] + loc[:, :2] * v0 * p[:, 2:]
        size = p[:, 2:] * np.exp(loc[:, 2:] * v1)
        boxes = np.concatenate([centre - size / 2, centre + size / 2], 1) * np.float32([iw, ih, iw, ih])
        pts = (p[:, None, :2] + lms.reshape(-1, 5, 2) * v0 * p[:, None, 2:]) * np.float32([iw, ih])
        inv = np.float32(1.0 / scale)
        out = []
        for i in nms(boxes, conf, self.nms_iou):
            b = clip_box(boxes[i] * inv, w, h)
            if b is None:
                continue
            lm = pts[i] * inv
            # eyes and mouth corners ordered by x, as LANDMARK_NAMES says
            lm[[0, 1]] = lm[[0, 1]][np.argsort(lm[[0, 1], 0])]
            lm[[3, 4]] = lm[[3, 4]][np.argsort(lm[[3, 4], 0])]
            out.append(Detection(box=b.astype(np.float32), score=float(conf[i]), landmarks=lm.astype(np.float32)))
        return out
