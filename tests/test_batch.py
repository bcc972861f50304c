"""``speakerid batch`` on generated files, with real worker processes: statuses, a re-run that
does nothing, and a run killed mid-way (SIGKILL) then resumed, which ends with the manifest of an
uninterrupted run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import mediagen
from conftest import GRID_CLIP
from speakerid.batch import BatchOptions, discover, read_manifest, run
from speakerid.sync import shift_sync


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("batch_in")
    shift_sync(GRID_CLIP, d / "talk.mp4", 120)
    b = GRID_CLIP.read_bytes()
    (d / "corrupt.mp4").write_bytes(b[: len(b) // 2])
    mediagen.write_media(d / "no_audio.mp4", fps=25, num_frames=50)
    (d / "sub").mkdir()  # folders are searched recursively
    mediagen.write_media(d / "sub" / "no_face.mkv", fps=25, num_frames=75,
                         audio=mediagen.tone_with_clicks(3.0, 16000, [1.0], level=0.1))
    (d / "notes.txt").write_text("not a video list entry\n")
    return d


def _stable(rows):
    """Rows without what differs between runs (timings, where the outputs went)."""
    return sorted(({k: v for k, v in r.items() if k not in ("wall_s", "outputs")} for r in rows),
                  key=lambda r: r["path"])


def test_statuses_and_a_rerun_that_does_nothing(mixed, tmp_path):
    videos = discover([mixed])  # by media extension: notes.txt is not a video
    assert sorted(v.name for v in videos) == ["corrupt.mp4", "no_audio.mp4", "no_face.mkv", "talk.mp4"]
    lst = mixed / "list.csv"
    lst.write_text("path\ntalk.mp4\nsub/no_face.mkv\n")
    assert [v.name for v in discover([lst])] == ["no_face.mkv", "talk.mp4"]
    lst.unlink()
    rows = list(run([mixed], tmp_path, BatchOptions(task="both", jobs=2)))
    by = {Path(r["path"]).name: r for r in rows}
    assert by["talk.mp4"]["status"] == "ok" and abs(by["talk.mp4"]["offset_ms"] - 120) <= 40
    assert by["talk.mp4"]["reliable"] and by["talk.mp4"]["tracks"] == 1
    assert by["corrupt.mp4"]["status"] == "CorruptMediaError"
    assert by["no_audio.mp4"]["status"] == "NoAudioStreamError"
    assert by["no_face.mkv"]["status"] == "ok" and by["no_face.mkv"]["sync_status"] == "no_face"
    for r in rows:
        assert r["state"] == "finished" and r["settings"] and r["model"] and len(r["sha256"]) == 64
        assert all(Path(o).is_file() for o in r.get("outputs", []))
    manifest = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    assert _stable(manifest) == _stable(rows)
    assert not (tmp_path / "manifest.journal").exists()
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "manifest.parquet").to_pylist()
    assert _stable([{k: v for k, v in r.items() if v is not None} for r in table]) == \
        _stable([{k: v for k, v in r.items() if v is not None} for r in rows])
    assert list(run([mixed], tmp_path, BatchOptions(task="both", jobs=2))) == []  # all done: nothing to do
    # other settings are other work
    assert len(list(run([mixed / "talk.mp4"], tmp_path, BatchOptions(task="sync")))) == 1


def test_killed_run_resumes_to_the_same_manifest(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for off in (-200, 0, 120, 280):
        shift_sync(GRID_CLIP, src / f"grid_{off:+d}.mp4", off)
    whole = tmp_path / "whole"
    assert list(run([src], whole, BatchOptions(task="sync"))) != []
    part = tmp_path / "part"
    cmd = [sys.executable, "-m", "speakerid", "batch", str(src), "--out", str(part), "--quiet"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    while not any(j.read_text().strip() for j in (part / "manifest.journal").glob("*.jsonl")):
        assert time.monotonic() - t0 < 120 and p.poll() is None
        time.sleep(0.1)
    workers = subprocess.run(["pgrep", "-P", str(p.pid), "-f", "spawn_main"], capture_output=True,
                             text=True).stdout.split()
    assert workers
    p.send_signal(signal.SIGKILL)  # the batch process; its workers notice and stop
    p.wait()
    t0 = time.monotonic()
    while [w for w in workers if Path(f"/proc/{w}").exists()] and time.monotonic() - t0 < 20:
        time.sleep(0.2)
    assert [w for w in workers if Path(f"/proc/{w}").exists()] == [], "workers outlived their batch process"
    done_before = len(read_manifest(part))
    assert 1 <= done_before < 4
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "processed" in r.stderr or r.stderr == ""
    rows = [json.loads(line) for line in (part / "manifest.jsonl").read_text().splitlines()]
    ref = [json.loads(line) for line in (whole / "manifest.jsonl").read_text().splitlines()]
    assert _stable(rows) == _stable(ref)


def test_a_video_over_its_time_is_stopped_and_tried_again_later(tmp_path):
    rows = list(run([GRID_CLIP], tmp_path, BatchOptions(timeout_s=0.05)))
    assert [r["status"] for r in rows] == ["timeout"] and rows[0]["state"] == "retry"
    rows = list(run([GRID_CLIP], tmp_path, BatchOptions()))
    assert [r["status"] for r in rows] == ["ok"]


def test_merge_keeps_the_journal_of_a_batch_still_writing(tmp_path):
    from speakerid.batch import merge_manifest
    from speakerid.outputs import host_tag

    j = tmp_path / "manifest.journal"
    j.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    row = {"path": "a.mp4", "sha256": "0" * 64, "settings": "s", "model": "m", "status": "ok", "state": "finished"}
    live = j / f"20260101T000000.{host_tag()}.{os.getppid()}.jsonl"   # a running process: still writing
    gone = j / f"20260101T000001.{host_tag()}.{dead.pid}.jsonl"       # its process has ended
    for f, path in ((live, "a.mp4"), (gone, "b.mp4")):
        f.write_text(json.dumps(dict(row, path=path)) + "\n")
    rows = merge_manifest(tmp_path)
    assert [r["path"] for r in rows] == ["a.mp4", "b.mp4"]
    assert live.exists() and not gone.exists()


def test_shards_merged_give_the_rows_of_one_run(mixed, tmp_path):
    """A job array: each shard processes its share into the same folder and leaves its journal;
    ``--merge`` (every journal) then gives the manifest one run gives."""
    from speakerid.batch import merge_manifest, take_shard

    videos = discover([mixed])
    shares = [take_shard(videos, f"{k}/3") for k in (1, 2, 3)]
    assert sorted(v for s in shares for v in s) == videos and all(len(s) <= 2 for s in shares)
    whole = list(run([mixed], tmp_path / "whole", BatchOptions(task="sync", jobs=2)))
    out = tmp_path / "sharded"
    for k in (1, 2):
        list(run([mixed], out, BatchOptions(task="sync", jobs=2, shard=f"{k}/2")))
    assert not (out / "manifest.jsonl").exists()  # each shard leaves its journal for the merge
    assert len(list((out / "manifest.journal").glob("*.jsonl"))) == 2
    r = subprocess.run([sys.executable, "-m", "speakerid", "batch", "--merge", "--out", str(out), "--select", "80"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    merged = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert _stable(merged) == _stable(whole) and not (out / "manifest.journal").exists()
    # the clip 120 ms out is measured ok and reliable, but outside ±80 ms: nothing selected
    assert (out / "selected.txt").read_text() == "" and "0 of 4 video(s) selected" in r.stderr
    assert merge_manifest(out, every_journal=True) == merged  # merging again changes nothing


def test_selection_keeps_measured_reliable_clips_near_sync():
    from speakerid.batch import select_rows

    rows = [{"path": "a", "status": "ok", "offset_ms": -30.0, "reliable": True},
            {"path": "b", "status": "ok", "offset_ms": 120.0, "reliable": True},
            {"path": "c", "status": "ok", "offset_ms": 10.0, "reliable": False},
            {"path": "d", "status": "ok", "offset_ms": 0.0, "reliable": True, "drift": True},
            {"path": "e", "status": "NoFaceError", "offset_ms": None},
            {"path": "f", "status": "ok", "offset_ms": None, "reliable": False}]
    assert [r["path"] for r in select_rows(rows, 40)] == ["a"]
    assert [r["path"] for r in select_rows(rows, 200)] == ["a", "b"]
    assert [r["path"] for r in select_rows(rows, 40, reliable=False)] == ["a", "c"]


def test_bad_shards_and_engines_are_named():
    from speakerid.errors import InvalidSettingError

    for opts in (BatchOptions(shard="3/2"), BatchOptions(shard="x"), BatchOptions(engine="spark")):
        with pytest.raises(InvalidSettingError):
            opts.check()


def test_the_ray_engine_gives_the_local_engine_rows(mixed, tmp_path):
    """A real local Ray instance (started here), each video a Ray task: the same rows, outputs
    and manifest as the local process pool."""
    ray = pytest.importorskip("ray")
    local = list(run([mixed], tmp_path / "local", BatchOptions(task="sync", jobs=2)))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert ray.is_initialized()
        rows = list(run([mixed], tmp_path / "ray", BatchOptions(task="sync", jobs=2, engine="ray")))
        assert ray.is_initialized()  # an instance the caller started is left running
    finally:
        ray.shutdown()
    assert _stable(rows) == _stable(local)
    for r in rows:
        assert all(Path(o).is_file() and Path(o).parent == tmp_path / "ray" for o in r.get("outputs", []))
    manifest = [json.loads(line) for line in (tmp_path / "ray" / "manifest.jsonl").read_text().splitlines()]
    assert _stable(manifest) == _stable(local)
