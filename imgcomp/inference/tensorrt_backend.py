"""The analysis and synthesis transforms as TensorRT FP16 or INT8 engines (Jetson, or any NVIDIA GPU).

Engines are built from the exported ONNX graphs with one optimization profile (64x64 up to
`MAX_SIZE`, tuned for 640x480) and cached per GPU and TensorRT version, because an engine only
runs on the GPU model and TensorRT release that built it. FP16 changes the latent slightly, so a
TensorRT encoder writes different (equally valid) payloads from a torch one; any backend decodes
them exactly, because the coder's probability tables come from the integer hyperprior.

Needs the `tensorrt` Python package and a CUDA device; `TensorRTUnavailable` says which is
missing. I/O buffers are torch CUDA tensors, so no pycuda is needed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import Tensor

from imgcomp.inference.cache import build_once, model_cache_dir
from imgcomp.inference.graphs import export_onnx, graph_paths
from imgcomp.inference.errors import BackendUnavailable
from imgcomp.models.gained import GainedCodec

MIN_SIZE = (64, 64)
OPT_SIZE = (512, 640)  # 480x640 padded to a multiple of 64
MAX_SIZE = (1088, 1920)  # 1080p padded to a multiple of 64
WORKSPACE_BYTES = 1 << 30


class TensorRTUnavailable(BackendUnavailable):
    """TensorRT cannot run here; the message says why."""


def tensorrt_unavailable_reason() -> str | None:
    """None when engines can be built and run here, else why not."""
    if importlib.util.find_spec("tensorrt") is None:
        return "the tensorrt Python package is not installed (JetPack ships it; elsewhere `pip install tensorrt`)"
    if not torch.cuda.is_available():
        return "torch sees no CUDA device (TensorRT engines run on an NVIDIA GPU only)"
    return None


def _require_tensorrt():
    reason = tensorrt_unavailable_reason()
    if reason is not None:
        raise TensorRTUnavailable(reason)
    import tensorrt as trt

    return trt


def _profile_shapes(channels: int, scale: int) -> tuple[tuple[int, ...], ...]:
    """(min, opt, max) shapes of an image (scale 1) or a latent (scale 16) input."""
    return tuple((1, channels, -(-h // scale), -(-w // scale)) for h, w in (MIN_SIZE, OPT_SIZE, MAX_SIZE))


def build_engine(onnx_path: Path, engine_path: Path, inputs: dict[str, tuple[int, int]], fp16: bool = True,
                 int8: bool = False) -> Path:
    """Build a serialized engine from `onnx_path`. `inputs`: name -> (channels, downscale).

    `int8`: `onnx_path` is a QDQ graph (`imgcomp.inference.quantize`); TensorRT takes its scales
    as they are (explicit quantization), so no TensorRT calibration runs."""
    trt = _require_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    if int8:
        config.set_flag(trt.BuilderFlag.INT8)
    profile = builder.create_optimization_profile()
    for name, (channels, scale) in inputs.items():
        if scale == 0:  # a per-channel vector (the gains): fixed shape
            shape = (1, channels, 1, 1)
            profile.set_shape(name, shape, shape, shape)
        else:
            profile.set_shape(name, *_profile_shapes(channels, scale))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path}")
    engine_path.write_bytes(bytes(serialized))
    return engine_path


class _Engine:
    def __init__(self, path: Path) -> None:
        trt = _require_tensorrt()
        self._logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(self._logger).deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise RuntimeError(f"could not load TensorRT engine {path} (built by another GPU or TensorRT version?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]

    def __call__(self, **inputs: Tensor) -> list[Tensor]:
        stream = torch.cuda.current_stream()
        for name in self.inputs:
            tensor = inputs[name].contiguous()
            inputs[name] = tensor  # keep alive until the stream is done
            self.context.set_input_shape(name, tuple(tensor.shape))
            self.context.set_tensor_address(name, tensor.data_ptr())
        outputs = []
        for name in self.outputs:
            out = torch.empty(tuple(self.context.get_tensor_shape(name)), dtype=torch.float32, device="cuda")
            self.context.set_tensor_address(name, out.data_ptr())
            outputs.append(out)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        stream.synchronize()
        return outputs


def build_engines(net: GainedCodec, model: str, model_hash: str, out_dir: Path, onnx_dir: Path | None = None,
                  int8: bool = False) -> tuple[Path, Path]:
    """FP16 (or INT8 with FP16) analysis and synthesis engines for `net` in `out_dir` (ONNX
    graphs exported, and for INT8 quantized, on the way)."""
    trt = _require_tensorrt()
    out_dir.mkdir(parents=True, exist_ok=True)
    if onnx_dir is None:
        onnx_dir = out_dir / "onnx"
        export_onnx(net, model, model_hash, onnx_dir)
    analysis_onnx, synthesis_onnx = graph_paths(onnx_dir, model)
    if int8:
        from imgcomp.inference.quantize import quantize_graphs

        analysis_onnx, synthesis_onnx = quantize_graphs(net, model, onnx_dir, out_dir / "onnx-int8")
    m = net.arch.latent_channels
    analysis = build_engine(analysis_onnx, out_dir / f"{model}.analysis.engine", {"x": (3, 1), "gain": (m, 0)}, int8=int8)
    synthesis = build_engine(
        synthesis_onnx, out_dir / f"{model}.synthesis.engine", {"y_hat": (m, 16), "inverse_gain": (m, 0)}, int8=int8
    )
    (out_dir / "built_with.txt").write_text(f"tensorrt {trt.__version__} on {torch.cuda.get_device_name(0)}\n")
    return analysis, synthesis


def _engine_dir(model: str, model_hash: str, int8: bool = False) -> Path:
    from imgcomp.inference.graphs import GRAPH_FORMAT

    trt = _require_tensorrt()
    gpu = torch.cuda.get_device_name(0).replace(" ", "_").replace("/", "_")
    kind = f"tensorrt-v{GRAPH_FORMAT}" + ("-int8" if int8 else "")
    return model_cache_dir(kind, model, model_hash) / f"{gpu}-trt{trt.__version__}"


class TensorRTTransforms:
    name = "tensorrt"

    def __init__(self, net: GainedCodec, analysis: Path, synthesis: Path, name: str = "tensorrt") -> None:
        self.net = net
        self.name = name
        self._analysis = _Engine(analysis)
        self._synthesis = _Engine(synthesis)
        with torch.no_grad():
            m = net.arch.latent_channels
            self._gain = [g.reshape(1, m, 1, 1).float().cuda() for g in net.gain.abs().detach()]
            self._inverse_gain = [g.reshape(1, m, 1, 1).float().cuda() for g in net.inverse_gain.abs().detach()]

    @classmethod
    def for_model(
        cls, net: GainedCodec, model: str, model_hash: str, device: torch.device, engines_dir: Path | None = None,
        int8: bool = False,
    ) -> TensorRTTransforms:
        """Use the engines in `engines_dir` (from `imgcomp export --format tensorrt`), or build
        them once into the cache (minutes on a Jetson)."""
        if engines_dir is None or not (engines_dir / f"{model}.analysis.engine").exists():
            engines_dir = build_once(
                _engine_dir(model, model_hash, int8), lambda tmp: build_engines(net, model, model_hash, tmp, int8=int8)
            )
        name = "tensorrt-int8" if int8 else "tensorrt"
        return cls(net, engines_dir / f"{model}.analysis.engine", engines_dir / f"{model}.synthesis.engine", name)

    def analyse(self, x: Tensor, level_index: int) -> tuple[Tensor, Tensor | None]:
        outputs = self._analysis(x=x.float().cuda(), gain=self._gain[level_index])
        device = next(self.net.parameters()).device
        y = outputs[0].to(device)
        return y, (outputs[1].to(device) if len(outputs) > 1 else None)

    def synthesise(self, y_hat: Tensor, level_index: int) -> Tensor:
        (x_hat,) = self._synthesis(y_hat=y_hat.float().cuda(), inverse_gain=self._inverse_gain[level_index])
        return x_hat.to(y_hat.device)
