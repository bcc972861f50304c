"""Annotated video: who speaks when, drawn on the video, with its audio kept.

Each face track gets a box and its id; a speaking face's box is thick and green, a silent one's
thin and grey, a face too small to score dashed-looking dark grey. Beside each box a vertical bar
shows the face's score (the probability that it speaks, or with the ``"threshold"`` decoder its
calibrated z-score) with a tick at the threshold. The output is an H.264 + AAC mp4
(yuv420p, faststart) that plays in browsers; frames stream through, one at a time.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..media.write import COPY_AUDIO_CODECS  # noqa: F401  (named here by older imports)
from ..speakers import SpeakerResult

__all__ = ["render_speakers", "annotate_frame"]

GREEN = (60, 220, 60)
GREY = (200, 200, 200)
DARK = (110, 110, 110)
RED = (40, 40, 230)


def _bar_range(threshold: float, decoder: str = "hmm") -> tuple[float, float]:
    """Score range the bar spans: 0–1 for probabilities; for z-scores a little below zero to
    well above the threshold."""
    if decoder == "hmm":
        return 0.0, 1.0
    return -2.0, max(3.0 * threshold, threshold + 4.0)


def annotate_frame(image: np.ndarray, frame: int, result: SpeakerResult, *, time_s: float | None = None) -> np.ndarray:
    """Draw the result's tracks at source frame ``frame`` onto a copy of BGR ``image``."""
    import cv2

    img = image.copy() if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    h_img, w_img = img.shape[:2]
    scale = max(0.4, min(1.2, h_img / 720))
    thick = max(1, int(round(2 * scale)))
    lo, hi = _bar_range(result.threshold, result.decoder)
    speaking_ids = []
    for t in result.tracks:
        if not len(t.frames):
            continue
        i = int(frame) - int(t.frames[0])
        if not 0 <= i < len(t.frames):
            continue
        x, y, w, h = (float(v) for v in t.boxes[i])
        s = float(t.scores[i])
        sp = bool(t.speaking[i])
        if sp:
            speaking_ids.append(t.id)
        color = GREEN if sp else (GREY if math.isfinite(s) else DARK)
        p1 = (int(round(x)), int(round(y)))
        p2 = (int(round(x + w)), int(round(y + h)))
        cv2.rectangle(img, p1, p2, color, thick * (2 if sp else 1), cv2.LINE_AA)
        value = "n/a" if not math.isfinite(s) else f"{s:.2f}" if result.decoder == "hmm" else f"{s:+.1f}"
        label = f"#{t.id} {value}" + (" speaking" if sp else "")
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale * 1.4, thick)
        # the label's backing sits clear of the box's own (thick) edge, above it or else below it
        edge = thick * (2 if sp else 1) + 1
        if p1[1] - edge - th - 2 * base > 0:
            ty = p1[1] - edge - base
        else:
            ty = p2[1] + edge + th
        cv2.rectangle(img, (p1[0], ty - th - base), (p1[0] + tw + 4, ty + base), (0, 0, 0), -1)
        cv2.putText(img, label, (p1[0] + 2, ty), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale * 1.4, color, thick, cv2.LINE_AA)
        # score bar right of the box (left of it when the box touches the right edge)
        bw = max(6, int(round(8 * scale)))
        bx = p2[0] + 4 if p2[0] + 4 + bw < w_img else max(0, p1[0] - 4 - bw)
        by0, by1 = p1[1], p2[1]
        cv2.rectangle(img, (bx, by0), (bx + bw, by1), (40, 40, 40), -1)
        if math.isfinite(s):
            frac = min(1.0, max(0.0, (s - lo) / (hi - lo)))
            top = int(round(by1 - frac * (by1 - by0)))
            cv2.rectangle(img, (bx, top), (bx + bw, by1), color, -1)
        ty_thr = int(round(by1 - (result.threshold - lo) / (hi - lo) * (by1 - by0)))
        cv2.line(img, (bx - 2, ty_thr), (bx + bw + 2, ty_thr), RED, max(1, thick // 2 + 1))
    caption = f"{time_s:6.2f}s  " if time_s is not None else ""
    caption += "speaking: " + (", ".join(f"#{i}" for i in speaking_ids) if speaking_ids else "-")
    fs = 0.6 * scale * 1.4
    (tw, th), base = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, fs, thick)
    cv2.rectangle(img, (0, 0), (tw + 12, th + base + 10), (0, 0, 0), -1)
    cv2.putText(img, caption, (6, th + 5), cv2.FONT_HERSHEY_SIMPLEX, fs, (255, 255, 255), thick, cv2.LINE_AA)
    return img


def render_speakers(video: str | os.PathLike, output: str | os.PathLike, result: SpeakerResult | None = None, *,
                    progress=None, crf: int = 23, overwrite: bool = True, **detect_kw) -> Path:
    """Write ``output`` (.mp4): ``video`` with the active-speaker result drawn on it.

    Each frame keeps its source timestamp (variable frame rate stays variable), and the audio is
    the source's own: copied where an mp4 takes its codec, else re-encoded at its own rate and
    channels. The written file is decoded once more and checked (frame count, last frame's time,
    audio covering the video) before it is renamed into place. ``result``: from
    :func:`~speakerid.speakers.detect_speakers` (computed here, with ``detect_kw``, when not
    given). Never writes over ``video``.
    """
    from ..media import (audio_extent, encode_with_source_audio, iter_frames, probe, read_frame_times, require_audio,
                         verify_written)
    from ..outputs import atomic_output, check_output_path
    from ..progress import silent
    from ..speakers import detect_speakers

    progress = progress or silent
    check_output_path(output, protect=[video], overwrite=overwrite)  # before any work
    info = probe(video)
    require_audio(info)
    if result is None:
        result = detect_speakers(video, progress=progress, **detect_kw)
    times = read_frame_times(video)
    total = int(times.size)

    def frames() -> Iterator:
        for fr in iter_frames(video):
            if fr.index % 25 == 0:
                progress("render", fr.index + 1, total)
            yield fr.time, annotate_frame(fr.image, fr.index, result, time_s=fr.time)
        progress("render", total, total)

    need = 2 * Path(video).stat().st_size
    with atomic_output(output, protect=[video], overwrite=overwrite, need_bytes=need) as tmp:
        encode_with_source_audio(video, tmp, frames(), crf=crf)
        a0, a1 = audio_extent(video)  # the render's audio spans what the source's does
        verify_written(tmp, expect_frames=total, expect_end_s=float(times[-1]), name=output, audio_from_s=a0,
                       audio_to_s=a1)
    return Path(output)


