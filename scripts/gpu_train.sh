#!/usr/bin/env bash
# Train codecs on a lent GPU machine (the device tool), all at once on the one GPU, each resuming
# from its shipped weights, and bring the new ones back under $OUT as one archive (the tool
# returns at most 8 files). Usually run by scripts/gpu_session.sh, the one prepared command.
# The machine has torch/torchvision/opencv but no CompressAI or pytorch-msssim and no internet:
# carry them as wheels in .whl/, and the training photos as lossless WebP in .pack/images
# (data/images as PNG is too big for the 64 MiB the tool carries).
#
#   here:   printf '/.whl/\n/.pack/\n' >> .git/info/exclude
#           python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#             --implementation cp --platform manylinux_2_34_x86_64 -d .whl compressai==1.2.8
#           python3 -m pip download --no-deps -d .whl pytorch-msssim==1.0.0
#           python3 scripts/pack_training_images.py          # data/images -> .pack/images (WebP)
#   device: run(command="bash scripts/gpu_train.sh 8", carry=[".whl", ".pack"], timeout_s=600)
#   back here: tar xzf <files_at>/codecs.tgz -C out/gpu, then for each model
#              python -c "from pathlib import Path; from imgcomp.models.registry import \
#              install_weights; install_weights(Path('out/gpu/exports/<model>'))"
# Knobs (environment): MODELS (default: the two entropy-coded models the RD bars are about),
# BATCH=32 CROP=256 (entropy-coded), FIXED_RATE_BATCH=32 FIXED_RATE_CROP (default: the config's, 128),
# STEPS (default: until the time budget), THREADS=1 (CPU threads per process: data sampling),
# DEVICE=cuda. Precision: tf32 for the entropy-coded models, bf16 autocast for the study's
# families (imgcomp/training/precision.py says why).
set -euo pipefail
MINUTES=${1:-8}
MODELS=${MODELS:-hyperprior-mse hyperprior-msssim}
BATCH=${BATCH:-32}
CROP=${CROP:-256}
FIXED_RATE_BATCH=${FIXED_RATE_BATCH:-32}
FIXED_RATE_CROP=${FIXED_RATE_CROP:-}
STEPS=${STEPS:-1000000}
THREADS=${THREADS:-1}
OUT=${OUT:-out/gpu}
WORK=${WORK:-/tmp/gpu-train}
DEVICE=${DEVICE:-cuda}
. scripts/device_env.sh
mkdir -p "$OUT" "$WORK/logs" "$WORK/exports"
nvidia-smi --query-gpu=name,memory.total --format=csv > "$WORK/logs/gpu.txt" 2>&1 || echo "no nvidia-smi" > "$WORK/logs/gpu.txt"
for name in $MODELS; do
  case $name in
    ae-* | cae* | cyclegan-*) args=(--batch-size "$FIXED_RATE_BATCH" --precision bf16); [ -n "$FIXED_RATE_CROP" ] && args+=(--crop "$FIXED_RATE_CROP") ;;
    *) args=(--batch-size "$BATCH" --crop "$CROP" --precision tf32) ;;
  esac
  # A model not shipped yet starts from its config's init_from.
  [ -f "imgcomp/weights/$name.pt" ] && args+=(--init-from "imgcomp/weights/$name.pt")
  python3 -m imgcomp train --config "config/models/$name.yaml" --device "$DEVICE" --threads "$THREADS" \
    "${args[@]}" --steps "$STEPS" \
    --max-minutes "$MINUTES" --run-dir "$WORK/runs" --export-dir "$WORK/exports/$name" \
    > "$WORK/logs/train-$name.log" 2>&1 &
done
wait || true
for name in $MODELS; do cp "$WORK/runs/$name/history.jsonl" "$WORK/logs/history-$name.jsonl" 2>/dev/null || true; done
tar czf "$OUT/codecs.tgz" -C "$WORK" exports logs
for name in $MODELS; do echo "== $name"; tail -c 300 "$WORK/logs/train-$name.log" | tr '\r' '\n' | tail -n 2; done
