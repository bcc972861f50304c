"""``speakerid sync`` (measure the lip-sync offset) and ``speakerid fix`` (repair it)."""
from __future__ import annotations

import json
import sys

from .common import add_command, add_json_arg, add_pipeline_args, check_outputs, options_from_args, write_json_text

CONVENTION = "offset_ms = t_audio - t_video; negative = audio leads the video"


def register(sub) -> None:
    from ..options import SyncOptions

    p = add_command(sub, "sync", _sync, "measure the audio-to-lips offset of a video",
                    f"Measure the lip-sync offset ({CONVENTION}). An offset not marked reliable is printed as a best "
                    "guess, with the reasons. Exit status 2 when no offset can be reported (no face, no speech, too "
                    "little evidence, drift); the result is still printed and written.")
    add_json_arg(p, "the full result")
    p.add_argument("--curves", action="store_true", help="with --json: include every window's distance curve")
    p.add_argument("--plot", metavar="PNG", help="write a plot: distance vs shift, offset and confidence over time")
    add_pipeline_args(p, SyncOptions)

    p = add_command(sub, "fix", _fix, "write a copy with the audio shifted back into sync",
                    f"Repair the lip-sync offset ({CONVENTION}): the audio is shifted by the measured (or given) "
                    "offset, the video stream is copied, and the written file is checked (every frame decodes, same "
                    "length, audio covering the video, no offset left) before it replaces anything.")
    p.add_argument("-o", "--output", required=True, help="file to write (never the input)")
    p.add_argument("--offset-ms", type=float, help="apply this offset instead of measuring it")
    p.add_argument("--no-remeasure", action="store_true", help="do not measure the output's residual offset")
    p.add_argument("--accept-unreliable", action="store_true",
                   help="repair with a measured offset even when it is not marked reliable")
    add_json_arg(p, "the report")
    add_pipeline_args(p, SyncOptions)


def _sync(args) -> int:
    from ..errors import NoFaceError, NoSyncEvidenceError
    from ..options import FaceOptions, SyncOptions
    from ..output.plots import plot_sync
    from ..sync import measure_sync
    from .common import progress_for

    options, faces = options_from_args(args, SyncOptions), options_from_args(args, FaceOptions)  # checked here
    check_outputs(args, args.json, args.plot)
    prog = progress_for(args)
    r = measure_sync(args.video, options, faces=faces, model=args.model, device=args.device, progress=prog)
    prog.close()
    if args.plot:
        plot_sync(r, args.plot, overwrite=args.force)
    if args.json:
        write_json_text(args, args.json, json.dumps(r.to_dict(curves=args.curves), indent=1))
    if args.json != "-":
        print(r.describe())
        for s in r.segments if len(r.segments) > 1 else []:
            o = "—" if s.offset_ms is None else f"{s.offset_ms:+.0f} ms"
            print(f"  {s.start_s:7.1f}–{s.end_s:7.1f} s  {o:>9}  confidence {s.confidence:.3f}")
        others = [t for t in r.tracks if not t.used]
        if others:
            print("  other faces: " + ", ".join(f"track {t.track_id} (confidence {t.confidence:.3f})" for t in others))
    if r.offset_ms is None:
        err = NoFaceError if r.status == "no_face" else NoSyncEvidenceError
        raise err(f"{args.video}: no offset ({r.status}): {r.message}")
    return 0


def _fix(args) -> int:
    from ..options import FaceOptions, SyncOptions
    from ..sync import repair_sync
    from .common import progress_for

    options, faces = options_from_args(args, SyncOptions), options_from_args(args, FaceOptions)
    check_outputs(args, args.json if args.json != "-" else None)
    prog = progress_for(args)
    rr = repair_sync(args.video, args.output, offset_ms=args.offset_ms, options=options, faces=faces,
                     overwrite=args.force, remeasure=not args.no_remeasure, model=args.model, device=args.device,
                     accept_unreliable=args.accept_unreliable, progress=prog)
    prog.close()
    if args.json:
        write_json_text(args, args.json, json.dumps(rr.to_dict(), indent=1))
        if args.json == "-":
            return 0
    how = "measured" if rr.measured is not None else "given"
    print(f"{rr.output}: audio shifted to undo {rr.applied_offset_ms:+.0f} ms ({how}); video stream "
          f"{'copied' if rr.video_copied else 're-encoded (the container could not take it as is)'}; "
          "every frame checked")
    if rr.residual is not None:
        if rr.residual.offset_ms is None:
            print(f"  residual: not measurable ({rr.residual.status})")
        else:
            print(f"  residual offset {rr.residual.offset_ms:+.0f} ms (confidence {rr.residual.confidence:.3f})")
    # the input's audio faults (a phase-inverted channel) are copied into the output with it
    for w in dict.fromkeys(w for r in (rr.measured, rr.residual) if r is not None for w in r.warnings):
        print(f"speakerid: warning: {w}", file=sys.stderr)
    return 0
