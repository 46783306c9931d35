# Sourced by the scripts/gpu_*.sh: the device machine has torch but neither CompressAI nor
# pytorch-msssim, so install the carried wheels (.whl/) unless they import already, and point
# data/images at the carried lossless-WebP photos (.pack/images) when the PNGs are not there.
if ! python3 -c "import compressai, pytorch_msssim" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
if [ ! -e data/images ] && [ -d .pack/images ]; then mkdir -p data && ln -s ../.pack/images data/images; fi
