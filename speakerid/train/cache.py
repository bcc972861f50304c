"""Preprocess training clips once: faces stage → uint8 mouth crops + MFCC, cached as .npz.

One file per clip, holding the 25 fps model timeline of that clip:

* ``crops``  uint8 (N, 111, 111): the mouth crop of the clip's one face at each model frame
  (zeros where the frame is not usable)
* ``usable`` bool (N,): exactly one face track covers the frame and it is big enough
* ``shot``   int16 (N,): shot index of the frame (a training window must not span a cut)
* ``mfcc``   float32 (13, T): MFCC of the whole clip's audio, aligned to model frame 0
* ``meta``   JSON string: source path, group, identity, licence, source fps

Windows with more than one face, with a shot cut, or whose audio is digital silence are not
used for training: that is decided from ``usable``, ``shot`` and ``mfcc`` by
:func:`usable_windows`.
"""
from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..faces.detector import DETECTORS
from ..faces.mouth import CROP_GEOMETRIES, DEFAULT_CROP_GEOMETRY
from ..outputs import atomic_output
from ..features import COLS_PER_FRAME, SILENT_C0, WINDOW_COLS, WINDOW_FRAMES, compute_mfcc, num_windows

CACHE_VERSION = 1

CACHE_DETECTOR = "centerface"
"""The face detector of the training cache: the one the shipped weights' cache was made with
(before RetinaFace became the library's default). With RetinaFace the same clips give 94,565
usable windows instead of 87,250, so the recipe would no longer reproduce the shipped weights."""


@dataclass
class CachedClip:
    path: Path
    crops: np.ndarray
    usable: np.ndarray
    shot: np.ndarray
    mfcc: np.ndarray
    meta: dict

    @property
    def group(self) -> str:
        return self.meta.get("group", "")


def load_clip(path: str | os.PathLike) -> CachedClip:
    z = np.load(path, allow_pickle=False)
    return CachedClip(path=Path(path), crops=z["crops"], usable=z["usable"], shot=z["shot"],
                      mfcc=z["mfcc"], meta=json.loads(str(z["meta"])))


def usable_windows(clip: CachedClip) -> np.ndarray:
    """Start indices i of 5-frame windows that are all usable, in one shot, and have audio that
    is not digital silence (at most half of the window's 20 MFCC columns at zero energy: some
    source clips carry an all-zero audio track, which holds no sync signal at all)."""
    n = num_windows(clip.usable.size, clip.mfcc.shape[1])
    if n <= 0:
        return np.zeros(0, np.int64)
    u = clip.usable.astype(np.int32)
    c = np.concatenate([[0], np.cumsum(u)])
    all_usable = (c[WINDOW_FRAMES:WINDOW_FRAMES + n] - c[:n]) == WINDOW_FRAMES
    same_shot = clip.shot[:n] == clip.shot[WINDOW_FRAMES - 1:WINDOW_FRAMES - 1 + n]
    silent = np.concatenate([[0], np.cumsum(clip.mfcc[0] <= SILENT_C0)])
    start = COLS_PER_FRAME * np.arange(n)
    has_audio = (silent[start + WINDOW_COLS] - silent[start]) <= WINDOW_COLS // 2
    return np.nonzero(all_usable & same_shot & has_audio)[0].astype(np.int64)


def preprocess_clip(video: str | os.PathLike, out: str | os.PathLike, meta: dict | None = None,
                    detect_every: int = 4, detect_width: int = 320, crop_geometry: str = DEFAULT_CROP_GEOMETRY,
                    threads: int | None = None, detector: str = CACHE_DETECTOR) -> dict:
    """Run the faces stage and MFCC on one clip and write its cache file (atomically).

    The training clips are talking-head shots whose face fills much of the frame, so a small
    detector input and a keyframe every 4 frames find them as well as full size does, 4× faster.
    """
    from ..faces import analyze_faces
    from ..faces.detector import make_detector
    from ..media import read_audio

    det = make_detector(detector, input_width=detect_width, threads=threads or 1)
    a = analyze_faces(video, detector=det, detect_every=detect_every, detect_width=detect_width,
                      crop_geometry=crop_geometry)
    n = a.timeline.num_model_frames
    count = np.zeros(n, np.int32)
    for t in a.tracks:
        count[t.model_frames] += 1
    crops = np.zeros((n, 111, 111), np.uint8)
    usable = np.zeros(n, bool)
    for t in a.tracks:
        single = count[t.model_frames] == 1
        idx = t.model_frames[single]
        crops[idx] = t.crops[single]
        usable[idx] = t.scorable[single]
    audio = read_audio(video, video_start_s=a.info.video_start_s)
    mfcc = compute_mfcc(audio)
    meta = dict(meta or {})
    meta.update(source=str(video), fps=a.info.fps, num_tracks=len(a.tracks), version=CACHE_VERSION,
                crop_geometry=crop_geometry, detector=detector)
    # the partial file has no .npz suffix, so an interrupted write is never listed as a clip
    with atomic_output(out, keep_suffix=False) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, crops=crops, usable=usable, shot=a.shot_of_source(a.timeline.model_to_source).astype(np.int16),
                 mfcc=mfcc, meta=json.dumps(meta))
    return {"frames": int(n), "usable": int(usable.sum()), "tracks": len(a.tracks)}


