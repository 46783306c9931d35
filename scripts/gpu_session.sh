#!/usr/bin/env bash
# The one prepared GPU command: everything that wants GPU time, in one device call (a call runs at
# most 10 minutes; a session has 15 minutes of device time, start-up of about 1.5 included):
#
#  1. every shipped codec at once on the one GPU, each from its shipped weights, for
#     CODEC_MINUTES (scripts/gpu_train.sh): the entropy-coded models (TF32, batch 32 of 256^2)
#     and the study's seven fixed-rate families (bf16 autocast, batch 32 of their 128^2);
#     -> codecs.tgz, written as soon as they stop, so a later failure loses none of it;
#  2. for the new hyperprior-mse, at once: the multi-task pack rendered and coded with every core,
#     then the three heads on the GPU from their shipped weights (bf16, HEAD_MINUTES each;
#     scripts/gpu_multitask.sh) -> heads.tgz; and on the CPU the temporal tables, which are tied
#     to the codec's hash (imgcomp/training/temporal.py) -> temporal.tgz;
#  3. summary.json: steps reached by every run, the wall time of each phase, and steps per second
#     of phase (a lower bound of the training rate: start-up and export are in the phase; the
#     logs in the archives have tqdm's own rate).
#
#   here:   the wheels and the pack as scripts/gpu_train.sh says (pack_training_images.py prints
#           what the call will carry: it must stay under 64 MiB)
#   device: run(command="bash scripts/gpu_session.sh", carry=[".whl", ".pack"], timeout_s=600)
#   back here: docs/training.md ("On a lent GPU"): install into a scratch copy, run
#           `imgcomp eval --split heldout` there, keep only what improves the held-out split.
#
#   PATH=.venv/bin:$PATH DRY_RUN=1 bash scripts/gpu_session.sh
#           the same steps on this CPU with tiny sizes, in a copy of the checkout (its shipped
#           weights untouched; `make gpu-dry-run`)
# Knobs: CODEC_MINUTES=4.5 HEAD_MINUTES=1.5 MODELS (default: every shipped codec) MT_TRAIN=3000
# MT_TEST=100 TEMPORAL_ARGS OUT=out/gpu DEVICE=cuda, and those of the two scripts it runs.
set -euo pipefail

if [ "${DRY_RUN:-0}" = 1 ]; then
  REPO=$PWD
  python3 -c "import compressai, pytorch_msssim, torch" 2>/dev/null ||
    { echo "the dry run needs the project's Python first on PATH (PATH=.venv/bin:\$PATH)" >&2; exit 2; }
  ROOT=${DRY_ROOT:-/tmp/gpu-dry-run}
  rm -rf "$ROOT" && mkdir -p "$ROOT/tree"
  # What the device tool carries of the checkout (tracked and untracked-not-ignored files), less
  # a data/ link; then the real training photos and video, and two small validation images.
  git ls-files -co --exclude-standard -z | grep -zv '^data$' | tar --null -T - -cf - | tar -xf - -C "$ROOT/tree"
  mkdir -p "$ROOT/tree/data/images/val"
  ln -s "$REPO/data/images/train" "$ROOT/tree/data/images/train"
  ln -s "$REPO/data/video" "$ROOT/tree/data/video"
  cp test/fixtures/images/baboon.png test/fixtures/images/home.png "$ROOT/tree/data/images/val/"
  for f in "$ROOT"/tree/config/multitask/*.yaml; do  # 24 frames: validate on 4, every 2 steps
    sed -i 's/^val_every: .*/val_every: 2/' "$f" && echo "val_frames: 4" >> "$f"
  done
  before=$(cd "$REPO" && git status --porcelain -- imgcomp/weights | wc -l)
  started=$(date +%s)
  # One OpenMP thread per process: on a loaded 2-core machine, two threads per process spent 27x
  # the CPU time on the same MS-SSIM (spinning at barriers), and the dry run runs ten at once.
  (cd "$ROOT/tree" && OMP_NUM_THREADS=1 DRY_RUN=0 DEVICE=cpu OUT="$ROOT/out" THREADS=1 CODEC_MINUTES=0.3 STEPS=2 BATCH=2 CROP=128 \
    FIXED_RATE_BATCH=2 FIXED_RATE_CROP=64 HEAD_MINUTES=0.3 HEAD_STEPS=2 HEAD_BATCH=2 MT_TRAIN=24 MT_TEST=2 \
    WORKERS=2 TEMPORAL_ARGS="--max-video-frames 12 --rendered 1 --render-frames 3" WORK_ROOT="$ROOT/work" \
    bash scripts/gpu_session.sh)
  echo "== dry run: $(( $(date +%s) - started )) s; archives:"
  for a in codecs heads temporal; do
    echo "$a.tgz: $(tar tzf "$ROOT/out/$a.tgz" | grep -c -E '\.(pt|npz)$') weight files"
  done
  tar tzf "$ROOT/out/codecs.tgz" | grep -E 'exports/[^/]+/[^/]+\.pt$' | sort
  python3 -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1])), indent=1))' "$ROOT/out/summary.json"
  after=$(cd "$REPO" && git status --porcelain -- imgcomp/weights | wc -l)
  [ "$before" = "$after" ] || { echo "the dry run changed the checkout's weights" >&2; exit 1; }
  echo "dry run OK: the checkout's imgcomp/weights are untouched"
  exit 0
