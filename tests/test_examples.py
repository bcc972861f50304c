"""speakerid.examples: the bundled, redistributable example and its labels."""
from __future__ import annotations

import pytest

import speakerid.examples as examples
from speakerid.media import probe


def test_bundled_example_is_there_and_plays():
    assert "interview_grid" in examples.names()
    p = examples.path("interview_grid")
    assert p.is_file() and p.suffix == ".mp4"
    assert p.stat().st_size < 600_000  # a few hundred KB
    info = probe(p)
    assert (info.width, info.height, info.fps, info.num_frames) == (960, 540, 25.0, 250)
    assert info.has_audio and info.audio_rate == 16000


def test_bundled_labels_match_the_video():
    lab = examples.labels("interview_grid")
    assert lab["faces"] == 3 and lab["size"] == [960, 540] and lab["fps"] == 25
    assert len(lab["frames"]) == 250 and all(len(f) == 3 for f in lab["frames"])
    for f in lab["frames"]:
        for face in f:
            x, y, w, h = face["box"]
            assert 0 <= x and x + w <= 960 and 0 <= y and y + h <= 540
    # turns: tile 2, then 0, then 1 is heard; someone speaks in most frames, never two at once
    assert [t[2] for t in lab["turns"]] == [2, 2, 0, 1]
    speaking = [sum(face["speaking"] for face in f) for f in lab["frames"]]
    assert max(speaking) == 1 and sum(speaking) > 125


def test_unknown_example():
    with pytest.raises(KeyError, match="interview_grid"):
        examples.path("nope")
