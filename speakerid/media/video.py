"""Video frames in presentation order, one at a time, and their times.

Time zero is the first video frame; frames come upright (the container's rotation applied).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CorruptMediaError, EmptyMediaError, NoVideoStreamError
from ..timebase import VIDEO_FPS
from .container import PathLike, _check_codec, _check_path, _open, _rotation_of

@dataclass(frozen=True)
class Frame:
    """One decoded video frame: its index in the source, its time (s from the first frame)."""

    index: int
    time: float
    image: np.ndarray
    """Upright pixels: H×W×3 uint8 BGR (OpenCV order), or H×W uint8 when decoded as gray."""


def _upright(img: np.ndarray, rotation: int) -> np.ndarray:
    if rotation == 90:
        return np.ascontiguousarray(np.rot90(img, k=-1))
    if rotation == 180:
        return np.ascontiguousarray(img[::-1, ::-1])
    if rotation == 270:
        return np.ascontiguousarray(np.rot90(img, k=1))
    return img


def iter_frames(path: PathLike, *, gray: bool = False, max_width: int | None = None,
                indices: Iterable[int] | None = None) -> Iterator[Frame]:
    """Stream decoded video frames in presentation order, never holding more than one.

    ``time`` is seconds after the first frame. ``max_width`` downscales on decode (cheaper
    than decoding full size then resizing). ``indices``: yield only these source frame numbers
    (all frames are still decoded: H.264 cannot skip), and stop after the last one.
    """
    import av

    p = _check_path(path)
    wanted = None
    last_wanted = None
    if indices is not None:
        wanted = set(int(i) for i in indices)
        last_wanted = max(wanted) if wanted else -1
    with _open(p) as c:
        if not c.streams.video:
            raise NoVideoStreamError(f"{p}: has no video stream")
        vs = c.streams.video[0]
        _check_codec(vs, p, "video")
        vs.thread_type = "AUTO"
        rotation = None
        t0 = None
        idx = -1
        fmt = "gray" if gray else "bgr24"
        try:
            for f in c.decode(vs):
                idx += 1
                if rotation is None:
                    rotation = _rotation_of(vs, f)
                t = float(f.time) if f.time is not None else idx / float(vs.average_rate or VIDEO_FPS)
                if t0 is None:
                    t0 = t
                if wanted is not None:
                    if idx > last_wanted:
                        break
                    if idx not in wanted:
                        continue
                w, h = f.width, f.height
                if max_width and w > max_width:
                    scale = max_width / w
                    f = f.reformat(width=max_width // 2 * 2, height=max(2, int(round(h * scale / 2)) * 2), format=fmt)
                    img = f.to_ndarray()
                else:
                    img = f.to_ndarray(format=fmt)
                yield Frame(index=idx, time=t - t0, image=_upright(img, rotation))
        except av.error.FFmpegError as e:
            raise CorruptMediaError(f"{p}: video decoding failed at frame {idx + 1} ({e})") from e
        if idx < 0:
            raise EmptyMediaError(f"{p}: video stream has no decodable frames")
        if wanted is None:
            _check_complete(p, int(vs.frames or 0), idx + 1)


def _check_complete(p: Path, listed: int, got: int) -> None:
    """A container that lists more frames than could be read was cut short (a truncated MP4
    still opens, its index intact, and decodes up to the cut without an error)."""
    if listed and got < listed - max(2, listed // 20):
        raise CorruptMediaError(f"{p}: truncated or damaged: the container lists {listed} video frames "
                                f"but only {got} could be read")


def read_frame_times(path: PathLike) -> np.ndarray:
    """Presentation times (s, from the first frame) of every video frame, by demuxing only."""
    import av

    p = _check_path(path)
    with _open(p) as c:
        if not c.streams.video:
            raise NoVideoStreamError(f"{p}: has no video stream")
        vs = c.streams.video[0]
        pts = []
        try:
            for pkt in c.demux(vs):
                if pkt.pts is not None and pkt.size:
                    pts.append(pkt.pts)
        except av.error.FFmpegError as e:
            raise CorruptMediaError(f"{p}: demuxing failed ({e})") from e
        if not pts:
            raise EmptyMediaError(f"{p}: video stream has no frames")
        _check_complete(p, int(vs.frames or 0), len(pts))
        t = np.sort(np.asarray(pts, dtype=np.float64)) * float(vs.time_base)
        return t - t[0]


def first_video_time(path: PathLike) -> float:
    """Presentation time of the first decodable video frame of ``path`` (0 for audio-only files).

    Read from a container opened for this alone: seeking an open container back to the start
    after decoding video lands on the video's first keyframe, which skips any audio that
    starts before it."""
    import av

    with _open(path) as c:
        if not c.streams.video:
            return 0.0
        with contextlib.suppress(av.error.FFmpegError):
            for f in c.decode(c.streams.video[0]):
                return float(f.time or 0.0)
    return 0.0