fi

CODEC_MINUTES=${CODEC_MINUTES:-4.5}
HEAD_MINUTES=${HEAD_MINUTES:-1.5}
MODELS=${MODELS:-hyperprior-mse hyperprior-msssim hyperprior-mse-hq factorized-mse ae-mse ae-ssim ae-laplacian-ssim cae8-mse cae8-ssim cae32-ssim cyclegan-ssim}
MT_TRAIN=${MT_TRAIN:-3000}
MT_TEST=${MT_TEST:-100}
TEMPORAL_ARGS=${TEMPORAL_ARGS:-}
OUT=${OUT:-out/gpu}
WORK_ROOT=${WORK_ROOT:-/tmp}
export DEVICE=${DEVICE:-cuda} OUT
mkdir -p "$OUT" "$WORK_ROOT/gpu-temporal"
. scripts/device_env.sh
t0=$(date +%s)

MODELS="$MODELS" WORK="$WORK_ROOT/gpu-train" bash scripts/gpu_train.sh "$CODEC_MINUTES"
t1=$(date +%s)

NEW="$WORK_ROOT/gpu-train/exports/hyperprior-mse"
if [ -f "$NEW/hyperprior-mse.pt" ]; then
  python3 -c 'import sys; from pathlib import Path; from imgcomp.models.registry import install_weights
print("installed", install_weights(Path(sys.argv[1])))' "$NEW"
  (  # the temporal tables on the CPU, beside the heads on the GPU
    # shellcheck disable=SC2086
    python3 -m imgcomp.training.temporal --model hyperprior-mse $TEMPORAL_ARGS > "$WORK_ROOT/gpu-temporal/train.log" 2>&1
    python3 -c 'import json; from imgcomp.models.registry import load_manifest
json.dump(load_manifest()["hyperprior-mse"]["temporal"], open("'"$WORK_ROOT"'/gpu-temporal/temporal-entry.json", "w"), indent=1)'
    cp imgcomp/weights/hyperprior-mse.temporal.npz "$WORK_ROOT/gpu-temporal/"
    tar czf "$OUT/temporal.tgz" -C "$WORK_ROOT" gpu-temporal
  ) &
  temporal=$!
  # The codec is installed above, so the heads' script does not install it again.
  WORK="$WORK_ROOT/gpu-multitask" TRAIN="$MT_TRAIN" TEST="$MT_TEST" STEPS="${HEAD_STEPS:-1000000}" \
    MINUTES="$HEAD_MINUTES" BATCH="${HEAD_BATCH:-32}" EVAL=0 bash scripts/gpu_multitask.sh ||
    echo "multi-task heads failed: see heads.tgz logs" >&2
  cp "$NEW"/*.pt "$NEW"/*.md "$NEW"/manifest.json "$WORK_ROOT/gpu-multitask/weights/" 2>/dev/null || true
  tar czf "$OUT/heads.tgz" -C "$WORK_ROOT/gpu-multitask" weights logs
  wait "$temporal" || echo "temporal tables failed: see $WORK_ROOT/gpu-temporal/train.log" >&2
else
  echo "no new hyperprior-mse weights: heads and temporal tables skipped" >&2
fi
t2=$(date +%s)

python3 - "$WORK_ROOT" "$OUT/summary.json" "$t0" "$t1" "$t2" <<'PY'
import json, sys
from pathlib import Path
import torch
root, out, t0, t1, t2 = Path(sys.argv[1]), Path(sys.argv[2]), *map(int, sys.argv[3:])
runs = {}
for checkpoint in sorted((root / "gpu-train" / "runs").glob("*/last.pt")) + sorted((root / "gpu-multitask" / "mtruns").glob("*/last.pt")):
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    seconds = (t1 - t0) if "gpu-train" in str(checkpoint) else (t2 - t1)
    runs[checkpoint.parent.name] = {"steps": int(state["step"]), "batch_size": state["config"]["batch_size"],
                                    "precision": state["config"].get("precision"), "phase_seconds": seconds,
                                    "steps_per_s_lower_bound": round(state["step"] / max(seconds, 1), 2)}
gpu = (root / "gpu-train" / "logs" / "gpu.txt").read_text().strip().splitlines()[-1:]
json.dump({"gpu": gpu, "codec_phase_s": t1 - t0, "heads_and_temporal_phase_s": t2 - t1, "runs": runs}, out.open("w"), indent=1)
print(json.dumps(runs, indent=1))
PY
echo "wall: codecs $(( t1 - t0 )) s, heads + temporal $(( t2 - t1 )) s; files: $(ls "$OUT")"
