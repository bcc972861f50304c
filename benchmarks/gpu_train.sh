#!/usr/bin/env bash
# Training on a lent GPU, from a packed cache, within one device call (docs/model.md, "Training
# on a GPU"). Run from the repository root on the device machine, whose python3 holds PyTorch:
#
#   bash benchmarks/gpu_train.sh PACK MINUTES [speakerid train options...]
#
# PACK: from `python -m speakerid.train.pack pack CACHE PACK` (carried beside the tree).
# MINUTES: wall-clock budget of the training itself (decimals allowed); after it the run is
# interrupted, writes a checkpoint of where it stands, and the latest weights come back.
# What comes back under $OUT: train.log, train_log.csv, refinement.json, weights.pt (fp16), and
# latest.pt (to resume) when it is under 16 MB.
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
timeout --signal=INT --kill-after=60 "${MINUTES}m" python3 -m speakerid train --cache "$WORK/cache" --out "$WORK/run" \
  --device "$DEVICE" --threads "$(nproc)" "$@" 2>&1 | tee -a "$OUT/train.log"
rc=${PIPESTATUS[0]}
echo "train exit status $rc" | tee -a "$OUT/train.log"
for f in train_log.csv refinement.json; do [ -f "$WORK/run/$f" ] && cp "$WORK/run/$f" "$OUT/"; done
# the weights in fp16 without optimizer state (a few MB: files over 16 MiB do not come back):
# final.pt's weight average when the run finished, else the weights where it was interrupted
SRC="$WORK/run/final.pt"; [ -f "$SRC" ] || SRC="$WORK/run/latest.pt"
[ -f "$SRC" ] && python3 -c "import sys; from speakerid.model.weights import export_weights; print('exported', sys.argv[1], export_weights(sys.argv[1], sys.argv[2]))" "$SRC" "$OUT/weights.pt" 2>&1 | tee -a "$OUT/train.log"
# the whole resumable state too, when it is small enough to come back
[ -f "$WORK/run/latest.pt" ] && [ "$(stat -c %s "$WORK/run/latest.pt")" -lt 16000000 ] && cp "$WORK/run/latest.pt" "$OUT/"
ls -la "$OUT"
