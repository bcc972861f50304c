#!/usr/bin/env python3
"""``make_bench.py asd`` with a fixed number of faces per composite (it draws 2–4).

``../shared/tools/make_bench.py`` draws each composite's tile count from {2, 2, 3, 3, 4}; this
wrapper keeps that draw (so the random stream, and with it the choice of clips, layout and
turns, runs as the tool's own code runs it) and replaces its result with ``--faces``.
Everything else is passed through::

    PATH=<dir with ffmpeg>:$PATH python benchmarks/make_asd_faces.py --faces 6 \\
        ../shared/data/eval OUT --seed 21 --count 2 --seconds 10

(needs ``webrtcvad``, as make_bench.py does).
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parent.parent.parent / "shared" / "tools"
TILE_CHOICES = [2, 2, 3, 3, 4]  # make_bench.make_asd's draw of the tile count


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, required=True, help="faces (tiles) per composite")
    ap.add_argument("--tools", type=Path, default=TOOLS, help="folder holding make_bench.py")
    a, rest = ap.parse_known_args(argv)
    if not 1 <= a.faces <= 9:
        ap.error("--faces must be 1..9 (the canvas is tiled on a grid)")
    sys.path.insert(0, str(a.tools))
    import make_bench

    draw = random.Random.choice

    def choice(self, seq):
        picked = draw(self, seq)  # the draw still happens: the random stream is unchanged
        return a.faces if list(seq) == TILE_CHOICES else picked

    random.Random.choice = choice
    try:
        sys.argv = ["make_bench.py", "asd", *rest]
        make_bench.main()
    finally:
        random.Random.choice = draw
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
