"""The nodes' ROS parameters as plain data: names, defaults, ranges, descriptions, checks.

The nodes turn each `ParamSpec` into a `declare_parameter` call with a `ParameterDescriptor`
(rclpy enforces the ranges); their on-set callbacks call `check()` for what a range cannot
express (choices, a model name the registry knows). Tests compare these specs with
`config/*.yaml` and `docs/ros.md`, which is why they live here and not in the nodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union

from imgcomp.defaults import (
    DEFAULT_KEYFRAME_INTERVAL,
    DEFAULT_MAX_INPUT_PIXELS,
    DEFAULT_MAX_OUTPUT_PIXELS,
    DEFAULT_MODEL,
    DEVICES,
    NODE_BACKENDS,
)
from imgcomp.models.registry import available_models, load_manifest

__all__ = ["DECODER_PARAMS", "ENCODER_PARAMS", "MULTITASK_PARAMS", "ParamSpec", "check", "max_levels"]

Value = Union[bool, int, float, str]

MAX_PIXELS_LIMIT = 8192 * 8192  # imgcomp.bitstream.MAX_PIXELS
MAX_KEYFRAME_INTERVAL = 10_000


def max_levels() -> int:
    """The most quality levels any shipped model has (the quality parameter's upper bound)."""
    return max((int(entry.get("levels", 1)) for entry in load_manifest().values()), default=1)


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Value
    description: str
    low: float | None = None  # inclusive range (integer_range / floating_point_range)
    high: float | None = None
    choices: tuple[str, ...] = ()
    read_only: bool = False
    constraints: str = ""  # additional_constraints text for the descriptor

    @property
    def type_name(self) -> str:
        return type(self.default).__name__


def _model_choice(value: str) -> str | None:
    shipped = available_models()
    if value not in shipped:
        return f"unknown model {value!r}; shipped models: {', '.join(shipped) or 'none'}"
    return None


def check(spec: ParamSpec, value: Value) -> str | None:
    """Why `value` is not acceptable for `spec` (None when it is). Types must match exactly."""
    if type(value) is not type(spec.default):
        return f"{spec.name} must be a {spec.type_name}, got {type(value).__name__}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{spec.name} must be finite, got {value}"
    if spec.low is not None and value < spec.low:
        return f"{spec.name} must be >= {spec.low:g}, got {value}"
    if spec.high is not None and value > spec.high:
        return f"{spec.name} must be <= {spec.high:g}, got {value}"
    if spec.choices and value not in spec.choices:
        return f"{spec.name} must be one of {', '.join(spec.choices)}, got {value!r}"
    if spec.name == "model":
        return _model_choice(value)  # type: ignore[arg-type]
    if spec.name == "head":
        return _head_choice(value)  # type: ignore[arg-type]
    return None


def _head_choice(value: str) -> str | None:
    from imgcomp.multitask.model import PAYLOAD_INPUTS
    from imgcomp.multitask.weights import load_head_manifest

    usable = sorted(n for n, e in load_head_manifest().items() if e["input"] in PAYLOAD_INPUTS)
    if value not in usable:
        return f"unknown multi-task head {value!r}; heads that read a payload: {', '.join(usable) or 'none'}"
    return None


_MODEL = ParamSpec(
    "model",
    DEFAULT_MODEL,
    "Registry name of the shipped model (imgcomp/weights/manifest.json), or a classical codec for "
    "CPU-only robots: avif, jxl, webp or jpeg (six levels like the learned models). Changing it at run "
    "time loads the new weights in the background; frames keep using the old model until then.",
    constraints="a shipped model name",
)
_DEVICE = ParamSpec(
    "device",
    "cpu",
    "Where the model runs: cpu or cuda. cuda where torch sees no GPU (or is a CPU-only build) stops "
    "the node at start-up with one line saying so. Read-only: restart the node to change it.",
    choices=DEVICES,
    read_only=True,
    constraints="cpu or cuda",
)
_BACKEND = ParamSpec(
    "backend",
    "torch",
    "Where the neural transforms run: torch, onnxruntime, openvino, openvino-bf16 (bfloat16 on "
    "CPUs that have it: the fastest CPU path, +0.35 % rate) or tensorrt (FP16 engines). A backend "
    "whose package or GPU is missing stops the node at start-up with one line saying why; an "
    "engine or graph that fails to load falls back to torch with a log line. Payloads decode the "
    "same on every backend. Read-only.",
    choices=NODE_BACKENDS,
    read_only=True,
    constraints=", ".join(NODE_BACKENDS),
)
_GRAPHS_DIR = ParamSpec(
    "graphs_dir",
    "",
    "Folder with exported graphs (`imgcomp export --format onnx|tensorrt --out DIR`) for the "
    "onnxruntime/tensorrt backends; empty: export or build them once into ~/.cache/imgcomp. "
    "Read-only.",
    read_only=True,
)
_MAX_OUTPUT = ParamSpec(
    "max_output_pixels",
    DEFAULT_MAX_OUTPUT_PIXELS,
    "Largest image (width * height) a payload may claim; larger claims are rejected (cause "
    "too_large) from the header, before any memory is allocated. Read-only.",
    low=1,
    high=MAX_PIXELS_LIMIT,
    read_only=True,
)
_THREADS = ParamSpec(
    "threads",
    0,
    "CPU threads of the transforms on every backend: torch's intra-op threads for the process "
    "and the intra-op threads of the ONNX Runtime and OpenVINO sessions; 0 keeps the libraries' "
    "defaults (one per core). On a CPU shared with other busy processes one thread can be many "
    "times faster than several. Read-only.",
    low=0,
    high=256,
    read_only=True,
)
_DIAG = ParamSpec(
    "diagnostics_period_s",
    1.0,
    "Seconds between diagnostic_msgs/DiagnosticArray messages on /diagnostics. Read-only.",
    low=0.1,
    high=60.0,
    read_only=True,
)

ENCODER_PARAMS: tuple[ParamSpec, ...] = (
    _MODEL,
    ParamSpec(
        "quality",
        3,
        "Quality level, 1 (fewest bits) .. the model's number of levels. Used as is while "
        "target_bitrate_kbps is 0, and for the first frame when it is not.",
        low=1,
        high=max_levels(),
    ),
    _DEVICE,
    _BACKEND,
    _GRAPHS_DIR,
    ParamSpec(
        "max_input_pixels",
        DEFAULT_MAX_INPUT_PIXELS,
        "Largest input image (width * height) the node encodes; larger images are rejected "
        "(cause too_large) before any conversion.",
        low=1,
        high=MAX_PIXELS_LIMIT,
    ),
    ParamSpec(
        "target_bitrate_kbps",
        0.0,
        "Target payload bitrate in kbit/s, held over every 1 s window by choosing the quality "
        "level per frame; 0 turns rate control off (fixed quality).",
        low=0.0,
        high=1.0e6,
    ),
    ParamSpec(
        "keyframe_interval",
        DEFAULT_KEYFRAME_INTERVAL,
        "Temporal mode: a key frame every this many frames and latent P-frames (a fraction of the "
        "bits) in between; 0 sends key frames only. A lost message costs the frames up to the next "
        "key frame, and a decoder that starts late waits for one: 10 is 1 s at 10 fps, 1/3 s at "
        "30 fps, and at 10, 20 or 30 fps every 1 s window of rate control holds the same number of "
        "key frames. A level, size or model change, and a scene change, send a key frame at once. "
        "Models without temporal tables send key frames only (diagnostics: temporal). Takes effect "
        "with the next frame.",
        low=0,
        high=MAX_KEYFRAME_INTERVAL,
    ),
    ParamSpec(
        "fps_hint",
        30.0,
        "Expected camera frame rate, used by rate control until it has measured the real one.",
        low=0.1,
        high=1000.0,
        read_only=True,
    ),
    _THREADS,
    _DIAG,
)

DECODER_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "model",
        DEFAULT_MODEL,
        "Model loaded at start-up. Payloads that name another shipped model are decoded with "
        "that model, loaded on first use; payloads naming an unknown model are rejected.",
        constraints="a shipped model name",
    ),
    _DEVICE,
    _BACKEND,
    _GRAPHS_DIR,
    ParamSpec(
        "max_cached_models",
        3,
        "How many models the decoder keeps loaded at once (least recently used go first). "
        "Read-only.",
        low=1,
        high=16,
        read_only=True,
    ),
    _MAX_OUTPUT,
    _THREADS,
    _DIAG,
)

MULTITASK_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "head",
        "multitask-latent",
        "Shipped multi-task head (imgcomp/weights/multitask/manifest.json). multitask-latent reads "
        "the entropy-decoded latent and never runs the synthesis transform; multitask-decoded "
        "decodes the image first (the slower baseline). The head fixes the codec the payloads must "
        "come from. Read-only.",
        read_only=True,
        constraints="a shipped head that reads a payload",
    ),
    _DEVICE,
    _MAX_OUTPUT,
    _THREADS,
    _DIAG,
)
