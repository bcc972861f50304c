"""Write (and read back) active-speaker results: JSON, per-frame CSV, and RTTM segments.

All writers are atomic (a temporary file beside the target, renamed when complete) and refuse
to write over the input video named in ``protect``.

* **JSON**: :meth:`SpeakerResult.to_dict` — fps, num_frames, tracks (id, frames, boxes, scores,
  speaking) and segments. Unscored frames have ``null`` scores.
* **CSV**: one row per face track per frame: ``track,frame,time_s,x,y,w,h,score,speaking``
  (score empty when unscored, speaking 0/1).
* **RTTM** (NIST Rich Transcription Time Marked, as read by pyannote and dscore): one line per
  speaking segment, ``SPEAKER <uri> 1 <onset> <duration> <NA> <NA> <speaker> <NA> <NA>``, where
  uri is the video's file stem and speaker is ``face<track id>``.
"""
from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import numpy as np

from ..speakers import CSV_FIELDS, Segment, SpeakerResult, SpeakerTrack, speaker_name

__all__ = ["write_json", "write_csv", "write_rttm", "read_json", "read_csv", "read_rttm", "rttm_lines",
           "speaker_name", "CSV_FIELDS"]


def write_json(result: SpeakerResult, path: str | os.PathLike, *, protect=None, indent: int | None = None,
               overwrite: bool = True) -> Path:
    """Write ``result.to_dict()`` as JSON."""
    return result.to_json(path, protect=protect, indent=indent, overwrite=overwrite)


def read_json(path: str | os.PathLike) -> SpeakerResult:
    return SpeakerResult.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def write_csv(result: SpeakerResult, path: str | os.PathLike, *, protect=None, overwrite: bool = True) -> Path:
    """One row per track per frame (``CSV_FIELDS``)."""
    return result.to_csv(path, protect=protect, overwrite=overwrite)


def read_csv(path: str | os.PathLike) -> list[SpeakerTrack]:
    """The tracks of a CSV written by :func:`write_csv` (ids, frames, boxes, scores, labels)."""
    rows: dict[int, list[dict]] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        r = csv.DictReader(fh)
        if r.fieldnames != CSV_FIELDS:
            raise ValueError(f"{path}: not a speakerid CSV (columns {r.fieldnames})")
        for row in r:
            rows.setdefault(int(row["track"]), []).append(row)
    out = []
    for tid, rs in rows.items():
        out.append(SpeakerTrack(
            id=tid, frames=np.array([int(x["frame"]) for x in rs], np.int64),
            boxes=np.array([[float(x[k]) for k in "xywh"] for x in rs], np.float32).reshape(-1, 4),
            scores=np.array([float(x["score"]) if x["score"] else np.nan for x in rs], np.float32),
            speaking=np.array([x["speaking"] == "1" for x in rs], bool)))
    return out


def rttm_lines(result: SpeakerResult, *, uri: str | None = None) -> list[str]:
    """The RTTM lines of the result's speaking segments, in time order."""
    return result.rttm_lines(uri=uri)


def write_rttm(result: SpeakerResult, path: str | os.PathLike, *, uri: str | None = None, protect=None,
               overwrite: bool = True) -> Path:
    """One SPEAKER line per speaking segment (an empty file when nobody speaks)."""
    return result.to_rttm(path, uri=uri, protect=protect, overwrite=overwrite)


def read_rttm(path: str | os.PathLike) -> list[tuple[str, Segment]]:
    """(uri, segment) per SPEAKER line; the track id is read back from a ``face<id>`` name."""
    out = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        f = line.split()
        if len(f) != 10 or f[0] != "SPEAKER":
            raise ValueError(f"{path}:{n}: not a 10-field SPEAKER line: {line!r}")
        m = re.fullmatch(r"face(\d+)", f[7])
        tid = int(m.group(1)) if m else -1
        start, dur = float(f[3]), float(f[4])
        out.append((f[1], Segment(track=tid, start=start, end=start + dur)))
    return out
