"""Contact sheets: what the model sees, per track, as one PNG."""
from __future__ import annotations

import os

import numpy as np

from .analysis import FaceAnalysis


def contact_sheet(analysis: FaceAnalysis, *, per_track: int = 12, max_tracks: int = 12) -> np.ndarray:
    """A grayscale image: one row per track of ``per_track`` mouth crops evenly spaced in time,
    each row labelled with the track id and its time span."""
    import cv2

    rows = []
    for t in analysis.tracks[:max_tracks]:
        if t.crops is None or len(t.crops) == 0:
            continue
        pick = np.linspace(0, len(t.crops) - 1, num=min(per_track, len(t.crops))).round().astype(int)
        tiles = [t.crops[i] for i in pick] + [np.zeros_like(t.crops[0])] * (per_track - len(pick))
        row = np.concatenate(tiles, axis=1)
        label = np.full((22, row.shape[1]), 255, np.uint8)
        t0 = analysis.timeline.source_times[t.start_frame]
        t1 = analysis.timeline.source_times[t.end_frame]
        cv2.putText(label, f"track {t.id}  frames {t.start_frame}-{t.end_frame}  {t0:.2f}-{t1:.2f}s",
                    (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 0, 1, cv2.LINE_AA)
        rows += [label, row, np.full((4, row.shape[1]), 255, np.uint8)]
    if not rows:
        img = np.full((60, 400), 255, np.uint8)
        cv2.putText(img, "no face tracks", (10, 35), cv2.FONT_HERSHEY_SIMPLEX, 0.7, 0, 1, cv2.LINE_AA)
        return img
    return np.concatenate(rows, axis=0)


def write_contact_sheet(analysis: FaceAnalysis, path: str | os.PathLike, *, overwrite: bool = True, **kw) -> None:
    import cv2

    from ..outputs import atomic_output

    with atomic_output(path, protect=[analysis.info.path], overwrite=overwrite) as tmp:
        ok, buf = cv2.imencode(".png", contact_sheet(analysis, **kw))
        if not ok:
            raise RuntimeError("PNG encoding failed")
        tmp.write_bytes(buf.tobytes())
