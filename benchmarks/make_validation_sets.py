#!/usr/bin/env python3
"""Validation composites that keep the people apart: each group of eval people (the tuning group,
whose figures may guide a choice, and the final group, read only once a choice is frozen; the
groups of ``calibrate_reliability.py``) made into active-speaker composites at 25 fps, at 30 fps,
and with pauses that each hold an off-screen voice.

The composites are ``../shared/tools/make_bench.py asd``'s, from only one group's clips (the
off-screen voices too). For the off-screen sets its own code runs with two probabilities changed:
a pause after 35 % of turns instead of 12 %, and every pause holding another clip's voice
instead of half of them.

    PATH=<dir with ffmpeg>:$PATH python benchmarks/make_validation_sets.py OUT [--count 6] [--seconds 12] [--seed-offset 0]

(needs ffmpeg and webrtcvad, as make_bench.py does) → ``OUT/<group>_<kind>/`` with videos and
``labels.json``, for ``bench_asd.py --bench``.
"""
from __future__ import annotations

import argparse
import inspect
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOOLS = HERE.parent.parent / "shared" / "tools"
sys.path.insert(0, str(HERE))
from calibrate_reliability import EVAL, FINAL_GROUP, identity  # noqa: E402

KINDS = {"25fps": dict(fps=25, seed=101), "30fps": dict(fps=30, seed=102), "offscreen": dict(fps=25, seed=103)}
PAUSE = 0.35
"""Share of turns followed by a pause in the off-screen sets (make_bench.py: 0.12)."""


def _offscreen_make_asd(make_bench):
    """make_bench.make_asd with a pause after ``PAUSE`` of the turns, each holding an off-screen
    voice: its own source, two constants changed."""
    src = inspect.getsource(make_bench.make_asd)
    for old, new in (("rng.random() < 0.12", f"rng.random() < {PAUSE}"), ("rng_extra.random() < 0.5", "True")):
        assert src.count(old) == 1, f"make_bench.make_asd changed: {old!r} not found once"
        src = src.replace(old, new)
    ns = dict(vars(make_bench))
    exec(compile(src, make_bench.__file__, "exec"), ns)
    return ns["make_asd"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--count", type=int, default=6, help="composites per set")
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    ap.add_argument("--groups", nargs="+", default=["tuning", "final"], choices=["tuning", "final"])
    ap.add_argument("--seed-offset", type=int, default=0,
                    help="added to each kind's seed: other composites of the same people (e.g. to fit on)")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(TOOLS))
    import make_bench

    clips = sorted(EVAL.glob("*.mp4"))
    for group in a.groups:
        members = [c for c in clips if (identity(c.name) in FINAL_GROUP) == (group == "final")]
        with tempfile.TemporaryDirectory() as tmp:
            for c in members:  # make_bench draws from every clip of a folder: the group's alone
                (Path(tmp) / c.name).symlink_to(c)
            for kind in a.kinds:
                k = KINDS[kind]
                make = _offscreen_make_asd(make_bench) if kind == "offscreen" else make_bench.make_asd
                out = a.out / f"{group}_{kind}"
                print(f"{out}: {len(members)} clips of the {group} group, {k}, seed {k['seed'] + a.seed_offset}", flush=True)
                make(tmp, str(out), k["seed"] + a.seed_offset, a.count, a.seconds, k["fps"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
