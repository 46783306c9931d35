# Sourced by the scripts/gpu_*.sh: the device machine has torch but neither CompressAI nor
# pytorch-msssim, so install the carried wheels (.whl/) unless they import already, and point
# data/images and data/video at the carried lossless-WebP photos and the training video
# (.pack/, scripts/pack_training_images.py) when they are not there.
if ! python3 -c "import compressai, pytorch_msssim" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
if [ ! -e data/images ] && [ -d .pack/images ]; then mkdir -p data && ln -s ../.pack/images data/images; fi
if [ ! -e data/video ] && [ -d .pack/video ]; then mkdir -p data && ln -s ../.pack/video data/video; fi
