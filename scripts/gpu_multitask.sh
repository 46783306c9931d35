#!/usr/bin/env bash
# Retrain the multi-task heads on a lent GPU machine, e.g. after scripts/gpu_train.sh brought new
# hyperprior-mse weights (a head is tied to the codec weights it learnt from). Runs in the device's
# disposable copy of the working tree: installs the new codec weights there (if given), renders and
# codes the pack with every core, trains the three heads (latent, decoded, original; same budget)
# on the GPU at once, exports them, evaluates them (no timing claims: that is this project's CPU)
# and copies the heads, the codec weights they belong to and the evaluation under $OUT.
#
#   device: run(command="bash scripts/gpu_multitask.sh [out/gpu/hyperprior-mse]",
#               carry=[".whl", "data/images"], timeout_s=600)      # .whl: see gpu_train.sh
#   back here: copy $OUT/weights/* into imgcomp/weights/ (codec and multitask/), then
#              `imgcomp multitask pack` and `imgcomp multitask eval` here for the README numbers.
# Knobs (environment): DEVICE=cuda TRAIN=4000 TEST=200 STEPS=5000 WORKERS=$(nproc)
set -euo pipefail
NEW_CODEC=${1:-}
DEVICE=${DEVICE:-cuda}
TRAIN=${TRAIN:-4000}
TEST=${TEST:-200}
STEPS=${STEPS:-5000}
WORKERS=${WORKERS:-$(nproc)}
OUT=${OUT:-out/gpu}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1

if [ -n "$NEW_CODEC" ]; then
  python3 -c 'import sys; from pathlib import Path; from imgcomp.models.registry import install_weights
print("installed", install_weights(Path(sys.argv[1])))' "$NEW_CODEC"
fi

python3 -m imgcomp multitask pack --train "$TRAIN" --test "$TEST" --workers "$WORKERS" > "$OUT/pack.log" 2>&1
for input in latent decoded original; do
  python3 -m imgcomp train --config "config/multitask/$input.yaml" --device "$DEVICE" --steps "$STEPS" \
    --run-dir /tmp/mtruns > "$OUT/train-multitask-$input.log" 2>&1 &
done
wait
python3 - <<'PY'
from pathlib import Path
from imgcomp.multitask.weights import HEADS_DIR, export_head
for name in ("latent", "decoded", "original"):  # one at a time: they share the manifest
    print(export_head(Path(f"/tmp/mtruns/multitask-{name}/last.pt"), HEADS_DIR))
PY
python3 -m imgcomp multitask eval --no-sweep --camera-frames 0 --timing-frames 5 --out "$OUT/eval" > "$OUT/eval.log" 2>&1
mkdir -p "$OUT/weights"
cp -r imgcomp/weights/multitask "$OUT/weights/"
if [ -n "$NEW_CODEC" ]; then cp "$NEW_CODEC"/*.pt "$NEW_CODEC"/*.md "$NEW_CODEC"/manifest.json "$OUT/weights/"; fi
tail -n 12 "$OUT/eval/multitask.md"
