"""Mouth crops: 111×111 grayscale, centred on the mouth, scaled and levelled by the face.

The crop is a similarity transform of the source frame: centre = mouth centre (mean of the two
mouth-corner landmarks, or a fixed point of the box when there are none), side = ``MOUTH_SCALE``
× face height, rotated so the eye line is level. So a face of any size, and a slightly tilted
head, gives the same framing.
"""
from __future__ import annotations

import numpy as np

CROP_SIZE = 111
MOUTH_SCALE = 0.75
"""Crop side as a fraction of the face box height: mouth, chin and the bottom of the nose."""
MIN_FACE_PX = 24
"""Faces shorter than this (source pixels) are tracked but not scored: too few pixels of mouth."""


def mouth_geometry(box: np.ndarray, landmarks: np.ndarray | None) -> tuple[np.ndarray, float, float]:
    """(centre (x, y), side in pixels, roll angle in radians) of the mouth crop for one frame."""
    x1, y1, x2, y2 = box
    h = max(1.0, y2 - y1)
    if landmarks is not None:
        le, re, _nose, ml, mr = landmarks
        centre = (ml + mr) / 2.0
        eye = re - le
        angle = float(np.arctan2(eye[1], eye[0])) if np.hypot(*eye) > 1e-3 else 0.0
    else:
        centre = np.array([(x1 + x2) / 2.0, y1 + 0.78 * h])
        angle = 0.0
    return np.asarray(centre, np.float64), MOUTH_SCALE * h, angle


def crop_mouth(gray: np.ndarray, box: np.ndarray, landmarks: np.ndarray | None,
               size: int = CROP_SIZE) -> np.ndarray:
    """One ``size``×``size`` uint8 mouth crop from a grayscale frame (outside pixels → edge)."""
    import cv2

    centre, side, angle = mouth_geometry(box, landmarks)
    s = size / max(side, 1e-3)
    c, si = np.cos(angle) * s, np.sin(angle) * s
    # maps source → crop: rotate by −angle about the centre, scale, move centre to crop middle
    m = np.array([[c, si, 0.0], [-si, c, 0.0]])
    m[:, 2] = (size - 1) / 2.0 - m[:, :2] @ centre
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(gray, m, (size, size), flags=interp, borderMode=cv2.BORDER_REPLICATE)
