"""Faces: shot cuts → face detection → tracking → mouth crops on the 25 fps timeline.

:func:`analyze_faces` (:mod:`.analysis`) runs the stage on a video file in two streaming passes:
detection and tracking (:mod:`.detector`, :mod:`.retinaface`, :mod:`.shots`, :mod:`.tracking`),
then mouth crops (:mod:`.mouth`, :mod:`.crops`). :mod:`.sheet` draws a contact sheet.
"""
from __future__ import annotations

from ..timebase import CROP_SIZE
from .analysis import FaceAnalysis, FaceTrack, analyze_faces
from .crops import EMBED_BATCH, WindowEmbedFn
from .detector import DETECTORS, CenterFaceDetector, Detection, FaceDetector, make_detector
from .mouth import crop_mouth
from .shots import ShotDetector

__all__ = [
    "FaceTrack", "FaceAnalysis", "analyze_faces", "FaceDetector", "CenterFaceDetector", "Detection",
    "ShotDetector", "crop_mouth", "CROP_SIZE", "WindowEmbedFn", "DETECTORS", "make_detector", "EMBED_BATCH",
]
