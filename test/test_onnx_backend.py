"""The ONNX Runtime backend against the torch backend, on real images.

Decoding must be exact across backends: a payload written by either is entropy-decoded to the
same latent by either (the coder's tables come from the integer hyperprior, never from the
backend's floats). Encoding runs the analysis transform in two float implementations that differ
by ~1e-6, so a latent value sitting on a rounding boundary could in principle round apart; the
test measures how often whole payloads are identical and bounds the symbols that differ.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imgcomp import Codec
from imgcomp.inference.graphs import GRAPH_FORMAT, META_HASH, export_onnx, graph_paths, read_graph_identity
from imgcomp.inference.onnx_backend import GraphMismatchError, OnnxRuntimeTransforms
from imgcomp.models.registry import load_model
from imgcomp.stream.backend import codec_factory, resolve_backend

MODELS = ("hyperprior-mse", "factorized-mse")


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
def codec_pairs() -> dict[str, tuple[Codec, Codec]]:
    return {m: (Codec(m), Codec(m, backend="onnxruntime")) for m in MODELS}


@pytest.mark.parametrize("model", MODELS)
def test_payloads_decode_exactly_across_backends(codec_pairs, real_images, model) -> None:
    torch_codec, ort_codec = codec_pairs[model]
    identical = total = 0
    differing_symbols = all_symbols = 0
    for name, image in real_images.items():
        for quality in (1, 3, torch_codec.levels):
            from_torch, torch_latent = torch_codec.encode_with_latent(image, quality=quality)
            from_ort, ort_latent = ort_codec.encode_with_latent(image, quality=quality)
            total += 1
            identical += from_torch == from_ort
            differing_symbols += int((torch_latent != ort_latent).sum())
            all_symbols += torch_latent.numel()
            # Either payload is entropy-decoded to the same latent by either backend, and that
            # latent is exactly what its encoder quantized.
            for payload, latent in ((from_torch, torch_latent), (from_ort, ort_latent)):
                for decoder in (torch_codec, ort_codec):
                    assert torch.equal(decoder.decode_y_hat(decoder.parse(payload)), latent), (name, quality)
            # Pixels: same latent, two float synthesis implementations -> at most 1 level apart.
            a, b = torch_codec.decode(from_ort), ort_codec.decode(from_ort)
            assert a.shape == b.shape == image.shape
            assert int(np.abs(a.astype(int) - b.astype(int)).max()) <= 1, (name, quality)
    assert identical >= 0.9 * total, f"only {identical}/{total} payloads identical"
    assert differing_symbols <= 1e-5 * all_symbols, (differing_symbols, all_symbols)


def test_odd_sizes_and_mono_through_onnx(codec_pairs, real_images) -> None:
    _, ort_codec = codec_pairs["hyperprior-mse"]
    image = real_images["astronaut_odd"]
    for crop in (image[:37, :91], image[:, :, 0], image[:130, :65]):
        out = ort_codec.decode(ort_codec.encode(crop))
        assert out.shape == crop.shape and out.dtype == np.uint8


def test_exported_graphs_carry_their_weights_hash(tmp_path) -> None:
    net, model_hash = load_model("factorized-mse")
    analysis, synthesis = export_onnx(net, "factorized-mse", model_hash, tmp_path)
    assert (analysis, synthesis) == graph_paths(tmp_path, "factorized-mse")
    for path in (analysis, synthesis):
        assert read_graph_identity(path)[META_HASH] == model_hash
    # Graphs exported from other weights are refused, naming both hashes.
    export_onnx(net, "factorized-mse", "f" * 64, tmp_path / "other")
    other_analysis, other_synthesis = graph_paths(tmp_path / "other", "factorized-mse")
    with pytest.raises(GraphMismatchError, match=f"ffffffffffff.*{model_hash[:12]}"):
        OnnxRuntimeTransforms(net, other_analysis, other_synthesis, model_hash, torch.device("cpu"))


def test_graphs_are_exported_once_into_the_cache(real_images) -> None:
    from imgcomp.inference.cache import model_cache_dir

    codec = Codec("factorized-mse", backend="onnxruntime")
    folder = model_cache_dir(f"onnx-v{GRAPH_FORMAT}", "factorized-mse", codec.model_hash)
    analysis, _ = graph_paths(folder, "factorized-mse")
    stamp = analysis.stat().st_mtime_ns
    again = Codec("factorized-mse", backend="onnxruntime")
    assert analysis.stat().st_mtime_ns == stamp
    assert again.decode(codec.encode(real_images["fruits"])).shape == real_images["fruits"].shape


def test_backend_choice_and_factory_fallback(tmp_path) -> None:
    assert resolve_backend("onnxruntime").used == "onnxruntime"
    trt = resolve_backend("tensorrt")
    if trt.fell_back:
        assert trt.used == "onnxruntime" and ("tensorrt" in trt.reason or "CUDA" in trt.reason)
    # A graphs folder holding graphs of other weights: the factory logs why and serves with torch.
    net, _ = load_model("factorized-mse")
    export_onnx(net, "factorized-mse", "0" * 64, tmp_path)
    lines: list[str] = []
    codec = codec_factory("onnxruntime", "cpu", lines.append, str(tmp_path))("factorized-mse")
    assert codec.backend == "torch"
    assert len(lines) == 1 and "GraphMismatchError" in lines[0] and "using 'torch'" in lines[0]
    assert codec_factory("onnxruntime", "cpu", lines.append)("factorized-mse").backend == "onnxruntime"


def test_export_cli(tmp_path, capsys) -> None:
    from imgcomp.cli.main import main

    assert main(["export", "--model", "factorized-mse", "--out", str(tmp_path)]) == 0
    assert all(p.exists() for p in graph_paths(tmp_path, "factorized-mse"))
    from imgcomp.inference.tensorrt_backend import tensorrt_unavailable_reason

    reason = tensorrt_unavailable_reason()
    if reason is None:
        pytest.skip("TensorRT is usable here: engine building is checked on the device")
    assert main(["export", "--model", "factorized-mse", "--format", "tensorrt", "--out", str(tmp_path / "trt")]) == 2
    assert "cannot build TensorRT engines here" in capsys.readouterr().err
