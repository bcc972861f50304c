"""What a face detector gives: :class:`Detection` (box, score, five landmarks), the
:class:`FaceDetector` interface, and the box arithmetic every backend shares."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

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


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Indices of the boxes kept by greedy non-maximum suppression, best score first."""
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


def clip_box(box: np.ndarray, width: int, height: int, min_side: float = 4.0) -> np.ndarray | None:
    """``box`` (x1, y1, x2, y2) clipped to a ``width`` × ``height`` image; None when less than
    ``min_side`` pixels of it remain either way."""
    b = box.copy()
    b[[0, 2]] = np.clip(b[[0, 2]], 0, width)
    b[[1, 3]] = np.clip(b[[1, 3]], 0, height)
    return b if b[2] - b[0] >= min_side and b[3] - b[1] >= min_side else None
