"""The ``speakerid tracks`` and ``speakerid crops`` commands, and readable errors."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import sha256

from speakerid.cli import main


def test_tracks_json_to_stdout(grid_clip, capsys):
    assert main(["-q", "tracks", str(grid_clip)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["num_frames"] == 75 and out["fps"] == 25.0
    assert (out["width"], out["height"]) == (360, 288)
    assert out["shot_starts"] == [0]
    (t,) = out["tracks"]
    assert (t["start_frame"], t["end_frame"]) == (0, 74)
    assert t["frames"] == list(range(75))
    x, y, w, h = t["boxes"][0]
    assert 0 < x < x + w < 360 and 0 <= y < y + h <= 288 and 70 < h < 200


def test_tracks_json_to_file_never_over_the_input(grid_clip, tmp_path, capsys):
    out = tmp_path / "tracks.json"
    assert main(["-q", "tracks", str(grid_clip), "-o", str(out), "--detect-every", "5"]) == 0
    d = json.loads(out.read_text())
    assert len(d["tracks"]) == 1 and sum(d["tracks"][0]["detected"]) == 15  # every 5th of 75
    before = sha256(grid_clip)
    rc = main(["-q", "tracks", str(grid_clip), "-o", str(grid_clip)])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("speakerid: error:") and "input" in err
    assert sha256(grid_clip) == before


def test_crops_contact_sheet_png(grid_clip, tmp_path, capsys):
    import cv2

    png = tmp_path / "sheet.png"
    assert main(["-q", "crops", str(grid_clip), "-o", str(png), "--per-track", "6"]) == 0
    assert "1 track(s)" in capsys.readouterr().err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
    # one row: a 22 px label, six 111×111 crops side by side, a 4 px gap
    assert img.shape == (22 + 111 + 4, 6 * 111)
    crops = img[22:22 + 111]
    assert crops.std() > 15 and len({crops[:, i * 111:(i + 1) * 111].tobytes() for i in range(6)}) == 6
    assert np.all(img[:22] >= 0)


def test_missing_file_exit_status_and_message(tmp_path):
    missing = tmp_path / "no_such_video.mp4"
    r = subprocess.run([sys.executable, "-m", "speakerid", "tracks", str(missing)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.strip().splitlines() == [f"speakerid: error: {missing}: no such file"]


@pytest.mark.parametrize("fixture, words", [("text_as_mp4", "not a media file"), ("zero_byte", "empty"),
                                            ("audio_only", "no video stream"), ("truncated", "truncated")])
def test_bad_inputs_give_one_readable_line(request, fixture, words, tmp_path, capsys):
    path = request.getfixturevalue(fixture)
    png = tmp_path / "x.png"
    assert main(["-q", "crops", str(path), "-o", str(png)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("speakerid: error:")
    assert path.name in err[0] and words in err[0]
    assert not png.exists() and list(tmp_path.iterdir()) == []
