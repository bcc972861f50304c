"""``speakerid speakers`` (who speaks when: segments, JSON/CSV/RTTM) and ``speakerid render``."""
from __future__ import annotations

import sys

from .common import add_face_args, add_json_arg, add_model_args, add_run_args, check_outputs, no_face_error


def _add_scoring_args(p) -> None:
    from ..speakers import (DECODER_DEFAULTS, DECODERS, DEFAULT_COMPETITION, DEFAULT_DECODER,
                            DEFAULT_MAX_SHIFT_FRAMES)

    hmm, thr = DECODER_DEFAULTS["hmm"], DECODER_DEFAULTS["threshold"]
    p.add_argument("--decoder", choices=DECODERS, default=DEFAULT_DECODER,
                   help="hmm: scores are the probability that a face speaks, from a turn model; threshold: "
                        f"calibrated z-scores less the competition term (default {DEFAULT_DECODER})")
    p.add_argument("--threshold", type=float, default=None,
                   help=f"score at which a face counts as speaking (default {hmm['threshold']:g} with the hmm "
                        f"decoder, {thr['threshold']:g} with threshold)")
    p.add_argument("--smooth", type=int, default=None, metavar="FRAMES",
                   help=f"average scores over this many 25 fps frames (default {hmm['smooth_frames']} with the hmm "
                        f"decoder, {thr['smooth_frames']} with threshold)")
    p.add_argument("--max-shift", type=int, default=DEFAULT_MAX_SHIFT_FRAMES, metavar="FRAMES",
                   help="how far (40 ms frames) a face's audio offset may differ from the video's "
                        f"(default {DEFAULT_MAX_SHIFT_FRAMES})")
    p.add_argument("--overlap", action="store_true",
                   help="let several faces be labelled speaking at once (default: only the highest-scoring face)")
    p.add_argument("--competition", type=float, default=None, metavar="SHARE",
                   help="threshold decoder: share of the best other face's score taken off each face's score "
                        f"(default {DEFAULT_COMPETITION:g}; 0 with --overlap)")
    add_model_args(p)
    add_face_args(p)
    add_run_args(p)


def register(sub) -> None:
    p = sub.add_parser("speakers", help="detect the active speaker per frame; print segments, write JSON/CSV/RTTM",
                       description="Detect which face speaks, frame by frame. Prints the speaking segments; "
                                   "--json/--csv/--rttm write the full result.")
    p.add_argument("video")
    add_json_arg(p, "tracks, per-frame scores and labels, and segments")
    p.add_argument("--csv", metavar="OUT", help="write one row per face per frame as CSV")
    p.add_argument("--rttm", metavar="OUT", help="write the speaking segments as RTTM (speaker = face<track id>)")
    _add_scoring_args(p)
    p.set_defaults(func=_speakers)

    p = sub.add_parser("render", help="write the video with faces, ids, speaking highlights and score bars drawn on it",
                       description="Write an annotated H.264 mp4 (audio kept): boxes and track ids, speaking faces "
                                   "highlighted, a score bar per face.")
    p.add_argument("video")
    p.add_argument("-o", "--output", required=True, metavar="OUT.mp4", help="mp4 file to write")
    add_json_arg(p, "the result")
    _add_scoring_args(p)
    p.set_defaults(func=_render)


def _check_settings(args) -> None:
    """Name a scoring option the decoder does not take before any work starts."""
    from ..speakers import decoder_settings

    decoder_settings(args.decoder, args.threshold, args.smooth, args.competition, exclusive=not args.overlap)


def _detect(args):
    from ..speakers import detect_speakers
    from . import progress_for

    prog = progress_for(args)
    result = detect_speakers(args.video, model=args.model, threshold=args.threshold, smooth_frames=args.smooth,
                             max_shift_frames=args.max_shift, exclusive=not args.overlap, decoder=args.decoder,
                             competition=args.competition, detect_every=args.detect_every,
                             detect_width=args.detect_width, detector=args.detector, device=args.device,
                             progress=prog)
    prog.close()
    for w in result.warnings:
        print(f"speakerid: warning: {w}", file=sys.stderr)
    return result


def _speakers(args) -> int:
    import json

    from ..output.export import speaker_name

    _check_settings(args)
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
              f"{len(result.segments)} speaking segment(s)")
        for s in result.segments:
            print(f"{s.start:9.3f} {s.end:9.3f}  {speaker_name(s.track)}")
    if not result.tracks:
        raise no_face_error(args)
    return 0


def _render(args) -> int:
    from ..output.render import render_speakers
    from . import progress_for

    _check_settings(args)
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
