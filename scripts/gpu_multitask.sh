#!/usr/bin/env bash
# Retrain the multi-task heads on a lent GPU machine, e.g. after scripts/gpu_train.sh brought new
# hyperprior-mse weights (a head is tied to the codec weights it learnt from). Usually run by
# scripts/gpu_session.sh, the one prepared command. Runs in the device's disposable copy of the
# working tree: installs the new codec weights there (if given), renders and codes the pack with
# every core, trains the three heads (latent, decoded, original; same budget) on the GPU at once,
# each from its shipped head (INIT=1), exports them, optionally evaluates them (no timing claims:
# that is this project's CPU) and brings back the heads with the codec weights they belong to
# ($OUT/heads.tgz, written before the evaluation) and the evaluation with the logs
# ($OUT/multitask-eval.tgz): the tool returns at most 8 files.
#
#   device: run(command="bash scripts/gpu_multitask.sh [exports/hyperprior-mse]",
#               carry=[".whl"], timeout_s=600)      # .whl: see gpu_train.sh
#   back here: tar xzf heads.tgz, copy weights/* into imgcomp/weights/ (codec and multitask/), then
#              `imgcomp multitask pack` and `imgcomp multitask eval` here for the README numbers.
# Knobs (environment): DEVICE=cuda TRAIN=4000 TEST=200 STEPS=5000 MINUTES (a time budget per head;
# default none) BATCH (default: the configs' 8) PRECISION=bf16 INIT=1 EVAL=1 WORKERS=$(nproc)
# THREADS=2 (torch CPU threads per head: the pack's workers and the other heads share the cores)
set -euo pipefail
NEW_CODEC=${1:-}
DEVICE=${DEVICE:-cuda}
TRAIN=${TRAIN:-4000}
TEST=${TEST:-200}
STEPS=${STEPS:-5000}
MINUTES=${MINUTES:-}
BATCH=${BATCH:-}
PRECISION=${PRECISION:-bf16}
INIT=${INIT:-1}
EVAL=${EVAL:-1}
WORKERS=${WORKERS:-$(nproc)}
OUT=${OUT:-out/gpu}
WORK=${WORK:-/tmp/gpu-multitask}
mkdir -p "$OUT" "$WORK/logs"
. scripts/device_env.sh

if [ -n "$NEW_CODEC" ]; then
  python3 -c 'import sys; from pathlib import Path; from imgcomp.models.registry import install_weights
print("installed", install_weights(Path(sys.argv[1])))' "$NEW_CODEC"
fi

python3 -m imgcomp multitask pack --train "$TRAIN" --test "$TEST" --workers "$WORKERS" > "$WORK/logs/pack.log" 2>&1
for input in latent decoded original; do
  args=(--steps "$STEPS" --precision "$PRECISION" --threads "${THREADS:-2}" --run-dir "$WORK/mtruns")
  [ -n "$MINUTES" ] && args+=(--max-minutes "$MINUTES")
  [ -n "$BATCH" ] && args+=(--batch-size "$BATCH")
  [ "$INIT" = 1 ] && args+=(--init-from "imgcomp/weights/multitask/multitask-$input.pt")
  python3 -m imgcomp train --config "config/multitask/$input.yaml" --device "$DEVICE" "${args[@]}" \
    > "$WORK/logs/train-multitask-$input.log" 2>&1 &
done
wait
python3 - "$WORK/mtruns" <<'PY'
import sys
from pathlib import Path
from imgcomp.multitask.weights import HEADS_DIR, export_head
for name in ("latent", "decoded", "original"):  # one at a time: they share the manifest
    print(export_head(Path(sys.argv[1]) / f"multitask-{name}" / "last.pt", HEADS_DIR))
PY
mkdir -p "$WORK/weights"
cp -r imgcomp/weights/multitask "$WORK/weights/"
if [ -n "$NEW_CODEC" ]; then cp "$NEW_CODEC"/*.pt "$NEW_CODEC"/*.md "$NEW_CODEC"/manifest.json "$WORK/weights/"; fi
tar czf "$OUT/heads.tgz" -C "$WORK" weights logs
if [ "$EVAL" = 1 ]; then
  python3 -m imgcomp multitask eval --no-sweep --camera-frames 0 --timing-frames 5 --out "$WORK/eval" > "$WORK/logs/eval.log" 2>&1 || true
  tar czf "$OUT/multitask-eval.tgz" -C "$WORK" eval logs
  tail -n 12 "$WORK/eval/multitask.md" || tail -n 20 "$WORK/logs/eval.log"
fi
