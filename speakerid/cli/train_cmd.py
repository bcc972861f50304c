"""``speakerid train`` and ``speakerid evaluate``: train the SyncNet on a preprocessed cache
(see ``python -m speakerid.train.cache``) and measure it on the held-apart eval cache."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields


def register(sub) -> None:
    from ..train.config import TrainConfig

    d = TrainConfig()
    p = sub.add_parser("train", help="self-supervised SyncNet training (stage 1, refinement, stage 2)")
    p.add_argument("--cache", default=d.cache_dir, help=f"training cache directory (default {d.cache_dir})")
    p.add_argument("--out", default=d.out_dir, help=f"checkpoints, CSV log, refinement report (default {d.out_dir})")
    p.add_argument("--resume", action="store_true", help="continue from <out>/latest.pt")
    p.add_argument("--export", help="after training, write the shipping fp16 weights here (with eval metrics)")
    for f in fields(TrainConfig):
        if f.name in ("cache_dir", "out_dir", "groups"):
            continue
        p.add_argument("--" + f.name.replace("_", "-"), type=type(getattr(d, f.name)), default=getattr(d, f.name),
                       help=f"(default {getattr(d, f.name)})")
    p.add_argument("--groups", nargs="*", default=[], help="train only on these cache groups (default: all)")
    p.set_defaults(func=_train)

    p = sub.add_parser("evaluate", help="single-window accuracy and cache-level clip offsets of a SyncNet")
    p.add_argument("--cache", default=d.cache_dir, help=f"cache directory holding eval/ (default {d.cache_dir})")
    p.add_argument("--split", default="eval", help="cache split to evaluate (default eval)")
    p.add_argument("--model", metavar="PT", help="checkpoint (default: the packaged weights)")
    p.add_argument("--weights", dest="model", help=argparse.SUPPRESS)  # the older name
    p.add_argument("--no-clip-level", action="store_true", help="skip the artificially shifted clip check")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("-o", "--output", help="write the full JSON here")
    p.set_defaults(func=_evaluate)


def _train(args) -> int:
    from ..train.loop import TrainConfig, Trainer, evaluate, export_weights
    from ..model import load_model

    kw = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name not in ("cache_dir", "out_dir")}
    cfg = TrainConfig(cache_dir=args.cache, out_dir=args.out, **kw)
    final = Trainer(cfg).run(resume=args.resume)
    if args.export:
        m = load_model(final, device="cpu")
        res = evaluate(m, cfg.cache_dir, "eval")
        res.pop("clip_level_rows", None)
        fp = export_weights(final, args.export, metrics=res)
        print(json.dumps(res, indent=1))
        print(f"exported {args.export} (fingerprint {fp})")
    return 0


def _evaluate(args) -> int:
    import torch

    from ..model import load_model
    from ..train.loop import evaluate

    torch.set_num_threads(args.threads)
    m = load_model(args.model, device="cpu")
    res = evaluate(m, args.cache, args.split, clip_level=not args.no_clip_level)
    rows = res.pop("clip_level_rows", None)
    if args.output:
        from ..media import atomic_output

        with atomic_output(args.output) as tmp:
            tmp.write_text(json.dumps(dict(res, clip_level_rows=rows), indent=1))
    sys.stdout.write(json.dumps(res, indent=1) + "\n")
    return 0
