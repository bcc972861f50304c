"""A training cache packed into one small file, to carry it to a machine with a GPU.

The cache (:mod:`.cache`) keeps every mouth crop as raw pixels: 12 KB a frame, about 1 GB for
the whole training set. Packed, the crops of the usable frames become one grayscale H.264 video
(``crf`` 18: about 300 bytes a frame, a mean error of about 1.5 grey levels of 255, well
inside what the training's augmentation does to a crop) and the MFCC float16; the rest (which frames
are usable, shots, metadata) is kept as it is. ``unpack`` writes the cache back, clip by clip,
and decodes with OpenCV alone, so it runs where PyAV is not installed. The whole training set
and the eval clips (2,605 clips, 105,285 usable crops) pack into 42.2 MiB: with the repository,
within what a lent GPU machine takes (64 MiB).

    python -m speakerid.train.pack pack CACHE cache.pack.npz
    python -m speakerid.train.pack unpack cache.pack.npz CACHE2
"""
from __future__ import annotations

import io
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from ..errors import TrainingDataError
from ..outputs import atomic_output
from ..timebase import CROP_SIZE
from .cache import load_clip
from .data import list_cache

PACK_VERSION = 1
SIDE = CROP_SIZE + 1  # H.264 wants even sides: one column and row of padding


def pack_cache(cache_dir: str | os.PathLike, out: str | os.PathLike, *, crf: int = 18,
               splits: tuple[str, ...] = ("train", "eval"), log=print) -> dict:
    """Pack every clip of ``splits`` under ``cache_dir`` into ``out`` (one .npz, written
    atomically); returns counts and the file's size."""
    import av

    root = Path(cache_dir)
    paths = [p for s in splits for p in list_cache(root, s)]
    if not paths:
        raise TrainingDataError(f"no cached clips under {root} ({', '.join(splits)})")
    names, frames, metas, usable, shots, mfccs, cols = [], [], [], [], [], [], []
    buf = io.BytesIO()
    t0 = time.time()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width = stream.height = SIDE
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(int(crf)), "preset": "medium"}
        pad = np.zeros((SIDE, SIDE), np.uint8)
        for i, p in enumerate(paths):
            c = load_clip(p)
            names.append(p.relative_to(root).as_posix())
            frames.append(c.usable.size)
            metas.append(c.meta)
            usable.append(c.usable)
            shots.append(c.shot)
            mfccs.append(c.mfcc.astype(np.float16))
            cols.append(c.mfcc.shape[1])
            for crop in c.crops[c.usable]:
                pad[:CROP_SIZE, :CROP_SIZE] = crop
                frame = av.VideoFrame.from_ndarray(pad, format="gray").reformat(format="yuv420p")
                for packet in stream.encode(frame):
                    container.mux(packet)
            if (i + 1) % 100 == 0 or i + 1 == len(paths):
                log(f"  packed {i + 1}/{len(paths)} clips ({time.time() - t0:.0f}s)")
        for packet in stream.encode():
            container.mux(packet)
    video = np.frombuffer(buf.getvalue(), np.uint8)
    with atomic_output(out, keep_suffix=False) as tmp, open(tmp, "wb") as fh:
        # names and metadata as UTF-8 JSON bytes (numpy's fixed-width unicode takes 4 bytes a
        # character, padded to the longest name)
        index = np.frombuffer(json.dumps({"names": names, "meta": metas}).encode(), np.uint8)
        np.savez(fh, version=PACK_VERSION, index=index, frames=np.array(frames, np.int64),
                 usable=np.concatenate(usable), shot=np.concatenate(shots),
                 mfcc_cols=np.array(cols, np.int64), mfcc=np.concatenate(mfccs, axis=1), video=video)
    n = int(np.concatenate(usable).sum())
    return {"clips": len(paths), "frames": int(sum(frames)), "video_frames": n,
            "bytes": os.path.getsize(out), "video_bytes": int(video.size)}


def _decoded_crops(video: np.ndarray, count: int):
    """The packed crops, in order, decoded by OpenCV (from a temporary file: its reader takes a path)."""
    import cv2

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "crops.mp4")
        video.tofile(path)
        cap = cv2.VideoCapture(path)
        try:
            for _ in range(count):
                ok, img = cap.read()
                if not ok:
                    return
                yield cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[:CROP_SIZE, :CROP_SIZE]
        finally:
            cap.release()


def unpack_cache(pack: str | os.PathLike, cache_dir: str | os.PathLike, log=print) -> dict:
    """Write the clips of a packed cache under ``cache_dir`` in the cache's own format.
    Clips already there are kept; a pack whose video holds fewer crops than its index says
    raises :class:`~speakerid.errors.TrainingDataError` (nothing half-written is left)."""
    z = np.load(pack, allow_pickle=False)
    if int(z["version"]) != PACK_VERSION:
        raise TrainingDataError(f"{pack}: pack version {int(z['version'])}, this library reads {PACK_VERSION}")
    index = json.loads(z["index"].tobytes().decode())
    names, metas = index["names"], index["meta"]
    frames, cols = z["frames"], z["mfcc_cols"]
    usable_all, shot_all, mfcc_all = z["usable"], z["shot"], z["mfcc"]
    crops_iter = _decoded_crops(z["video"], int(usable_all.sum()))
    root = Path(cache_dir)
    f0 = c0 = written = 0
    t0 = time.time()
    for i, name in enumerate(names):
        n, t = int(frames[i]), int(cols[i])
        usable = usable_all[f0:f0 + n]
        crops = np.zeros((n, CROP_SIZE, CROP_SIZE), np.uint8)
        for k in np.nonzero(usable)[0]:
            crop = next(crops_iter, None)
            if crop is None:
                raise TrainingDataError(f"{pack}: its video ends before clip {name}'s crops")
            crops[k] = crop
        out = root / str(name)
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            with atomic_output(out, keep_suffix=False) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, crops=crops, usable=usable, shot=shot_all[f0:f0 + n],
                         mfcc=mfcc_all[:, c0:c0 + t].astype(np.float32), meta=json.dumps(metas[i]))
            written += 1
        f0, c0 = f0 + n, c0 + t
        if (i + 1) % 200 == 0 or i + 1 == len(names):
            log(f"  unpacked {i + 1}/{len(names)} clips ({time.time() - t0:.0f}s)")
    return {"clips": len(names), "written": written}


def main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(prog="python -m speakerid.train.pack", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pack", help="cache folder → one .npz")
    a.add_argument("cache_dir")
    a.add_argument("out")
    a.add_argument("--crf", type=int, default=18, help="H.264 quality of the crops (lower: larger, closer)")
    b = sub.add_parser("unpack", help="one .npz → cache folder")
    b.add_argument("pack")
    b.add_argument("cache_dir")
    args = p.parse_args(argv)
    if args.cmd == "pack":
        r = pack_cache(args.cache_dir, args.out, crf=args.crf)
        print(f"{args.out}: {r['clips']} clips, {r['video_frames']} crops, {r['bytes'] / 2**20:.1f} MiB")
    else:
        r = unpack_cache(args.pack, args.cache_dir)
        print(f"{args.cache_dir}: {r['written']} of {r['clips']} clips written")


if __name__ == "__main__":
    main()
