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
from fractions import Fraction
from pathlib import Path

import numpy as np

from .speakers import SpeakerResult

__all__ = ["render_speakers", "annotate_frame", "check_output"]

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


def check_output(video: str | os.PathLike, output: str | os.PathLike) -> None:
    """Raise :class:`~speakerid.errors.OutputExistsError` when ``output`` is the input ``video``."""
    from .media import check_output_path

    check_output_path(output, protect=[video])


COPY_AUDIO_CODECS = ("aac", "mp3", "ac3", "eac3", "alac", "opus", "flac")
"""Audio codecs an mp4 takes as they are: copied packet for packet; others are re-encoded to
AAC at the source's own rate and channels."""


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
    from .media import (audio_extent, check_output_path, iter_frames, probe, read_frame_times, require_audio,
                        verify_written)
    from .progress import silent
    from .speakers import detect_speakers

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

    from .outputs import atomic_output

    need = 2 * Path(video).stat().st_size
    with atomic_output(output, protect=[video], overwrite=overwrite, need_bytes=need) as tmp:
        _encode(video, tmp, frames(), crf=crf)
        a0, a1 = audio_extent(video)  # the render's audio spans what the source's does
        verify_written(tmp, expect_frames=total, expect_end_s=float(times[-1]), name=output, audio_from_s=a0,
                       audio_to_s=a1)
    return Path(output)


def _encode(video: str | os.PathLike, tmp: Path, frames: Iterator, *, crf: int) -> None:
    """H.264 (yuv420p, faststart) of ``(time, image)`` pairs at their own times, with ``video``'s
    audio interleaved."""
    import av

    from .media import _Interleaver, _audio_packets, _open, _packet_time, stream_audio_native

    with _open(video) as src:
        ivs = src.streams.video[0]
        tb = ivs.time_base if ivs.time_base else Fraction(1, 90000)
        rate = ivs.average_rate or ivs.guessed_rate or Fraction(25)
        ias = src.streams.audio[0] if src.streams.audio else None
        with av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"}) as out:
            vs = None
            audio = None
            copy = ias is not None and ias.codec_context.name in COPY_AUDIO_CODECS
            if copy:
                oas = out.add_stream_from_template(ias)
                audio = _Interleaver(out, _copied_audio(src, ias, oas))
            elif ias is not None:
                native = stream_audio_native(video)
                layout = native.layout if native.channels <= 2 else "stereo"
                oas = out.add_stream("aac", rate=native.sample_rate, layout=layout)
                audio = _Interleaver(out, _audio_packets(oas, native, native.sample_rate, layout))
            last_pts = -1
            for t, img in frames:
                if vs is None:
                    h, w = img.shape[:2]
                    vs = out.add_stream("libx264", rate=rate)
                    vs.width, vs.height = w // 2 * 2, h // 2 * 2
                    vs.pix_fmt = "yuv420p"
                    vs.time_base = tb
                    vs.codec_context.time_base = tb
                    vs.options = {"crf": str(crf), "preset": "veryfast"}
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img[: vs.height, : vs.width]), format="bgr24")
                # the source's own time (strictly increasing, as the encoder requires)
                last_pts = max(last_pts + 1, int(round(t / tb)))
                vf.pts = last_pts
                vf.time_base = tb
                for pkt in vs.encode(vf):
                    if audio is not None:
                        audio.until(_packet_time(pkt))
                    out.mux(pkt)
            if vs is None:
                from .errors import EmptyMediaError

                raise EmptyMediaError(f"{video}: no frames to render")
            for pkt in vs.encode():
                if audio is not None:
                    audio.until(_packet_time(pkt))
                out.mux(pkt)
            if audio is not None:
                audio.until(math.inf)


def _copied_audio(src, ias, oas) -> Iterator:
    """``src``'s audio packets, re-timed so that 0 is the first video frame (as the rendered
    frames are); packets wholly before that frame are dropped."""
    from .media import _open, first_video_time

    v0 = first_video_time(src.name)
    with _open(src.name) as c:
        a = c.streams.audio[0]
        shift = int(round(v0 / a.time_base))
        for pkt in c.demux(a):
            if pkt.size == 0 or pkt.pts is None:
                continue
            pkt.pts -= shift
            if pkt.dts is not None:
                pkt.dts -= shift
            if pkt.pts < 0:
                continue
            pkt.stream = oas
            yield pkt
