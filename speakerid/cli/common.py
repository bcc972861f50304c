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
from dataclasses import fields

_TYPES = {"int": int, "float": float, "str": str, "int | None": int, "float | None": float, "Any": str}


def add_command(sub, name: str, func, help: str, description: str | None = None):
    """A subcommand that works on one ``video`` and runs ``func(args)``."""
    p = sub.add_parser(name, help=help, description=description)
    p.add_argument("video")
    p.set_defaults(func=func)
    return p


def add_model_args(p) -> None:
    p.add_argument("--model", metavar="PT", help="SyncNet checkpoint (default: the packaged weights)")
    p.add_argument("--weights", dest="model", help=argparse.SUPPRESS)  # the older name
    p.add_argument("--device", help="torch device (default: cuda when available, else cpu)")


def add_options(p, cls) -> None:
    """One flag per field of the options dataclass ``cls`` (:mod:`speakerid.options`) that has
    one: its name (``search_ms`` → ``--search-ms``, or the field's ``flag``), type, default,
    choices and help come from the field, so the CLI cannot disagree with the API."""
    d = cls()
    for f in fields(cls):
        md = f.metadata
        if md.get("cli", True) is False:
            continue
        flag = md.get("flag", "--" + f.name.replace("_", "-"))
        if md.get("invert"):
            p.add_argument(flag, dest=f.name, action="store_false", help=md["help"])
            continue
        default = md.get("cli_default", getattr(d, f.name))
        shown = "" if default is None or "default" in md["help"] else f" (default {default:g})" if isinstance(
            default, float) else f" (default {default})"
        p.add_argument(flag, dest=f.name, type=_TYPES[str(f.type)], default=default, choices=md.get("choices"),
                       metavar=md.get("metavar"), help=md["help"] + shown)


def options_from_args(args, cls):
    """The options object of ``cls`` from the parsed flags :func:`add_options` made."""
    return cls(**{f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)})


def add_face_args(p) -> None:
    from ..options import FaceOptions

    add_options(p, FaceOptions)


def add_pipeline_args(p, options_cls) -> None:
    """A pipeline's flags: its options' (``options_cls``), the faces', the model's, and
    ``--force``/``--quiet``."""
    add_options(p, options_cls)
    add_face_args(p)
    add_model_args(p)
    add_run_args(p)


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
    from ..outputs import check_output_path

    for p in paths:
        if p and p != "-":
            check_output_path(p, protect=[args.video], overwrite=getattr(args, "force", False))


def write_json_text(args, path: str, text: str) -> None:
    """JSON ``text`` to stdout ('-') or atomically to ``path``."""
    if path == "-":
        sys.stdout.write(text + "\n")
        return
    from ..outputs import write_text

    write_text(path, text + "\n", protect=[args.video], overwrite=getattr(args, "force", False))


def no_face_error(args, need: str = "to read the lips from"):
    """The error a command raises when the video shows no face big enough for its work."""
    from ..errors import NoFaceError

    return NoFaceError(f"{args.video}: no face big enough {need} was found")


def progress_for(args):
    """A bar on a terminal, plain lines elsewhere (logs, CI, notebooks), nothing with --quiet."""
    from ..progress import LineProgress, SilentProgress, StderrProgress

    if getattr(args, "quiet", False) or getattr(args, "quiet_all", False):
        return SilentProgress()
    return StderrProgress() if sys.stderr.isatty() else LineProgress()
