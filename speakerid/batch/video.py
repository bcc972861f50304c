"""One video of a batch: the task's outputs written, and its manifest row; errors become the row's
status instead of stopping the batch."""
from __future__ import annotations

import time
from pathlib import Path

from ..errors import SpeakerIdError
from .inputs import BatchOptions, content_hash


def process_video(path: Path, out_dir: Path, opts: BatchOptions, model, detector=None,
                  sha256: str | None = None) -> dict:
    """Run the task on one video and write its outputs; errors become the row's status.
    ``detector``: a face detector object (default: ``opts.detector`` by name); ``sha256``: the
    file's content hash when the caller has it (hashed here otherwise)."""
    detector = detector or opts.detector
    from ..media import probe

    t0 = time.perf_counter()
    row: dict = {"path": str(path), "status": "ok", "message": ""}
    try:
        row["size"] = path.stat().st_size
        row["sha256"] = sha256 or content_hash(path)
        stem = f"{path.stem}-{row['sha256'][:8]}"
        info = probe(path)
        row.update(duration_s=round(info.duration_s, 3), fps=round(info.fps, 4))
        outputs = []
        warnings: list[str] = []
        if opts.task in ("sync", "both"):
            from ..sync import measure_sync

            r = measure_sync(path, model=model, detector=detector)
            o = out_dir / f"{stem}.sync.json"
            r.to_json(o)
            outputs.append(str(o))
            row.update(offset_ms=r.offset_ms, confidence=round(r.confidence, 4), p_correct=r.p_correct,
                       reliable=r.reliable, sync_status=r.status, drift=r.drift)
            warnings += r.warnings
        if opts.task in ("speakers", "both"):
            from ..speakers import detect_speakers

            s = detect_speakers(path, model=model, detector=detector)
            for suffix, write in ((".speakers.json", s.to_json), (".rttm", s.to_rttm), (".csv", s.to_csv)):
                o = out_dir / f"{stem}{suffix}"
                write(o)
                outputs.append(str(o))
            row.update(tracks=len(s.tracks), speaking_segments=len(s.segments), speakers_offset_ms=s.offset_ms)
            warnings += s.warnings
        row["warnings"] = list(dict.fromkeys(warnings))  # both tasks read the same audio: once each
        row["outputs"] = outputs
    except SpeakerIdError as e:
        row.update(status=type(e).__name__, message=str(e))
    except MemoryError:
        row.update(status="MemoryError", message="ran out of memory (the per-worker limit, or the machine's)")
    row["wall_s"] = round(time.perf_counter() - t0, 3)
    return row


def load_worker(opts: BatchOptions):
    """What a worker holds for all its videos: the model and a face detector that keeps to the
    worker's threads (a detector's own default is every core). Applies the memory limit and the
    torch threads to this process."""
    import torch

    from ..faces.detector import DETECTORS, make_detector
    from ..model import resolve_model

    if opts.memory_mb:
        import resource

        limit = int(opts.memory_mb) << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    torch.set_num_threads(opts.threads)
    return resolve_model(opts.model), make_detector(opts.detector or DETECTORS[0], threads=opts.threads)


def stopped_row(video: str, sha256: str, timeout_s: float) -> dict:
    return {"path": video, "status": "timeout", "sha256": sha256,
            "message": f"still running after {timeout_s:g} s: stopped"}


def crashed_row(video: str, sha256: str, message: str) -> dict:
    return {"path": video, "status": "crash", "sha256": sha256, "message": message}
