"""The ``speakerid`` command line. Each subcommand lives in its own module with a ``register``.

Errors speakerid raises on purpose print one readable line (``speakerid: error: …``) and exit
with status 2; anything else is a bug and shows its traceback. The conventions every command
shares are in :mod:`speakerid.cli.common`.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import SpeakerIdError
from .common import progress_for  # noqa: F401  (named here by older imports)

# module names under speakerid.cli, in the order their subcommands are listed in --help
COMMAND_MODULES = ["faces_cmd", "speakers_cmd", "sync_cmd", "batch_cmd", "train_cmd"]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    p = argparse.ArgumentParser(prog="speakerid", description="Lip-sync offsets and active speakers from one self-supervised SyncNet.")
    p.add_argument("--version", action="version", version=f"speakerid {__version__}")
    p.add_argument("-q", "--quiet", dest="quiet_all", action="store_true", help="no progress output on stderr")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from ..outputs import outputs_written

    parser = build_parser()
    args = parser.parse_args(argv)
    before = len(outputs_written())
    try:
        rc = args.func(args)
    except SpeakerIdError as e:
        print(f"speakerid: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        # partial files are removed on the way out; say exactly what is in place
        done = list(dict.fromkeys(outputs_written()[before:]))  # a checkpoint rewritten is one file
        print("speakerid: interrupted; " + (f"written before the interrupt: {', '.join(done)}" if done
                                            else "no output was written"), file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
