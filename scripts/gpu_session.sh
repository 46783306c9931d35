#!/usr/bin/env bash
# A whole GPU session in one device call, so that the machine's start-up is paid once: train the
# codecs for MINUTES (scripts/gpu_train.sh), then retrain the multi-task heads for the new
# hyperprior-mse weights (scripts/gpu_multitask.sh). Everything comes back as three archives:
# codecs.tgz, heads.tgz (with the codec the heads belong to) and multitask-eval.tgz.
#
#   device: run(command="bash scripts/gpu_session.sh 6", carry=[".whl", ".pack"], timeout_s=600)
set -euo pipefail
MINUTES=${1:-6}
export WORK=/tmp/gpu-train
bash scripts/gpu_train.sh "$MINUTES"
WORK=/tmp/gpu-multitask bash scripts/gpu_multitask.sh /tmp/gpu-train/exports/hyperprior-mse
