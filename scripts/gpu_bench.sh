#!/usr/bin/env bash
# GPU timing in one prepared command (issue 15, item 5): `imgcomp bench --device cuda` for torch on
# CUDA and, where TensorRT imports, the TensorRT FP16 and INT8 engines (the INT8 ones built from the
# same QDQ graphs as the CPU's onnxruntime-int8, calibrated on imgcomp/weights/calibration.npz),
# all rows in one table beside OpenCV JPEG and CompressAI's reference. Results (bench.json,
# bench.md) land in $OUT (default benchmarks/results/bench/gpu).
#
#   here:   printf '/.whl/\n' >> .git/info/exclude
#           python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#             --implementation cp --platform manylinux_2_34_x86_64 -d .whl \
#             compressai==1.2.8 onnx==1.23.2 onnxruntime==1.32.0
#           python3 -m pip download --no-deps -d .whl pytorch-msssim==1.0.0
#   device: run(command="bash scripts/gpu_bench.sh", carry=[".whl"], timeout_s=600)
#   check the CPU-side parts anywhere: DEVICE=cpu FRAMES=2 bash scripts/gpu_bench.sh
#
# Without a CUDA device (and DEVICE=cuda, the default) it stops at once with one line and exit 2.
# TensorRT is not carried (its wheel is far over what the device tool carries): where the machine
# has none, the TensorRT rows are left out with one line saying so.
set -euo pipefail
DEVICE=${DEVICE:-cuda}
FRAMES=${FRAMES:-30}
OUT=${OUT:-benchmarks/results/bench/gpu}
MODEL=${MODEL:-hyperprior-mse}
if [ -d .whl ]; then . scripts/device_env.sh; else export PYTHONPATH=${PYTHONPATH:-}:$PWD; fi
PY=${PYTHON:-python3}
if [ "$DEVICE" = cuda ] && ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu_bench: no CUDA device here (torch.cuda.is_available() is False): run it on a lent GPU machine" >&2
  exit 2
fi
BACKENDS="torch"
if "$PY" -c "import tensorrt" 2>/dev/null && [ "$DEVICE" = cuda ]; then
  BACKENDS="torch tensorrt tensorrt-int8"
else
  echo "gpu_bench: tensorrt does not import here (or DEVICE=$DEVICE): TensorRT rows left out" >&2
fi
[ "$DEVICE" = cuda ] && { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true; }
uptime
# shellcheck disable=SC2086  # BACKENDS is a word list
"$PY" -m imgcomp bench --device "$DEVICE" --models "$MODEL" --backends $BACKENDS --frames "$FRAMES" \
  --no-bag --out "$OUT"
uptime
