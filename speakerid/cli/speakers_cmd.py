"""``speakerid speakers`` (who speaks when: segments, JSON/CSV/RTTM) and ``speakerid render``."""
from __future__ import annotations

import sys

from .common import add_command, add_json_arg, add_pipeline_args, check_outputs, no_face_error, options_from_args


def register(sub) -> None:
    from ..options import SpeakerOptions

    p = add_command(sub, "speakers", _speakers, "detect the active speaker per frame; print segments, write "
                    "JSON/CSV/RTTM", "Detect which face speaks, frame by frame. Prints the speaking segments; "
                    "--json/--csv/--rttm write the full result.")
    add_json_arg(p, "tracks, per-frame scores and labels, and segments")
    p.add_argument("--csv", metavar="OUT", help="write one row per face per frame as CSV")
    p.add_argument("--rttm", metavar="OUT", help="write the speaking segments as RTTM (speaker = face<track id>)")
    add_pipeline_args(p, SpeakerOptions)

    p = add_command(sub, "render", _render, "write the video with faces, ids, speaking highlights and score bars "
                    "drawn on it", "Write an annotated H.264 mp4 (audio kept): boxes and track ids, speaking faces "
                    "highlighted, a score bar per face.")
    p.add_argument("-o", "--output", required=True, metavar="OUT.mp4", help="mp4 file to write")
    add_json_arg(p, "the result")
    add_pipeline_args(p, SpeakerOptions)


def _options(args):
    """The scoring and face options of the flags, checked before any work starts."""
    from ..options import FaceOptions, SpeakerOptions

    return options_from_args(args, SpeakerOptions), options_from_args(args, FaceOptions)


def _detect(args):
    from ..speakers import detect_speakers
    from .common import progress_for

    options, faces = _options(args)
    prog = progress_for(args)
    result = detect_speakers(args.video, options, faces=faces, model=args.model, device=args.device, progress=prog)
    prog.close()
    for w in result.warnings:
        print(f"speakerid: warning: {w}", file=sys.stderr)
    return result


def _speakers(args) -> int:
    import json

    from ..output.export import speaker_name

    _options(args)
    check_outputs(args, args.json, args.csv, args.rttm)  # before the work, not after it
    result = _detect(args)
    if args.json == "-":
        sys.stdout.write(json.dumps(result.to_dict()) + "\n")
    elif args.json:
        result.to_json(args.json, protect=[args.video], overwrite=args.force)
    if args.csv:
        result.to_csv(args.csv, protect=[args.video], overwrite=args.force)
    if args.rttm:
        result.to_rttm(args.rttm, protect=[args.video], overwrite=args.force)
    if args.json != "-":
        scored = sum(t.scored for t in result.tracks)
        off = "n/a" if result.offset_ms is None else f"{result.offset_ms:+.0f} ms"
        print(f"{len(result.tracks)} face track(s), {scored} scored; audio offset {off}; "
              f"{len(result.segments)} speaking segment(s)"
              + (f", {len(result.offscreen)} off-screen voice segment(s)" if result.offscreen else ""))
        for s in sorted(result.segments + result.offscreen, key=lambda s: (s.start, s.track)):
            p = "" if s.probability is None else f"  p {s.probability:.2f}"
            print(f"{s.start:9.3f} {s.end:9.3f}  {speaker_name(s.track)}{p}")
    if not result.tracks:
        raise no_face_error(args)
    return 0


def _render(args) -> int:
    from ..output.render import render_speakers
    from .common import progress_for

    _options(args)
    check_outputs(args, args.output, args.json)
    result = _detect(args)
    if not result.tracks:
        raise no_face_error(args)
    if args.json == "-":
        import json

        sys.stdout.write(json.dumps(result.to_dict()) + "\n")
    elif args.json:
        result.to_json(args.json, protect=[args.video], overwrite=args.force)
    prog = progress_for(args)
    render_speakers(args.video, args.output, result, progress=prog, overwrite=args.force)
    prog.close()
    print(f"{len(result.segments)} speaking segment(s) → {args.output}", file=sys.stderr)
    return 0
