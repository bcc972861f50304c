"""``speakerid tracks`` and ``speakerid crops``: inspect the faces stage."""
from __future__ import annotations

import json
import sys


def register(sub) -> None:
    p = sub.add_parser("tracks", help="detect and track faces; print the tracks as JSON")
    p.add_argument("video")
    p.add_argument("-o", "--output", help="write the JSON here instead of stdout")
    p.add_argument("--detect-every", type=int, default=3, help="run the detector every N frames (default 3)")
    p.add_argument("--detect-width", type=int, default=512, help="detector input width in pixels (default 512)")
    p.set_defaults(func=_tracks)

    p = sub.add_parser("crops", help="write a contact sheet (PNG) of the mouth crops of each track")
    p.add_argument("video")
    p.add_argument("-o", "--output", required=True, help="PNG file to write")
    p.add_argument("--per-track", type=int, default=12, help="crops per track (default 12)")
    p.add_argument("--detect-every", type=int, default=3)
    p.add_argument("--detect-width", type=int, default=512)
    # speakerid.faces.mouth.CROP_GEOMETRIES, spelled out so the CLI starts without numpy
    p.add_argument("--crop-geometry", choices=("mouth", "stable"), default=None,
                   help="how crops are framed (default: as the packaged model was trained)")
    p.set_defaults(func=_crops)


def _tracks(args) -> int:
    from ..faces import analyze_faces
    from ..media import check_output_path
    from . import progress_for

    if args.output:
        check_output_path(args.output, protect=[args.video])  # fail before the work, not after

    a = analyze_faces(args.video, detect_every=args.detect_every, detect_width=args.detect_width,
                      crops=False, progress=progress_for(args))
    text = json.dumps(a.to_dict(), indent=1)
    if args.output:
        from ..media import atomic_output

        with atomic_output(args.output, protect=[args.video]) as tmp:
            tmp.write_text(text)
    else:
        sys.stdout.write(text + "\n")
    return 0


def _crops(args) -> int:
    from ..faces import analyze_faces
    from ..faces.sheet import write_contact_sheet
    from ..media import check_output_path
    from . import progress_for

    check_output_path(args.output, protect=[args.video])
    geometry = args.crop_geometry
    if geometry is None:  # show what the model is given
        from ..model import load_model

        geometry = load_model(device="cpu").config.crop_geometry
    a = analyze_faces(args.video, detect_every=args.detect_every, detect_width=args.detect_width,
                      crop_geometry=geometry, progress=progress_for(args))
    write_contact_sheet(a, args.output, per_track=args.per_track)
    print(f"{len(a.tracks)} track(s) → {args.output}", file=sys.stderr)
    return 0
