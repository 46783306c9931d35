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
#   back here: copy $OUT/*.pt, merge $OUT/manifest.json entries into imgcomp/weights/manifest.json
#              (or re-export: python -m imgcomp.models.registry is not needed; see docs/training.md)
set -euo pipefail
MINUTES=${1:-8}
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-out/gpu}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
# The two MSE models share the GPU; each gets the same wall-clock budget.
for name in hyperprior-mse factorized-mse; do
  python3 -m imgcomp train --config "config/models/$name.yaml" --device cuda \
    --init-from "imgcomp/weights/$name.pt" --batch-size 16 --crop 256 --steps 1000000 \
    --max-minutes "$(python3 -c "print($MINUTES / 2)")" --run-dir /tmp/runs --export-dir "$OUT" \
    > "$OUT/train-$name.log" 2>&1 &
done
wait
tail -n 3 "$OUT"/train-*.log
