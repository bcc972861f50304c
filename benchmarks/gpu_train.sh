#!/usr/bin/env bash
# Training on a lent GPU, from a packed cache, within one device call (docs/model.md, "Training
# on a GPU"). Run from the repository root on the device machine, whose python3 holds PyTorch:
#
#   bash benchmarks/gpu_train.sh PACK MINUTES [speakerid train options...]
#
# PACK: from `python -m speakerid.train.pack pack CACHE PACK` (carried beside the tree).
# MINUTES: wall-clock budget of the training itself; it is stopped after that (a checkpoint is
# written every --ckpt-minutes) and the latest weights come back either way.
# What comes back under $OUT: train.log, train_log.csv, final.pt or latest.pt, refinement.json.
set -uo pipefail
PACK=$1; MINUTES=$2; shift 2
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
WORK=${WORK:-/tmp/speakerid_gpu}
rm -rf "$WORK"; mkdir -p "$WORK"
{
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  python3 -m speakerid.train.pack unpack "$PACK" "$WORK/cache"
} 2>&1 | tee "$OUT/train.log"
DEVICE=cuda
python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || DEVICE=cpu
timeout --signal=INT "$((MINUTES * 60))" python3 -m speakerid train --cache "$WORK/cache" --out "$WORK/run" \
  --device "$DEVICE" --threads "$(nproc)" "$@" 2>&1 | tee -a "$OUT/train.log"
rc=${PIPESTATUS[0]}
echo "train exit status $rc" | tee -a "$OUT/train.log"
for f in train_log.csv refinement.json; do [ -f "$WORK/run/$f" ] && cp "$WORK/run/$f" "$OUT/"; done
if [ -f "$WORK/run/final.pt" ]; then cp "$WORK/run/final.pt" "$OUT/"; elif [ -f "$WORK/run/latest.pt" ]; then cp "$WORK/run/latest.pt" "$OUT/"; fi
ls -la "$OUT"
