"""Golden outputs: freeze what the library computes, to check that a change of structure changes
no number.

``python benchmarks/golden.py freeze OUT.pkl`` runs, through the public API only:

* ``measure_sync`` on five clips of the sync bench (curves, offsets, confidences, windows,
  p_correct, segments);
* ``detect_speakers`` on the bundled example and two ASD composites (per-frame scores, labels,
  offsets, segments, warnings);
* a short training run with a fixed seed on a small cache of real clips (its evaluation
  figures, and the clip alignment and refinement threshold of the last stage);

``python benchmarks/golden.py compare A.pkl B.pkl`` prints, for every array, the largest
absolute difference, and exits 1 when any exceeds ``--tol`` (default 0: bit-identical).
"""
from __future__ import annotations

import argparse
import json
import pickle
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SYNC_CLIPS = [
    "1448a660_evaluation__samples__GRID__sbwe5n__m300.mp4",
    "1e295d54_examples__ref_video__WDA_KatieHill_000__p360.mp4",
    "1f58b04a_data__test__mp4__id04030__7mXUMuo5_NE__00002__p200.mp4",
    "65b359b9_examples__face__3__m480.mp4",
    "5c06ff57_examples__ref_video__WDA_AlexandriaOcasioCortez_000__p0.mp4",
]
ASD_CLIPS = ["asd_1_000.mp4", "asd_1_005.mp4"]
TRAIN_CLIPS = ["train/grid_s1/data_s1_bbaf2n.mp4", "train/grid_s1/data_s1_bbaf3s.mp4",
               "train/grid_s1/data_s1_bbal6n.mp4", "train/grid_s1/data_s1_bbaz4n.mp4"]
EVAL_CLIPS = ["eval/1448a660_evaluation__samples__GRID__sbwe5n.mp4",
              "eval/c4ab581d_data__raw__examples__May_5s.mp4",
              "eval/misc_Audio_Source_00086.mp4"]


def _sync(out: dict) -> None:
    from speakerid import measure_sync

    for name in SYNC_CLIPS:
        t0 = time.perf_counter()
        r = measure_sync(SHARED / "bench" / "sync" / name)
        d = r.to_dict(curves=True)
        d.pop("timings")
        d["video"] = name
        out[f"sync/{name}"] = d
        print(f"sync {name}: {r.offset_ms} conf {r.confidence:.4f} p {r.p_correct} ({time.perf_counter() - t0:.0f} s)",
              flush=True)


