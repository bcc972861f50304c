"""``speakerid tracks`` and ``speakerid crops``: inspect the faces stage."""
from __future__ import annotations

import json
import sys

from ..faces.mouth import CROP_GEOMETRIES
from .common import add_command, add_face_args, add_run_args, check_outputs, no_face_error, options_from_args, write_json_text


def register(sub) -> None:
    p = add_command(sub, "tracks", _tracks, "detect and track faces; print the tracks as JSON")
    p.add_argument("-o", "--output", help="write the JSON here instead of stdout")
    add_face_args(p)
    add_run_args(p)

    p = add_command(sub, "crops", _crops, "write a contact sheet (PNG) of the mouth crops of each track")
    p.add_argument("-o", "--output", required=True, help="PNG file to write")
    p.add_argument("--per-track", type=int, default=12, help="crops per track (default 12)")
    add_face_args(p)
    p.add_argument("--crop-geometry", choices=CROP_GEOMETRIES, default=None,
                   help="how crops are framed (default: as the packaged model was trained)")
    add_run_args(p)


def _tracks(args) -> int:
    from ..faces import analyze_faces
    from ..options import FaceOptions
    from .common import progress_for

    check_outputs(args, args.output)  # fail before the work, not after
    prog = progress_for(args)
    a = analyze_faces(args.video, **options_from_args(args, FaceOptions).analyze_kwargs(), crops=False,
                      progress=prog)
    prog.close()
    write_json_text(args, args.output or "-", json.dumps(a.to_dict(), indent=1))
    if not a.tracks:
        raise no_face_error(args, "to track")
    return 0


def _crops(args) -> int:
    from ..faces import analyze_faces
    from ..options import FaceOptions
    from ..faces.sheet import write_contact_sheet
    from .common import progress_for

    check_outputs(args, args.output)
    geometry = args.crop_geometry
    if geometry is None:  # show what the model is given
        from ..model import load_model

        geometry = load_model(device="cpu").config.crop_geometry
    prog = progress_for(args)
    a = analyze_faces(args.video, **options_from_args(args, FaceOptions).analyze_kwargs(), crop_geometry=geometry,
                      progress=prog)
    prog.close()
    if not a.tracks:
        raise no_face_error(args, "to track")
    write_contact_sheet(a, args.output, per_track=args.per_track, overwrite=args.force)
    print(f"{len(a.tracks)} track(s) → {args.output}", file=sys.stderr)
    return 0
