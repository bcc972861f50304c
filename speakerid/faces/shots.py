"""Shot-cut detection on a stream of frames.

The same idea as PySceneDetect's content detector (mean change of hue, saturation and value
between consecutive small frames), made streaming so it rides along the decode pass the face
detector already makes instead of decoding the video a second time. A cut must also stand well
above the recent typical change, so fast motion and camera pans do not fire it.
"""
from __future__ import annotations

from array import array
from collections import deque

import numpy as np

THUMB = (64, 36)


class ShotDetector:
    """Feed frames in order with :meth:`update`; it says whether each one starts a new shot."""

    def __init__(self, threshold: float = 27.0, ratio: float = 3.0, min_shot_frames: int = 8):
        self.threshold = float(threshold)
        self.ratio = float(ratio)
        self.min_shot_frames = int(min_shot_frames)
        self._prev: np.ndarray | None = None
        self._recent: deque[float] = deque(maxlen=25)
        self._since_cut = 0
        self.cuts: list[int] = [0]
        self.scores = array("f")
        """Every frame's change score (a float32 each: a long video has many frames)."""

    def update(self, index: int, image_bgr: np.ndarray) -> bool:
        import cv2

        small = cv2.resize(image_bgr, THUMB, interpolation=cv2.INTER_AREA)
        hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV).astype(np.float32)
        cut = False
        if self._prev is None:
            score = 0.0
        else:
            score = float(np.mean(np.abs(hsv - self._prev)) * 1.0)
            typical = float(np.median(self._recent)) if self._recent else 0.0
            if (score > self.threshold and score > self.ratio * max(typical, 1.0)
                    and self._since_cut >= self.min_shot_frames):
                cut = True
        self._prev = hsv
        self.scores.append(score)
        self._since_cut += 1
        if cut:
            self.cuts.append(int(index))
            self._since_cut = 0
            self._recent.clear()
        else:
            self._recent.append(score)
        return cut
