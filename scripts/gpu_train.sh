#!/usr/bin/env bash
# One prepared training run on a lent GPU machine (the device tool), resuming from the shipped
# weights and bringing new ones back under $OUT as one archive (the tool returns at most 8 files).
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
# BATCH=32 CROP=256 DEVICE=cuda.
set -euo pipefail
MINUTES=${1:-8}
MODELS=${MODELS:-hyperprior-mse hyperprior-msssim}
BATCH=${BATCH:-32}
CROP=${CROP:-256}
OUT=${OUT:-out/gpu}
WORK=${WORK:-/tmp/gpu-train}
DEVICE=${DEVICE:-cuda}
. scripts/device_env.sh
mkdir -p "$OUT" "$WORK/logs" "$WORK/exports"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$WORK/logs/gpu.txt" || true
# All models share the GPU at once, each for the whole budget, each resuming from its shipped
# weights. The study's fixed-rate families train at 128 px (their configs' crop).
for name in $MODELS; do
  crop_args=(--crop "$CROP")
  case $name in ae-* | cae* | cyclegan-*) crop_args=() ;; esac
  python3 -m imgcomp train --config "config/models/$name.yaml" --device "$DEVICE" \
    --init-from "imgcomp/weights/$name.pt" --batch-size "$BATCH" "${crop_args[@]}" --steps 1000000 \
    --max-minutes "$MINUTES" --run-dir "$WORK/runs" --export-dir "$WORK/exports/$name" \
    > "$WORK/logs/train-$name.log" 2>&1 &
done
wait || true
for name in $MODELS; do cp "$WORK/runs/$name/history.jsonl" "$WORK/logs/history-$name.jsonl" 2>/dev/null || true; done
tar czf "$OUT/codecs.tgz" -C "$WORK" exports logs
for name in $MODELS; do tail -c 600 "$WORK/logs/train-$name.log"; echo; done
