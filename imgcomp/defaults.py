"""The defaults the whole project shares, named once and importable without torch (the CLI's
argument parser, the node parameters and the codec read them from here)."""

from __future__ import annotations

__all__ = [
    "BACKENDS", "CLASSICAL_LEVELS", "CLASSICAL_MODELS", "DEFAULT_KEYFRAME_INTERVAL", "DEFAULT_MAX_INPUT_PIXELS",
    "DEFAULT_MAX_OUTPUT_PIXELS", "DEFAULT_MODEL", "DEVICES", "MAX_EFFORT", "NODE_BACKENDS", "check_effort",
]

# The shipped model the nodes, the bag tools and the CLI use unless told otherwise.
DEFAULT_MODEL = "hyperprior-mse"
# Decode-side limit checked from the header before anything is allocated: 4K UHD. A node or a
# bag tool that expects larger frames raises it (`max_output_pixels`), up to the bitstream's cap.
DEFAULT_MAX_OUTPUT_PIXELS = 3840 * 2160
# The encoder node's input limit (`max_input_pixels`): 4K UHD as well.
DEFAULT_MAX_INPUT_PIXELS = 3840 * 2160
# Where the analysis and synthesis transforms run (entropy coding is always on the CPU); the
# -int8 ones run statically quantized graphs (imgcomp.inference.quantize).
BACKENDS = ("torch", "onnxruntime", "onnxruntime-int8", "openvino", "openvino-bf16", "openvino-int8", "tensorrt",
            "tensorrt-int8")
# What the nodes offer: the backends whose rate cost is within 2 % of the float graphs (docs/cpu.md).
# The INT8 ones measured +17.9 % BD-rate (post-training quantization), so they stay library- and
# bench-only; TensorRT INT8 is not measured yet.
NODE_BACKENDS = ("torch", "onnxruntime", "openvino", "openvino-bf16", "tensorrt")
DEVICES = ("cpu", "cuda")
# Classical codecs a model name may also be (imgcomp.classical): no weights, the same interface.
CLASSICAL_MODELS = ("avif", "jpeg", "jxl", "webp")
CLASSICAL_LEVELS = 6
# Encoder effort levels: 0 is the one-pass encode, 1..MAX_EFFORT refine the latents at encode
# time (`imgcomp.models.refine.EFFORTS` holds what each level does).
MAX_EFFORT = 3


def check_effort(effort: object) -> int:
    """`effort` if it is an integer in 0..MAX_EFFORT; ValueError otherwise."""
    if isinstance(effort, bool) or not isinstance(effort, int) or not 0 <= effort <= MAX_EFFORT:
        raise ValueError(f"effort must be an integer in 0..{MAX_EFFORT}, got {effort!r}")
    return int(effort)
# Temporal mode (imgcomp.temporal): a key frame every this many frames; 0 = every frame a key frame.
# 10 is 1 s at 10 fps and 1/3 s at 30 fps: a lost message costs at most that much video, a decoder
# that joins late waits at most that long, and every 1 s window at 10, 20 or 30 fps holds the same
# number of key frames (rate control holds those windows best). It keeps most of the savings of
# longer groups: vtest.avi, 795 frames at 768x576, level 3: intra 0.357 bpp, interval 10 0.0595,
# interval 30 0.0372, while frames shown at 1 % drops fall from 0.948 to 0.861 (imgcomp
# bench-video, benchmarks/results/video/video.md).
DEFAULT_KEYFRAME_INTERVAL = 10
