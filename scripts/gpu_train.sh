#!/usr/bin/env bash
# One prepared training run on a lent GPU machine (the device tool), resuming from the shipped
# weights and bringing new ones back under $OUT. The machine has torch/torchvision/opencv but no
# CompressAI or pytorch-msssim and no internet: carry them as wheels in .whl/ and carry data/images.
#
#   here:   echo /.whl/ >> .git/info/exclude
#           python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#             --implementation cp --platform manylinux_2_34_x86_64 -d .whl compressai==1.2.8
#           python3 -m pip download --no-deps -d .whl pytorch-msssim==1.0.0
#   device: run(command="bash scripts/gpu_train.sh 8", carry=[".whl", "data/images"], timeout_s=600)
#   back here: for each model, python -c "from pathlib import Path; from imgcomp.models.registry import \
#              install_weights; install_weights(Path('$OUT/<model>'))" (copies .pt and card, merges the manifest)
set -euo pipefail
MINUTES=${1:-8}
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-out/gpu}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
# All models share the GPU at once, each for the whole budget, each resuming from its shipped
# weights: the entropy-coded ones at 256 px crops, the study's small fixed-rate ones at 128 px.
for name in hyperprior-mse factorized-mse hyperprior-msssim; do
  python3 -m imgcomp train --config "config/models/$name.yaml" --device cuda \
    --init-from "imgcomp/weights/$name.pt" --batch-size 16 --crop 256 --steps 1000000 \
    --max-minutes "$MINUTES" --run-dir /tmp/runs --export-dir "$OUT/$name" \
    > "$OUT/train-$name.log" 2>&1 &
done
for name in ae-ssim ae-mse ae-laplacian-ssim cae8-ssim cae8-mse cae32-ssim cyclegan-ssim; do
  python3 -m imgcomp train --config "config/models/$name.yaml" --device cuda \
    --init-from "imgcomp/weights/$name.pt" --batch-size 16 --steps 1000000 \
    --max-minutes "$MINUTES" --run-dir /tmp/runs --export-dir "$OUT/$name" \
    > "$OUT/train-$name.log" 2>&1 &
done
wait
tail -n 3 "$OUT"/train-*.log
