"""Example media bundled with speakerid (redistributable; see README.md in this folder).

``path("interview_grid")`` is a 10 s, 960×540, 25 fps composite of three GRID corpus speakers
(CC-BY-4.0) taking turns; ``labels("interview_grid")`` is its ground truth: per frame, each
face's tile and whether that face is the one heard.
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

__all__ = ["path", "labels", "names"]


def names() -> list[str]:
    """Names of the bundled examples."""
    root = resources.files(__name__)
    return sorted(p.name[: -len(".mp4")] for p in root.iterdir() if p.name.endswith(".mp4"))


def path(name: str = "interview_grid") -> Path:
    """Filesystem path of the bundled example video ``name`` (``.mp4``)."""
    p = resources.files(__name__).joinpath(f"{name}.mp4")
    if not p.is_file():
        raise KeyError(f"no bundled example {name!r}; available: {', '.join(names())}")
    # the package is installed as plain files (not zipped), so this is a real path
    return Path(str(p))


def labels(name: str = "interview_grid") -> dict:
    """Ground-truth labels of example ``name`` (see ``convention`` inside)."""
    p = resources.files(__name__).joinpath(f"{name}.labels.json")
    if not p.is_file():
        raise KeyError(f"example {name!r} has no labels")
    return json.loads(p.read_text())
