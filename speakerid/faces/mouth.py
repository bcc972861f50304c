"""Mouth crops: 111×111 grayscale, centred on the mouth, scaled and levelled by the face.

The crop is a similarity transform of the source frame: centre = mouth centre (mean of the two
mouth-corner landmarks, or a fixed point of the box when there are none), side = ``MOUTH_SCALE``
× face height, rotated so the eye line is level. So a face of any size, and a slightly tilted
head, gives the same framing.

Two geometries (``CROP_GEOMETRIES``):

* ``"mouth"``: each frame's own mouth centre, face height and eye-line angle.
* ``"stable"``: the framing follows the rigid upper face, not the jaw. The mouth corners and the
  face box's height move with speech (the jaw drops, the box grows), so a per-frame framing
  re-centres and re-scales the crop in step with what it should show. Here the centre is the
  nose plus the track's mouth-to-nose offset averaged over ``STABLE_S`` seconds, and the side
  and angle are averaged over the same span; head motion still moves the crop, speech does not.
"""
from __future__ import annotations

import numpy as np

from ..smoothing import centred_mean
from ..timebase import CROP_SIZE

MOUTH_SCALE = 0.75
"""Crop side as a fraction of the face box height: mouth, chin and the bottom of the nose."""
STABLE_S = 1.0
"""Span (seconds, centred) over which the ``"stable"`` geometry averages scale, angle and the
mouth's offset from the nose: several syllables, shorter than most head movements."""
CROP_GEOMETRIES = ("mouth", "stable")
DEFAULT_CROP_GEOMETRY = "stable"
"""The framing the packaged SyncNet was trained on, and so the default of
:func:`speakerid.faces.analyze_faces` and of the training cache. A model's own framing is in
its config (``SyncNetConfig.crop_geometry``); the applications always use that."""
MIN_FACE_PX = 24
"""Faces shorter than this (source pixels) are tracked but not scored: too few pixels of mouth."""


def mouth_geometry(box: np.ndarray, landmarks: np.ndarray | None) -> tuple[np.ndarray, float, float]:
    """(centre (x, y), side in pixels, roll angle in radians) of the mouth crop for one frame."""
    lm = None if landmarks is None else np.asarray(landmarks, np.float64).reshape(1, 5, 2)
    centres, sides, angles = track_geometry(np.asarray(box, np.float64).reshape(1, 4), lm, 25.0, "mouth")
    return centres[0], float(sides[0]), float(angles[0])


def check_geometry(geometry: str) -> None:
    """Raise ``ValueError`` unless ``geometry`` is one of ``CROP_GEOMETRIES``."""
    if geometry not in CROP_GEOMETRIES:
        raise ValueError(f"unknown crop geometry {geometry!r}; expected one of {CROP_GEOMETRIES}")


def track_geometry(boxes: np.ndarray, landmarks: np.ndarray | None, fps: float,
                   geometry: str = "mouth") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crop framing for every frame of one track: ``(centres (n, 2), sides (n,), angles (n,))``.

    ``boxes``: ``(n, 4)`` x1, y1, x2, y2 per consecutive source frame; ``landmarks``: ``(n, 5, 2)``
    or None; ``geometry``: one of ``CROP_GEOMETRIES`` (see the module's docstring).
    """
    check_geometry(geometry)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    h = np.maximum(1.0, boxes[:, 3] - boxes[:, 1])
    sides = MOUTH_SCALE * h
    # each frame's own framing: centre = mean of the mouth corners (a fixed point of the box
    # without landmarks), side from the box height, roll = the eye line's angle
    if landmarks is not None:
        lm = np.asarray(landmarks, np.float64).reshape(-1, 5, 2)
        centres = (lm[:, 3] + lm[:, 4]) / 2.0
        eye = lm[:, 1] - lm[:, 0]
        angles = np.where(np.hypot(eye[:, 0], eye[:, 1]) > 1e-3, np.arctan2(eye[:, 1], eye[:, 0]), 0.0)
    else:
        centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2.0, boxes[:, 1] + 0.78 * h], 1)
        angles = np.zeros(boxes.shape[0])
    if geometry == "mouth" or boxes.shape[0] == 0:
        return centres, sides, angles
    width = max(1, int(round(STABLE_S * (fps or 25.0)))) | 1  # centred: as many frames before as after
    sides = centred_mean(sides, width)
    angles = centred_mean(angles, width)
    if landmarks is not None:
        nose = lm[:, 2]
        centres = nose + centred_mean(centres - nose, width)
    else:
        # no landmarks: the box's top edge (forehead) is rigid, its height is not
        centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2.0, boxes[:, 1] + 0.78 * sides / MOUTH_SCALE], 1)
    return centres, sides, angles


def crop_mouth(gray: np.ndarray, box: np.ndarray, landmarks: np.ndarray | None,
               size: int = CROP_SIZE) -> np.ndarray:
    """One ``size``×``size`` uint8 mouth crop from a grayscale frame (outside pixels → edge)."""
    centre, side, angle = mouth_geometry(box, landmarks)
    return crop_at(gray, centre, side, angle, size)


def crop_at(gray: np.ndarray, centre: np.ndarray, side: float, angle: float,
            size: int = CROP_SIZE) -> np.ndarray:
    """The ``size``×``size`` uint8 crop of side ``side`` source pixels centred on ``centre`` and
    rotated by ``angle`` (radians) so that the eye line is level (outside pixels → edge)."""
    import cv2

    s = size / max(side, 1e-3)
    c, si = np.cos(angle) * s, np.sin(angle) * s
    # maps source → crop: rotate by −angle about the centre, scale, move centre to crop middle
    m = np.array([[c, si, 0.0], [-si, c, 0.0]])
    m[:, 2] = (size - 1) / 2.0 - m[:, :2] @ centre
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(gray, m, (size, size), flags=interp, borderMode=cv2.BORDER_REPLICATE)