def _manifest(data_root: Path) -> dict[str, dict]:
    m = data_root / "manifest.csv"
    if not m.exists():
        return {}
    with open(m, newline="") as f:
        return {r["file"]: r for r in csv.DictReader(f)}


def _work(args):
    video, out, meta, geometry, threads, detector = args
    import cv2

    cv2.setNumThreads(1)
    t = time.time()
    try:
        r = preprocess_clip(video, out, meta, crop_geometry=geometry, threads=threads, detector=detector)
        r["error"] = ""
    except Exception as e:  # noqa: BLE001 - one bad clip must not stop a long preprocessing run
        r = {"frames": 0, "usable": 0, "tracks": 0, "error": f"{type(e).__name__}: {e}"}
    r.update(video=str(video), seconds=round(time.time() - t, 2))
    return r


def clips_to_cache(data_root: str | os.PathLike, subdirs: list[str], cache_dir: str | os.PathLike):
    """``(video, cache file, meta)`` of every clip under ``data_root/<subdir>`` whose cache file
    is not written yet; meta: its group (the folder under train/, or the split), file, and the
    manifest's identity and licence."""
    data_root, cache_dir = Path(data_root), Path(cache_dir)
    manifest = _manifest(data_root)
    for sub in subdirs:
        for v in sorted((data_root / sub).rglob("*.mp4")):
            rel = v.relative_to(data_root).as_posix()
            out = cache_dir / Path(rel).with_suffix(".npz")
            if out.exists():
                continue
            row = manifest.get(rel, {})
            group = rel.split("/")[1] if rel.startswith("train/") else rel.split("/")[0]
            yield v, out, {"group": group, "file": rel, "identity": row.get("identity", ""),
                           "license": row.get("license", "")}


def build_cache(data_root: str | os.PathLike, subdirs: list[str], cache_dir: str | os.PathLike,
                workers: int = 2, log=print, crop_geometry: str = DEFAULT_CROP_GEOMETRY,
                detector: str = CACHE_DETECTOR) -> list[dict]:
    """Preprocess every clip under ``data_root/<subdir>`` (skipping ones already cached)."""
    from concurrent.futures import ProcessPoolExecutor

    # the cores shared out: workers with a detector each on every core ran ~10× slower
    threads = max(1, (os.cpu_count() or 1) // workers)
    jobs = [(str(v), str(out), meta, crop_geometry, threads, detector)
            for v, out, meta in clips_to_cache(data_root, subdirs, cache_dir)]
    log(f"preprocessing {len(jobs)} clips with {workers} workers → {cache_dir}")
    results = []
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    t0 = time.time()
    with ProcessPoolExecutor(max_workers=workers) as ex:
        for i, r in enumerate(ex.map(_work, jobs, chunksize=4)):
            results.append(r)
            if r["error"]:
                log(f"  skip {r['video']}: {r['error']}")
            if (i + 1) % 50 == 0 or i + 1 == len(jobs):
                log(f"  {i + 1}/{len(jobs)} clips, {time.time() - t0:.0f}s")
    return results


def clip_geometry(clip: CachedClip) -> str:
    """How a cached clip's mouth crops were framed (files written before this was recorded: "mouth")."""
    return str(clip.meta.get("crop_geometry", "mouth"))


def main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(prog="python -m speakerid.train.cache",
                                description="Preprocess training/eval clips into a cache of mouth crops + MFCC.")
    p.add_argument("data_root")
    p.add_argument("cache_dir")
    p.add_argument("subdirs", nargs="+", help="folders under DATA_ROOT, e.g. train/grid_s1 eval")
    p.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", "2")))
    p.add_argument("--crop-geometry", choices=CROP_GEOMETRIES, default=DEFAULT_CROP_GEOMETRY,
                   help=f"how mouth crops are framed (speakerid.faces.mouth); default: {DEFAULT_CROP_GEOMETRY}")
    p.add_argument("--detector", choices=DETECTORS, default=CACHE_DETECTOR,
                   help=f"face detector (default: {CACHE_DETECTOR}, the shipped weights' cache)")
    a = p.parse_args(argv)
    build_cache(a.data_root, a.subdirs, a.cache_dir, workers=a.workers, crop_geometry=a.crop_geometry,
                detector=a.detector)


if __name__ == "__main__":
    main()
