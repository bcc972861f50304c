"""What every analysis command shares, so that they agree with each other.

* ``--model PT`` picks the checkpoint (``--weights`` is kept as a hidden alias) and ``--device``
  the torch device, in every command that runs the model.
* ``--json [OUT]``: without a value, JSON on stdout; with one, a file.
* Files are never replaced unless ``--force`` is given, and the input never; every output is
  checked before the work starts (exists, unwritable folder, full disk).
* ``-q/--quiet`` silences progress; otherwise a bar on a terminal, plain lines elsewhere.
* Exit status: 0 when the command gave its answer; 2 with one ``speakerid: error: …`` line when
  it could not (bad input or option, no face, no offset measurable, an unwritable output);
  130 when interrupted.
"""
from __future__ import annotations

import argparse
import sys


def add_model_args(p) -> None:
    p.add_argument("--model", metavar="PT", help="SyncNet checkpoint (default: the packaged weights)")
    p.add_argument("--weights", dest="model", help=argparse.SUPPRESS)  # the older name
    p.add_argument("--device", help="torch device (default: cuda when available, else cpu)")


def add_face_args(p) -> None:
    p.add_argument("--detector", choices=("retinaface", "centerface"), default="retinaface",
                   help="face detector (default retinaface; docs/design.md compares them)")
    p.add_argument("--detect-every", type=int, default=3, help="run the face detector every N frames (default 3)")
    p.add_argument("--detect-width", type=int, default=512, help="face detector input width in pixels (default 512)")


def add_run_args(p, *, force: bool = True) -> None:
    """``--force`` (where the command writes files) and ``--quiet``."""
    if force:
        p.add_argument("--force", action="store_true", help="replace output files that exist (never the input)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output on stderr")


def add_json_arg(p, what: str) -> None:
    p.add_argument("--json", nargs="?", const="-", metavar="OUT",
                   help=f"{what} as JSON: to OUT, or to stdout when no file is named")


def check_outputs(args, *paths) -> None:
    """Fail before any work if one of ``paths`` (None and '-' skipped) cannot be written as asked."""
    from ..media import check_output_path

    for p in paths:
        if p and p != "-":
            check_output_path(p, protect=[args.video], overwrite=getattr(args, "force", False))


def write_json_text(args, path: str, text: str) -> None:
    """JSON ``text`` to stdout ('-') or atomically to ``path``."""
    if path == "-":
        sys.stdout.write(text + "\n")
        return
    from pathlib import Path

    from ..media import atomic_output

    with atomic_output(path, protect=[args.video], overwrite=getattr(args, "force", False)) as tmp:
        Path(tmp).write_text(text + "\n")


def no_face_error(args, need: str = "to read the lips from"):
    """The error a command raises when the video shows no face big enough for its work."""
    from ..errors import NoFaceError

    return NoFaceError(f"{args.video}: no face big enough {need} was found")
