"""Export a shipped model's transforms as ONNX graphs with dynamic batch, height and width.

Two graphs per model:

* ``<model>.analysis.onnx``: ``x`` (N x 3 x H x W, 0..1, H and W multiples of the model's
  ``downsampling``) and ``gain`` (1 x M x 1 x 1, the level's gain vector) -> ``y`` (the gained
  latent) and, for a hyperprior, ``z`` (the hyper-latent);
* ``<model>.synthesis.onnx``: ``y_hat`` and ``inverse_gain`` -> ``x_hat`` (not clamped).

The gains are inputs rather than baked constants, so one graph serves every quality level and the
level can change per frame. Entropy coding stays outside the graphs (see `imgcomp.inference`).
Each file carries the model name and the sha256 of the weights it came from in its metadata; a
backend refuses graphs made from other weights.

The graphs compute what the torch modules compute, in a form that CPU runtimes run fast and
quantize well (`imgcomp.inference.quantize`): GDN squares with a multiplication (a generic `Pow`
kernel is several times slower), and every 5x5 stride-2 transposed convolution of the synthesis
becomes a 3x3 convolution with four output channels per channel followed by `DepthToSpace`
(`subpixel_convolution`: the same sums, so the same image up to float rounding), because ONNX
Runtime and OpenVINO have no fast INT8 transposed convolution.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch
from compressai.layers import GDN
from torch import Tensor, nn

from imgcomp.models.gained import GainedCodec, ScaleHyperprior

GRAPH_FORMAT = "2"  # bump when the graphs change: 2 = GDN with x*x, deconvolutions as sub-pixel convolutions
OPSET = 17
META_MODEL, META_HASH, META_FORMAT = "imgcomp_model", "imgcomp_weights_sha256", "imgcomp_graph_format"


class FrozenGDN(nn.Module):
    """CompressAI's GDN with its reparametrized beta and gamma computed once.

    The training-time reparametrization uses a custom autograd function that ONNX cannot
    export; the arithmetic of the forward pass is the same as `compressai.layers.GDN`."""

    def __init__(self, gdn: GDN) -> None:
        super().__init__()
        channels = gdn.beta.shape[0]
        self.inverse = bool(gdn.inverse)
        with torch.no_grad():
            self.register_buffer("beta", gdn.beta_reparam(gdn.beta).detach().clone())
            self.register_buffer("gamma", gdn.gamma_reparam(gdn.gamma).detach().clone().reshape(channels, channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        norm = nn.functional.conv2d(x * x, self.gamma, self.beta)
        return x * torch.sqrt(norm) if self.inverse else x / torch.sqrt(norm)


# Transposed convolution, kernel 5, stride 2, padding 2, output padding 1: output row 2a + r takes
# input rows a - 1, a, a + 1 (3x3 taps j = 0, 1, 2) through kernel row _PHASE_TAPS[r][j].
_PHASE_TAPS = {0: (4, 2, 0), 1: (None, 3, 1)}


def subpixel_convolution(deconv: nn.ConvTranspose2d) -> nn.Sequential:
    """The same map as `deconv` (5x5, stride 2, padding 2, output padding 1) as a 3x3 convolution
    with 4 x out channels (one per output phase) and a pixel shuffle (ONNX `DepthToSpace`)."""
    if (deconv.kernel_size, deconv.stride, deconv.padding, deconv.output_padding, deconv.groups) != (
        (5, 5), (2, 2), (2, 2), (1, 1), 1
    ):
        raise ValueError(f"only 5x5 stride-2 transposed convolutions are rewritten, got {deconv}")
    w = deconv.weight.detach()  # (in, out, 5, 5)
    cin, cout = w.shape[:2]
    phased = torch.zeros(cout, 4, cin, 3, 3, dtype=w.dtype)  # pixel_shuffle's channel order: (c, ry, rx)
    for ry in (0, 1):
        for rx in (0, 1):
            for jy, ky in enumerate(_PHASE_TAPS[ry]):
                for jx, kx in enumerate(_PHASE_TAPS[rx]):
                    if ky is not None and kx is not None:
                        phased[:, 2 * ry + rx, :, jy, jx] = w[:, :, ky, kx].t()
    conv = nn.Conv2d(cin, 4 * cout, 3, padding=1, bias=deconv.bias is not None)
    with torch.no_grad():
        conv.weight.copy_(phased.reshape(4 * cout, cin, 3, 3))
        if deconv.bias is not None:
            conv.bias.copy_(deconv.bias.detach().repeat_interleave(4))
    return nn.Sequential(conv, nn.PixelShuffle(2))


def _frozen(seq: nn.Sequential) -> nn.Sequential:
    layers: list[nn.Module] = []
    for m in seq:
        if isinstance(m, GDN):
            layers.append(FrozenGDN(m))
        elif isinstance(m, nn.ConvTranspose2d):
            layers.append(subpixel_convolution(m))
        else:
            layers.append(m)
    return nn.Sequential(*layers)


class AnalysisGraph(nn.Module):
    def __init__(self, net: GainedCodec) -> None:
        super().__init__()
        self.g_a = _frozen(net.g_a)
        self.h_a = net.h_a if isinstance(net, ScaleHyperprior) else None

    def forward(self, x: Tensor, gain: Tensor) -> tuple[Tensor, ...]:
        y = self.g_a(x) * gain
        if self.h_a is None:
            return (y,)
        return y, self.h_a(torch.abs(y))


class SynthesisGraph(nn.Module):
    def __init__(self, net: GainedCodec) -> None:
        super().__init__()
        self.g_s = _frozen(net.g_s)

    def forward(self, y_hat: Tensor, inverse_gain: Tensor) -> Tensor:
        return self.g_s(y_hat * inverse_gain)


def graph_paths(out_dir: Path, model: str) -> tuple[Path, Path]:
    return out_dir / f"{model}.analysis.onnx", out_dir / f"{model}.synthesis.onnx"


def read_graph_identity(path: Path) -> dict[str, str]:
    """The imgcomp metadata of an exported graph (model, weights hash, graph format)."""
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def _stamp(path: Path, model: str, model_hash: str) -> None:
    graph = onnx.load(str(path))
    for key, value in ((META_MODEL, model), (META_HASH, model_hash), (META_FORMAT, GRAPH_FORMAT)):
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(graph)
    onnx.save(graph, str(path))


@torch.no_grad()
def export_onnx(net: GainedCodec, model: str, model_hash: str, out_dir: Path) -> tuple[Path, Path]:
    """Write the analysis and synthesis graphs of `net` into `out_dir`; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    net = net.to("cpu").eval()
    d, m = net.downsampling, net.arch.latent_channels
    x = torch.rand(1, 3, 2 * d, 3 * d)
    gain = net.gain.abs()[0].reshape(1, m, 1, 1).detach()
    y = net.analyse(x, 0)
    analysis_path, synthesis_path = graph_paths(out_dir, model)
    hyper = isinstance(net, ScaleHyperprior)
    image_axes = {0: "batch", 2: "height", 3: "width"}
    latent_axes = {0: "batch", 2: "latent_height", 3: "latent_width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            AnalysisGraph(net).eval(), (x, gain), str(analysis_path),
            input_names=["x", "gain"], output_names=["y", "z"] if hyper else ["y"],
            dynamic_axes={"x": image_axes, "y": latent_axes, **({"z": {0: "batch", 2: "hyper_height", 3: "hyper_width"}} if hyper else {})},
            opset_version=OPSET, dynamo=False,
        )
        torch.onnx.export(
            SynthesisGraph(net).eval(), (y, 1.0 / gain), str(synthesis_path),
            input_names=["y_hat", "inverse_gain"], output_names=["x_hat"],
            dynamic_axes={"y_hat": latent_axes, "x_hat": image_axes},
            opset_version=OPSET, dynamo=False,
        )
    for path in (analysis_path, synthesis_path):
        _stamp(path, model, model_hash)
    return analysis_path, synthesis_path