def _speakers(out: dict) -> None:
    from speakerid import detect_speakers, examples

    videos = [("example", examples.path())] + [(n, SHARED / "bench" / "asd" / n) for n in ASD_CLIPS]
    for name, path in videos:
        t0 = time.perf_counter()
        r = detect_speakers(path)
        d = r.to_dict()
        d["video"] = name
        d["raw_scores"] = {int(t.id): np.asarray(t.scores, np.float64) for t in r.tracks}
        d["global_profile"] = np.asarray(r.diagnostics.get("global_profile", []), np.float64)
        d["null"] = r.diagnostics.get("null")
        out[f"speakers/{name}"] = d
        print(f"speakers {name}: {len(r.tracks)} tracks, {len(r.segments)} segments, offset {r.offset_ms} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)


def _training(out: dict) -> None:
    import torch

    from speakerid.train.cache import preprocess_clip
    from speakerid.train.config import TrainConfig
    from speakerid.train.loop import Trainer, evaluate

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        for rel in TRAIN_CLIPS + EVAL_CLIPS:
            split = "train/grid_s1" if rel.startswith("train/") else "eval"
            dst = cache / split / (Path(rel).stem + ".npz")
            preprocess_clip(SHARED / "data" / rel, dst, meta={"group": "grid_s1" if split != "eval" else "eval",
                                                             "file": rel})
        cfg = TrainConfig(cache_dir=str(cache), out_dir=str(Path(tmp) / "run"), seed=3, width=4, audio_width=4,
                          embed_dim=32, chunks=4, chunk_len=6, steps1=40, steps2=10, align_at=20, eval_every=20,
                          warmup=5, ema=0.9, threads=1)
        t0 = time.perf_counter()
        trainer = Trainer(cfg, log=lambda m: None)
        trainer.run()
        model = trainer.result_model
        ev = evaluate(model, cache, "eval", log=lambda m: None)
        out["train/eval"] = json.loads(json.dumps(ev))
        out["train/state"] = {k: v.detach().float().numpy().copy() for k, v in model.state_dict().items()}
        print(f"training: acc_10ms {ev.get('acc_10ms')}, clip {ev.get('clip_level', {}).get('within_40ms')} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)


def freeze(path: str, parts: list[str]) -> None:
    out: dict = {}
    for part in parts:
        {"sync": _sync, "speakers": _speakers, "train": _training}[part](out)
    with open(path, "wb") as f:
        pickle.dump(out, f)
    print(f"wrote {path}: {len(out)} entries")


def _walk(a, b, key: str, rows: list) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                rows.append((f"{key}/{k}", "missing on one side", np.inf))
                continue
            _walk(a[k], b[k], f"{key}/{k}", rows)
        return
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and not _numeric(a):
        if len(a) != len(b):
            rows.append((key, f"length {len(a)} vs {len(b)}", np.inf))
            return
        for i, (x, y) in enumerate(zip(a, b)):
            _walk(x, y, f"{key}[{i}]", rows)
        return
    if _numeric(a) and _numeric(b):
        x = np.asarray(_nan(a), np.float64)
        y = np.asarray(_nan(b), np.float64)
        if x.shape != y.shape:
            rows.append((key, f"shape {x.shape} vs {y.shape}", np.inf))
            return
        both_nan = np.isnan(x) & np.isnan(y)
        one_nan = np.isnan(x) ^ np.isnan(y)
        if one_nan.any():
            rows.append((key, f"NaN differs at {int(one_nan.sum())} places", np.inf))
            return
        d = np.where(both_nan, 0.0, np.abs(x - y))
        d = np.where(np.isinf(x) & (x == y), 0.0, d)
        rows.append((key, "", float(d.max()) if d.size else 0.0))
        return
    rows.append((key, "" if a == b else f"{a!r} vs {b!r}", 0.0 if a == b else np.inf))


def _nan(v):
    if isinstance(v, (list, tuple)):
        return [_nan(x) for x in v]
    return np.nan if v is None else v


def _numeric(v) -> bool:
    if isinstance(v, np.ndarray):
        return v.dtype.kind in "fiub"
    if isinstance(v, (bool, int, float)) or v is None:
        return not isinstance(v, type(None)) or True
    if isinstance(v, (list, tuple)):
        return all(_numeric(x) for x in v) and len(v) > 0
    return False


def compare(a_path: str, b_path: str, tol: float) -> int:
    with open(a_path, "rb") as f:
        a = pickle.load(f)
    with open(b_path, "rb") as f:
        b = pickle.load(f)
    rows: list = []
    _walk(a, b, "", rows)
    worst: dict[str, float] = {}
    bad = 0
    for key, why, d in rows:
        group = "/".join(key.split("/")[:3])
        worst[group] = max(worst.get(group, 0.0), d)
        if d > tol:
            bad += 1
            if bad <= 40:
                print(f"DIFF {key}: {why or f'max |a − b| = {d:.3g}'}")
    for g, d in sorted(worst.items()):
        print(f"{g}: max |a − b| = {d:.3g}")
    print(f"{len(rows)} values compared, {bad} beyond {tol:g}")
    return 1 if bad else 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("freeze")
    f.add_argument("out")
    f.add_argument("--parts", nargs="+", default=["sync", "speakers", "train"], choices=["sync", "speakers", "train"])
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    c.add_argument("--tol", type=float, default=0.0)
    a = p.parse_args()
    if a.cmd == "freeze":
        freeze(a.out, a.parts)
    else:
        sys.exit(compare(a.a, a.b, a.tol))


if __name__ == "__main__":
    main()
