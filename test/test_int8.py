"""Low-precision encoders and decoders: INT8 graphs (ONNX Runtime static quantization) and
OpenVINO, against the float backends, on real images.

What must hold exactly: a payload written by any encoder, INT8 included, entropy-decodes on every
float decoder (torch, ONNX Runtime) to the very latent its encoder quantized, because the coder's
tables come from the integer hyperprior and the coded z alone. What may differ: the INT8
encoder's latent (a few symbols round differently) and the INT8 decoder's pixels (bounded here;
docs/cpu.md has the measured rate-distortion cost).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from imgcomp import Codec
from imgcomp.data.sources import VALIDATION_STEMS
from imgcomp.inference.graphs import META_HASH, read_graph_identity, subpixel_convolution
from imgcomp.inference.quantize import CALIBRATION_FILE, META_QUANT, QUANT_FORMAT, calibration_frames
from imgcomp.inference.openvino_backend import openvino_unavailable_reason
from imgcomp.inference.errors import BackendUnavailable
from imgcomp.stream.backend import resolve_backend

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
HAS_OPENVINO_BF16 = HAS_OPENVINO and openvino_unavailable_reason("bf16") is None


@pytest.fixture(scope="module", autouse=True)
def _private_cache(tmp_path_factory):
    import os

    old = os.environ.get("IMGCOMP_CACHE")
    os.environ["IMGCOMP_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("IMGCOMP_CACHE", None)
    else:
        os.environ["IMGCOMP_CACHE"] = old


@pytest.fixture(scope="module")
def codecs(one_torch_thread) -> dict[str, Codec]:
    names = ["torch", "onnxruntime", "onnxruntime-int8"] + (["openvino-int8"] if HAS_OPENVINO else []) + (
        ["openvino-bf16"] if HAS_OPENVINO_BF16 else [])
    return {b: Codec("hyperprior-mse", backend=b, threads=1) for b in names}


def test_subpixel_convolution_is_the_transposed_convolution() -> None:
    torch.manual_seed(0)
    deconv = nn.ConvTranspose2d(6, 5, 5, stride=2, padding=2, output_padding=1)
    x = torch.randn(2, 6, 7, 9)
    with torch.no_grad():
        assert torch.allclose(subpixel_convolution(deconv)(x), deconv(x), atol=1e-5)
    with pytest.raises(ValueError, match="5x5 stride-2"):
        subpixel_convolution(nn.ConvTranspose2d(6, 5, 3, stride=2, padding=1, output_padding=1))


def test_calibration_frames_come_from_the_training_split() -> None:
    frames = calibration_frames()
    assert frames.dtype == np.uint8 and frames.ndim == 4 and len(frames) >= 8
    with np.load(CALIBRATION_FILE) as data:
        sources = [str(s) for s in data["sources"]]
    assert len(sources) == len(frames)
    # training images are named <stem>_s<k> (photos) or video-<clip>-<frame>; never a validation photo
    stems = {s.rsplit("_s", 1)[0] for s in sources}
    assert not stems & set(VALIDATION_STEMS), stems & set(VALIDATION_STEMS)


def test_int8_graphs_are_quantized_and_stamped(codecs) -> None:
    sessions = codecs["onnxruntime-int8"].transforms.sessions
    for role, session in sessions.items():
        meta = session.get_modelmeta().custom_metadata_map
        assert meta[META_HASH] == codecs["torch"].model_hash and meta[META_QUANT] == QUANT_FORMAT
    # the INT8 analysis holds QDQ pairs and int8 weights; the image output of the synthesis stays float
    path = codecs["onnxruntime-int8"].transforms.graph_paths["analysis"]
    graph = onnx.load(str(path))
    ops = [n.op_type for n in graph.graph.node]
    assert ops.count("QuantizeLinear") >= 5 and ops.count("DequantizeLinear") >= 10
    assert any(init.data_type == onnx.TensorProto.INT8 for init in graph.graph.initializer)
    assert read_graph_identity(path)[META_HASH] == codecs["torch"].model_hash


def test_low_precision_payloads_decode_exactly_on_the_float_decoders(codecs, real_images) -> None:
    floats = [codecs["torch"], codecs["onnxruntime"]]
    encoders = [b for b in codecs if b not in ("torch", "onnxruntime")]
    differing = symbols = 0
    for name, image in real_images.items():
        for quality in (1, 4, 6):
            _, float_latent = codecs["onnxruntime"].encode_with_latent(image, quality=quality)
            for backend in encoders:
                payload, latent = codecs[backend].encode_with_latent(image, quality=quality)
                for decoder in floats + [codecs[backend]]:
                    decoded = decoder.decode_y_hat(decoder.parse(payload))
                    assert torch.equal(decoded, latent), (name, quality, backend, type(decoder.transforms).__name__)
                    assert decoder.decode(payload).shape == image.shape
                if backend.endswith("int8"):
                    differing += int((latent != float_latent).sum())
                    symbols += latent.numel()
    # the INT8 analysis is not the float one (else this test would prove nothing) but close to it
    assert 0 < differing < 0.1 * symbols, (differing, symbols)


def test_int8_synthesis_stays_near_the_float_pixels(codecs, real_images) -> None:
    image = real_images["fruits"]
    payload = codecs["torch"].encode(image, quality=4)
    reference = codecs["onnxruntime"].decode(payload).astype(np.int16)
    for backend in [b for b in codecs if b.endswith("int8")]:
        pixels = codecs[backend].decode(payload).astype(np.int16)
        mse = float(np.mean((pixels - reference) ** 2))
        assert 0 < mse and 10 * np.log10(255**2 / mse) > 30, (backend, mse)


def test_int8_and_openvino_backends_resolve() -> None:
    assert resolve_backend("onnxruntime-int8").used == "onnxruntime-int8"
    choice = resolve_backend("openvino-int8")
    assert choice.used == ("openvino-int8" if HAS_OPENVINO else "onnxruntime-int8")
    # bfloat16 where the CPU has it (AVX-512 BF16, AMX), else OpenVINO's float32 kernels, with the reason
    bf16 = resolve_backend("openvino-bf16")
    if HAS_OPENVINO_BF16:
        assert bf16.used == "openvino-bf16" and not bf16.fell_back
    elif HAS_OPENVINO:
        assert bf16.used == "openvino" and "no bf16 on this CPU" in bf16.reason
    else:
        assert bf16.used == "onnxruntime"
    trt = resolve_backend("tensorrt-int8")
    if trt.fell_back:
        assert trt.used == "onnxruntime-int8"
    with pytest.raises(ValueError, match="threads"):
        Codec("factorized-mse", threads=-1)


@pytest.mark.skipif(HAS_OPENVINO_BF16 or not HAS_OPENVINO, reason="needs OpenVINO on a CPU without bfloat16")
def test_openvino_bf16_without_bf16_units_says_so_instead_of_running() -> None:
    with pytest.raises(BackendUnavailable, match="no bf16 on this CPU"):
        Codec("hyperprior-mse", backend="openvino-bf16", threads=1)
