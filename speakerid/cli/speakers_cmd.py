"""``speakerid speakers`` (who speaks when: segments, JSON/CSV/RTTM) and ``speakerid render``."""
from __future__ import annotations

import sys


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
    p.add_argument("--model", help="SyncNet checkpoint to use instead of the packaged weights")
    p.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--detect-every", type=int, default=3, help="run the face detector every N frames (default 3)")
    p.add_argument("--detect-width", type=int, default=512, help="face detector input width in pixels (default 512)")


def register(sub) -> None:
    p = sub.add_parser("speakers", help="detect the active speaker per frame; print segments, write JSON/CSV/RTTM",
                       description="Detect which face speaks, frame by frame. Prints the speaking segments; "
                                   "--json/--csv/--rttm write the full result.")
    p.add_argument("video")
    p.add_argument("--json", metavar="OUT", help="write tracks, per-frame scores and labels, and segments as JSON ('-' = stdout)")
    p.add_argument("--csv", metavar="OUT", help="write one row per face per frame as CSV")
    p.add_argument("--rttm", metavar="OUT", help="write the speaking segments as RTTM (speaker = face<track id>)")
    _add_scoring_args(p)
    p.set_defaults(func=_speakers)

    p = sub.add_parser("render", help="write the video with faces, ids, speaking highlights and score bars drawn on it",
                       description="Write an annotated H.264 mp4 (audio kept): boxes and track ids, speaking faces "
                                   "highlighted, a score bar per face.")
    p.add_argument("video")
    p.add_argument("-o", "--output", required=True, metavar="OUT.mp4", help="mp4 file to write")
    p.add_argument("--json", metavar="OUT", help="also write the result as JSON")
    _add_scoring_args(p)
    p.set_defaults(func=_render)


def _check_settings(args) -> None:
    """Name a scoring option the decoder does not take before any work starts (as a
    SpeakerIdError, which ``main`` prints and exits 2 on)."""
    from ..errors import SpeakerIdError
    from ..speakers import decoder_settings

    try:
        decoder_settings(args.decoder, args.threshold, args.smooth, args.competition, exclusive=not args.overlap)
    except ValueError as e:
        raise SpeakerIdError(str(e)) from e


def _detect(args):
    from ..speakers import detect_speakers
    from . import progress_for

    return detect_speakers(args.video, model=args.model, threshold=args.threshold, smooth_frames=args.smooth,
                           max_shift_frames=args.max_shift, exclusive=not args.overlap, decoder=args.decoder,
                           competition=args.competition,
                           detect_every=args.detect_every,
                           detect_width=args.detect_width, device=args.device, progress=progress_for(args))


def _finish_progress(args) -> None:
    if not getattr(args, "quiet", False) and sys.stderr.isatty():
        sys.stderr.write("\n")


def _speakers(args) -> int:
    import json

    from ..export import speaker_name
    from ..render import check_output

    _check_settings(args)
    for out in (args.json, args.csv, args.rttm):
        if out and out != "-":
            check_output(args.video, out)  # before the work, not after it
    result = _detect(args)
    _finish_progress(args)
    if args.json == "-":
        sys.stdout.write(json.dumps(result.to_dict()) + "\n")
    elif args.json:
        result.to_json(args.json, protect=[args.video])
    if args.csv:
        result.to_csv(args.csv, protect=[args.video])
    if args.rttm:
        result.to_rttm(args.rttm, protect=[args.video])
    if args.json != "-":
        out = sys.stdout
        scored = sum(t.scored for t in result.tracks)
        off = "n/a" if result.offset_ms is None else f"{result.offset_ms:+.0f} ms"
        print(f"{len(result.tracks)} face track(s), {scored} scored; audio offset {off}; "
              f"{len(result.segments)} speaking segment(s)", file=out)
        for s in result.segments:
            print(f"{s.start:9.3f} {s.end:9.3f}  {speaker_name(s.track)}", file=out)
    return 0


def _render(args) -> int:
    from ..render import check_output, render_speakers
    from . import progress_for

    _check_settings(args)
    check_output(args.video, args.output)
    result = _detect(args)
    if args.json:
        result.to_json(args.json, protect=[args.video])
    render_speakers(args.video, args.output, result, progress=progress_for(args))
    _finish_progress(args)
    print(f"{len(result.segments)} speaking segment(s) → {args.output}", file=sys.stderr)
    return 0
