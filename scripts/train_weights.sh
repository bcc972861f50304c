#!/usr/bin/env bash
# Reproduce the shipped SyncNet weights (speakerid/weights/syncnet.pt) from ../shared/data.
#
#   scripts/train_weights.sh [DATA_ROOT] [CACHE_DIR] [OUT_DIR]
#
# 1. preprocess every training clip (and the held-apart eval clips, used only for the metrics)
#    through the faces stage into a cache of uint8 mouth crops + MFCC;
# 2. train: stage 1, refinement, stage 2 (CSV log, checkpoints and the refinement report in
#    OUT_DIR; interrupted runs continue with the same command plus --resume);
# 3. export the fp16 shipping weights with the eval metrics in their metadata.
# On a 2-core CPU: preprocessing 15-35 min idle (79 min on a shared machine), training ~40-130 min
# (the machine's speed varied by 2x between sessions). Seeded (--seed 0).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data}
CACHE=${2:-../speakerid-cache}   # outside the repository: ~1.4 GB of crops
OUT=${3:-../speakerid-runs}
RESUME=${RESUME:-}
WORKERS=${WORKERS:-2} python -m speakerid.train.cache "$DATA" "$CACHE" \
    train/grid_s1 train/ro_tedx train/misc train/unverified train/lrc_ar eval --crop-geometry stable \
    --detector centerface
speakerid train --cache "$CACHE" --out "$OUT" --seed 0 --threads 1 \
    --width 16 --audio-width 20 --embed-dim 256 --chunks 12 --chunk-len 10 \
    --mouth-px 75 --cmn-cols 301 --steps1 5000 --steps2 1000 --lr1 1e-3 --lr2 3e-4 --margin 1.2 --neg-min 3 \
    --ce-weight 1.0 --ce-temp 0.1 --ema 0.999 --align-cols 30 --align-at 2000 \
    ${RESUME:+--resume} --export speakerid/weights/syncnet.pt
