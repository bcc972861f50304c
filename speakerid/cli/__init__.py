"""The ``speakerid`` command line. Each subcommand lives in its own module with a ``register``.

Errors speakerid raises on purpose print one readable line (``speakerid: error: …``) and exit
with status 2; anything else is a bug and shows its traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import SpeakerIdError

# module names under speakerid.cli, in the order their subcommands are listed in --help
COMMAND_MODULES = ["faces_cmd", "speakers_cmd", "sync_cmd", "train_cmd"]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    p = argparse.ArgumentParser(prog="speakerid", description="Lip-sync offsets and active speakers from one self-supervised SyncNet.")
    p.add_argument("--version", action="version", version=f"speakerid {__version__}")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output on stderr")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return p


def progress_for(args):
    from ..progress import StderrProgress, silent

    if getattr(args, "quiet", False) or not sys.stderr.isatty() and not getattr(args, "progress", False):
        return silent
    return StderrProgress()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except SpeakerIdError as e:
        print(f"speakerid: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("speakerid: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
