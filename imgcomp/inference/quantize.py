"""INT8 analysis and synthesis graphs: ONNX Runtime static quantization of the float graphs.

QDQ format, weights per channel (signed 8 bit), activations per tensor (unsigned 8 bit, what
x86 VNNI kernels take), ranges calibrated with MinMax on `calibration.npz`: crops of training
frames (never the validation photos; `scripts/make_calibration_set.py` rebuilds the file from
`data/images/train`). The synthesis is calibrated on the float analysis' quantized latents of the
same crops at every quality level, since its input is what a decoder receives.

What stays float (`float_nodes`): the gain multiplications and the last analysis convolution
(the gained latent y is the codec's own quantizer input), and the synthesis' last convolution
(the image). Everything else, GDN included, runs in INT8. Measured on the validation photos
(docs/cpu.md): +6.1 % BD-rate for the INT8 analysis, +13 % for the INT8 synthesis, over the 2 %
bar, so the nodes do not offer these backends (`imgcomp.defaults.NODE_BACKENDS`).

The quantized graphs are made from the shipped float weights on first use and cached next to the
float graphs (`imgcomp.inference.cache`), so the repository carries only the calibration frames.
The same QDQ files run on ONNX Runtime, OpenVINO and TensorRT (explicit quantization).

An INT8 analysis changes the latent a little, so its payloads differ from the float encoder's but
decode exactly on every decoder (the integer hyperprior fixes the coder's tables from the coded
z alone). An INT8 synthesis changes pixels (docs/cpu.md gives the measured PSNR change).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import torch

from imgcomp.inference.graphs import META_FORMAT, META_HASH, META_MODEL, graph_paths
from imgcomp.models.gained import GainedCodec

CALIBRATION_FILE = Path(__file__).resolve().parents[1] / "weights" / "calibration.npz"
QUANT_FORMAT = "1"  # bump when the recipe below changes: cached INT8 graphs are then rebuilt
META_QUANT = "imgcomp_int8_recipe"


def int8_graph_paths(out_dir: Path, model: str) -> tuple[Path, Path]:
    return out_dir / f"{model}.analysis.int8.onnx", out_dir / f"{model}.synthesis.int8.onnx"


def calibration_id(path: Path = CALIBRATION_FILE) -> str:
    """The first 8 hex digits of the calibration file's sha256: new frames, new cached graphs."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:8]


def calibration_frames(path: Path = CALIBRATION_FILE) -> np.ndarray:
    """uint8 crops, N x H x W x 3 (RGB), H and W multiples of 64."""
    with np.load(path) as data:
        frames = data["frames"]
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or frames.shape[1] % 64 or frames.shape[2] % 64:
        raise ValueError(f"{path}: expected uint8 N x H x W x 3 crops with sides divisible by 64, got {frames.dtype} {frames.shape}")
    return frames


@torch.no_grad()
def calibration_feeds(net: GainedCodec, frames: np.ndarray) -> tuple[list[dict], list[dict]]:
    """Inputs of the analysis and synthesis graphs: every crop at every quality level."""
    net = net.to("cpu").eval()
    m = net.arch.latent_channels
    analysis, synthesis = [], []
    for frame in frames:
        x = torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1)))[None].float() / 255.0
        features = net.g_a(x)
        for level_index in range(net.levels):
            gain = net.gain.abs()[level_index].reshape(1, m, 1, 1).float()
            inverse = net.inverse_gain.abs()[level_index].reshape(1, m, 1, 1).float()
            analysis.append({"x": x.numpy(), "gain": gain.numpy()})
            synthesis.append({"y_hat": torch.round(features * gain).numpy(), "inverse_gain": inverse.numpy()})
    return analysis, synthesis


class _Feeds:
    """onnxruntime.quantization's CalibrationDataReader over a list of input dicts."""

    def __init__(self, feeds: list[dict]) -> None:
        self._items = iter(feeds)

    def get_next(self) -> dict | None:
        return next(self._items, None)


# The recipe (QUANT_FORMAT names it): which operators run in INT8, which nodes stay float.
OP_TYPES = ("Conv", "Mul", "DepthToSpace", "Relu")


def float_nodes(graph: onnx.ModelProto, role: str) -> list[str]:
    """Nodes left in float: the gain multiplications (the analysis' y is the codec's own quantizer
    input: 8-bit steps on it cost far more than they save), the synthesis' last convolution and
    pixel shuffle (the image), and the analysis' last g_a convolution (y before its gain)."""
    nodes = list(graph.graph.node)
    inputs = {i.name for i in graph.graph.input}
    gains = [n.name for n in nodes if n.op_type == "Mul" and inputs & set(n.input)]
    if role == "synthesis":
        return gains + [n.name for n in nodes if n.op_type in ("Conv", "DepthToSpace")][-2:]
    return gains + [n.name for n in nodes if n.op_type == "Conv" and n.name.startswith("/g_a/")][-1:]


def quantize_graph(float_path: Path, out_path: Path, feeds: list[dict], role: str,
                   op_types: tuple[str, ...] = OP_TYPES, keep_float: list[str] | None = None,
                   method: str = "MinMax", extra_options: dict | None = None, only: list[str] | None = None) -> Path:
    """Static INT8 quantization of one float graph (QDQ, per-channel weights, MinMax ranges)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    graph = onnx.load(str(float_path))
    quantize_static(
        str(float_path), str(out_path), _Feeds(feeds),
        quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=False,
        op_types_to_quantize=list(op_types),
        nodes_to_exclude=float_nodes(graph, role) if keep_float is None else keep_float, nodes_to_quantize=only,
        calibrate_method=getattr(CalibrationMethod, method), extra_options=extra_options or {},
    )
    _stamp_int8(out_path, graph)
    return out_path


def _stamp_int8(path: Path, source: onnx.ModelProto) -> None:
    quantized = onnx.load(str(path))
    meta = {p.key: p.value for p in source.metadata_props}
    meta[META_QUANT] = QUANT_FORMAT
    del quantized.metadata_props[:]
    for key in (META_MODEL, META_HASH, META_FORMAT, META_QUANT):
        if key in meta:
            entry = quantized.metadata_props.add()
            entry.key, entry.value = key, meta[key]
    onnx.save(quantized, str(path))


def quantize_graphs(net: GainedCodec, model: str, float_dir: Path, out_dir: Path,
                    calibration: Path = CALIBRATION_FILE) -> tuple[Path, Path]:
    """INT8 analysis and synthesis graphs of `model` in `out_dir`, from its float graphs in `float_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    analysis_feeds, synthesis_feeds = calibration_feeds(net, calibration_frames(calibration))
    float_analysis, float_synthesis = graph_paths(float_dir, model)
    analysis, synthesis = int8_graph_paths(out_dir, model)
    quantize_graph(float_analysis, analysis, analysis_feeds, "analysis")
    quantize_graph(float_synthesis, synthesis, synthesis_feeds, "synthesis")
    return analysis, synthesis
