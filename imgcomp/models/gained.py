"""Entropy-coded learned codecs with several rate points in one network.

Ballé et al.'s factorized prior (ICLR 2017) and scale hyperprior (ICLR 2018), built from
CompressAI's GDN layers, entropy models and rANS coder (driven through
`imgcomp.models.entropy_coding`, which keeps every decode inside its input). Each quality level has its own learned
channel gain applied to the latent before quantization and its inverse after (Cui et al.,
"Asymmetric Gained Deep Image Compression", CVPR 2021). One set of weights therefore covers every
rate point, and the encoder can change quality per frame without loading anything.

Interfaces follow CompressAI: ``forward(x, level_index) -> {"x_hat", "likelihoods"}``,
``compress(x, level_index) -> {"strings", "shape"}``, ``decompress(strings, shape, level_index) -> {"x_hat"}``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import warnings

import numpy as np
import torch
from torch import Tensor, nn

with warnings.catch_warnings():
    # torch_geometric, imported by CompressAI, warns about torch.jit.script at import time: every
    # node start printed it. Scoped to this import; nothing of ours uses torch.jit.
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated", category=FutureWarning)
    from compressai.entropy_models import EntropyBottleneck, GaussianConditional
    from compressai.layers import GDN
    from compressai.models.base import CompressionModel, get_scale_table
    from compressai.models.utils import conv, deconv

from imgcomp.models import entropy_coding
from imgcomp.models.integer_prior import IntegerHyperSynthesis
from imgcomp.models.fixed_rate import Autoencoder, CycleGAN, LossyCAE


@dataclass(frozen=True)
class ArchConfig:
    """Architecture hyper-parameters; stored in every checkpoint."""

    family: str  # "factorized" or "hyperprior"
    channels: int = 64  # N: width of the analysis/synthesis transforms
    latent_channels: int = 128  # M: channels of the coded latent y
    hyper_channels: int = 48  # width of the hyper transforms (hyperprior only)
    levels: int = 6  # number of quality levels (gain vectors)
    lambdas: tuple[float, ...] = field(default=())  # training lambda per level, for the record
    # Width of a residual block in g_s at 1/2 resolution (0: none). It starts as the identity, so
    # a model with it starts exactly where the same model without it is (`init_from`).
    refine_channels: int = 0


def analysis_transform(n: int, m: int) -> nn.Sequential:
    return nn.Sequential(conv(3, n), GDN(n), conv(n, n), GDN(n), conv(n, n), GDN(n), conv(n, m))


class ResidualRefinement(nn.Module):
    """x + conv3x3(relu(conv3x3(x))), the last conv zero-initialised: the identity at init."""

    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(torch.relu(self.conv1(x)))


def synthesis_transform(n: int, m: int, refine_channels: int = 0) -> nn.Sequential:
    layers = [
        deconv(m, n), GDN(n, inverse=True), deconv(n, n), GDN(n, inverse=True),
        deconv(n, n), GDN(n, inverse=True), deconv(n, 3),
    ]
    named = [(str(i), layer) for i, layer in enumerate(layers)]
    if refine_channels:
        # Named "refine" (not "6") so that layers 0-6 keep the state-dict keys of the model
        # without it: `init_from` loads them unchanged.
        named.insert(6, ("refine", ResidualRefinement(n, refine_channels)))
    return nn.Sequential(OrderedDict(named))


def extrapolate_levels(vectors: Tensor, levels: int) -> Tensor:
    """(L, C) per-level gain vectors -> (levels, C): each extra row is the last row times the
    median over channels of the last two rows' ratio (geometric extrapolation, as the lambdas of
    the new levels continue). One ratio for all channels: per-channel ratios of hyperprior-mse's
    gains reach x700 in a few channels and made the extrapolated levels' loss overflow."""
    if levels <= vectors.shape[0]:
        return vectors[:levels].clone()
    last = vectors[-1].abs()
    ratio = (last / vectors[-2].abs()).median()
    extra = [last * ratio ** (k + 1) for k in range(levels - vectors.shape[0])]
    return torch.cat([vectors, torch.stack(extra)])


def _bottleneck_indexes(bottleneck: EntropyBottleneck, shape: tuple[int, int]) -> np.ndarray:
    channels = bottleneck._quantized_cdf.size(0)
    return np.broadcast_to(np.arange(channels)[:, None, None], (channels, *shape))


def encode_bottleneck(bottleneck: EntropyBottleneck, x: Tensor, add_medians: bool = True) -> tuple[list[bytes], Tensor]:
    """x (B, C, H, W) -> one string per batch item, and the decoder's view of x: the quantized
    values (+ medians when `add_medians`; else the integer symbols), float64 on x's device."""
    tables = entropy_coding.closed_tables(bottleneck)
    medians = bottleneck._get_medians().detach().reshape(1, -1, 1, 1).to(torch.float64)
    symbols = torch.round(x.detach().to(torch.float64) - medians.to(x.device)).cpu()
    indexes = _bottleneck_indexes(bottleneck, tuple(x.shape[-2:]))
    strings, decoded = [], []
    for symbols_i in symbols:
        string, values = entropy_coding.clamp_and_encode(symbols_i.to(torch.int64).numpy(), indexes, tables)
        strings.append(string)
        decoded.append(torch.from_numpy(values))
    out = torch.stack(decoded).to(device=x.device, dtype=torch.float64)
    return strings, out + medians.to(x.device) if add_medians else out


def decode_bottleneck(bottleneck: EntropyBottleneck, strings: list[bytes], shape: tuple[int, int], add_medians: bool = True) -> Tensor:
    """`encode_bottleneck`'s second output, from its strings (float64, on the bottleneck's device)."""
    tables = entropy_coding.closed_tables(bottleneck)
    indexes = _bottleneck_indexes(bottleneck, tuple(shape))
    values = torch.from_numpy(np.stack([entropy_coding.decode(s, indexes, tables) for s in strings])).to(torch.float64)
    device = bottleneck.quantiles.device
    if not add_medians:
        return values.to(device)
    return values.to(device) + bottleneck._get_medians().detach().reshape(1, -1, 1, 1).to(device=device, dtype=torch.float64)


class GainedCodec(CompressionModel):
    """Shared parts: transforms, per-level gains, level validation."""

    downsampling: int = 16  # the input is padded to a multiple of this
    compress_stream_names: tuple[str, ...] = ("y",)

    def __init__(self, arch: ArchConfig) -> None:
        super().__init__()
        self.arch = arch
        self.g_a = analysis_transform(arch.channels, arch.latent_channels)
        self.g_s = synthesis_transform(arch.channels, arch.latent_channels, arch.refine_channels)
        # Spread initial gains so the levels start at different rates (log-spaced, x16 overall).
        init = torch.logspace(-1.0, 0.2, arch.levels, base=10.0)[:, None].repeat(1, arch.latent_channels)
        self.gain = nn.Parameter(init.clone())
        self.inverse_gain = nn.Parameter(1.0 / init)

    @property
    def levels(self) -> int:
        return self.arch.levels

    def _gains(self, level_index: Tensor | int, batch: int) -> tuple[Tensor, Tensor]:
        index = torch.as_tensor(level_index, device=self.gain.device).long().reshape(-1)
        if index.numel() == 1:
            index = index.expand(batch)
        if index.numel() != batch or bool(((index < 0) | (index >= self.levels)).any()):
            raise ValueError(f"level index (0-based) must be in [0, {self.levels - 1}], got {level_index}")
        gain = self.gain.abs()[index][:, :, None, None]
        inverse = self.inverse_gain.abs()[index][:, :, None, None]
        return gain, inverse

    def analyse(self, x: Tensor, level_index: Tensor | int) -> Tensor:
        """Gained latent y (not yet quantized)."""
        gain, _ = self._gains(level_index, x.shape[0])
        return self.g_a(x) * gain

    def analyse_for_coding(self, x: Tensor, level_index: Tensor | int) -> tuple[Tensor, Tensor | None]:
        """What the entropy coder needs from the image: y, and z for a hyperprior (else None).

        This is the part an exported graph (ONNX Runtime, TensorRT) can compute in place of torch;
        `compress_analysed` does the rest, identically for every backend."""
        return self.analyse(x, level_index), None

    def compress(self, x: Tensor, level_index: int) -> dict:
        return self.compress_analysed(*self.analyse_for_coding(x, level_index))

    def hyper_analyse(self, y: Tensor) -> Tensor | None:
        """z from y (None: no hyperprior); `analyse_for_coding` is `analyse` then this."""
        return None

    def compress_analysed(self, y: Tensor, z: Tensor | None) -> dict:
        raise NotImplementedError

    def synthesise(self, y_hat: Tensor, level_index: Tensor | int) -> Tensor:
        _, inverse = self._gains(level_index, y_hat.shape[0])
        return self.g_s(y_hat * inverse)

    def latent_features(self, y_hat: Tensor, level_index: Tensor | int) -> Tensor:
        """The de-gained quantized latent: what a perception head reads instead of pixels."""
        _, inverse = self._gains(level_index, y_hat.shape[0])
        return y_hat * inverse


class FactorizedPrior(GainedCodec):
    def __init__(self, arch: ArchConfig) -> None:
        super().__init__(arch)
        self.entropy_bottleneck = EntropyBottleneck(arch.latent_channels)

    def forward(self, x: Tensor, level_index: Tensor | int) -> dict:
        y = self.analyse(x, level_index)
        y_hat, y_likelihoods = self.entropy_bottleneck(y)
        return {"x_hat": self.synthesise(y_hat, level_index), "likelihoods": {"y": y_likelihoods}}

    def compress_analysed(self, y: Tensor, z: Tensor | None = None) -> dict:
        strings, y_hat = encode_bottleneck(self.entropy_bottleneck, y)
        return {"strings": [strings], "shape": tuple(y.shape[-2:]), "y_hat": y_hat.to(y.dtype)}

    def decompress_latent(self, strings: list[list[bytes]], shape: tuple[int, int]) -> Tensor:
        return decode_bottleneck(self.entropy_bottleneck, strings[0], shape).float()

    def decompress(self, strings: list[list[bytes]], shape: tuple[int, int], level_index: int) -> dict:
        y_hat = self.decompress_latent(strings, shape)
        return {"x_hat": self.synthesise(y_hat, level_index).clamp_(0, 1)}


class ScaleHyperprior(GainedCodec):
    downsampling = 64  # g_a (x16) then h_a (x4)
    compress_stream_names = ("y", "z")

    def __init__(self, arch: ArchConfig) -> None:
        super().__init__(arch)
        m, h = arch.latent_channels, arch.hyper_channels
        self.h_a = nn.Sequential(
            conv(m, h, stride=1, kernel_size=3), nn.ReLU(inplace=True),
            conv(h, h), nn.ReLU(inplace=True), conv(h, h),
        )
        self.h_s = nn.Sequential(
            deconv(h, h), nn.ReLU(inplace=True), deconv(h, h), nn.ReLU(inplace=True),
            conv(h, m, stride=1, kernel_size=3), nn.ReLU(inplace=True),
        )
        self.entropy_bottleneck = EntropyBottleneck(h)
        self.gaussian_conditional = GaussianConditional(None)

    def forward(self, x: Tensor, level_index: Tensor | int) -> dict:
        y = self.analyse(x, level_index)
        z = self.h_a(torch.abs(y))
        z_hat, z_likelihoods = self.entropy_bottleneck(z)
        scales_hat = self.h_s(z_hat)
        y_hat, y_likelihoods = self.gaussian_conditional(y, scales_hat)
        return {"x_hat": self.synthesise(y_hat, level_index), "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    def update(self, scale_table: Tensor | None = None, force: bool = False, update_quantiles: bool = False) -> bool:
        return super().update(scale_table if scale_table is not None else get_scale_table(), force, update_quantiles)

    # Entropy coding. The Gaussian scale indexes of y are what encoder and decoder must agree on
    # bit for bit, so both compute them with the integer hyper-synthesis from the integer z
    # symbols (never from float scales, which differ across devices, dtypes and thread counts).
    # Training (`forward`) keeps the float h_s.
    def integer_prior(self) -> IntegerHyperSynthesis:
        """The exact fixed-point h_s, converted from the current float weights.

        Kept between calls and rebuilt whenever a tensor it is built from changes (training
        steps and `load_state_dict` bump a tensor's version, `.to()` makes new storage), so it is
        never stale; the conversion itself is deterministic (see `IntegerHyperSynthesis`)."""
        sources = [*self.h_s.parameters(), self.entropy_bottleneck.quantiles, self.gaussian_conditional.scale_table,
                   self.gaussian_conditional.lower_bound_scale.bound]
        # The cache holds the source tensors themselves, so identity and version say whether any changed.
        versions = [t._version for t in sources]
        cached = self.__dict__.get("_integer_prior_cache")
        if cached is None or len(cached[0]) != len(sources) or any(
            a is not b for a, b in zip(cached[0], sources)
        ) or cached[1] != versions:
            prior = IntegerHyperSynthesis.from_float(
                self.h_s,
                self.entropy_bottleneck._get_medians().detach(),
                self.gaussian_conditional.scale_table,
                self.gaussian_conditional.lower_bound_scale.bound,
            )
            self.__dict__["_integer_prior_cache"] = cached = (sources, versions, prior)
        return cached[2]

    def _decode_z_symbols(self, z_strings: list[bytes], shape: tuple[int, int]) -> Tensor:
        """The integer z symbols round(z - median) coded in `z_strings` (float64, model device)."""
        return decode_bottleneck(self.entropy_bottleneck, z_strings, shape, add_medians=False)

    def hyper_analyse(self, y: Tensor) -> Tensor | None:
        return self.h_a(torch.abs(y))

    def analyse_for_coding(self, x: Tensor, level_index: Tensor | int) -> tuple[Tensor, Tensor | None]:
        y = self.analyse(x, level_index)
        return y, self.hyper_analyse(y)

    def compress_analysed(self, y: Tensor, z: Tensor | None) -> dict:
        if z is None:
            raise ValueError("a scale hyperprior needs the hyper-latent z")
        # The decoder's view of z: exactly the (clamped) symbols just written.
        z_strings, z_symbols = encode_bottleneck(self.entropy_bottleneck, z, add_medians=False)
        indexes = self.integer_prior().indexes(z_symbols.to(torch.float64))
        tables = entropy_coding.closed_tables(self.gaussian_conditional)
        y_strings, y_hats = [], []
        for y_i, index_i in zip(y.detach().cpu(), indexes.cpu().numpy()):
            string, values = entropy_coding.clamp_and_encode(torch.round(y_i).to(torch.int64).numpy(), index_i, tables)
            y_strings.append(string)
            y_hats.append(torch.from_numpy(values))
        y_hat = torch.stack(y_hats).to(device=y.device, dtype=y.dtype)
        return {"strings": [y_strings, z_strings], "shape": tuple(z.shape[-2:]), "y_hat": y_hat}

    def decompress_latent(self, strings: list[list[bytes]], shape: tuple[int, int]) -> Tensor:
        indexes = self.integer_prior().indexes(self._decode_z_symbols(strings[1], tuple(shape))).cpu().numpy()
        if len(strings[0]) != indexes.shape[0]:
            raise ValueError(f"{len(strings[0])} y strings for {indexes.shape[0]} z strings")
        tables = entropy_coding.closed_tables(self.gaussian_conditional)
        values = [entropy_coding.decode(s, index_i, tables) for s, index_i in zip(strings[0], indexes)]
        return torch.from_numpy(np.stack(values)).to(device=self.entropy_bottleneck.quantiles.device, dtype=torch.float32)

    def decompress(self, strings: list[list[bytes]], shape: tuple[int, int], level_index: int) -> dict:
        y_hat = self.decompress_latent(strings, shape)
        return {"x_hat": self.synthesise(y_hat, level_index).clamp_(0, 1)}


FAMILIES: dict[str, type[nn.Module]] = {
    "factorized": FactorizedPrior,
    "hyperprior": ScaleHyperprior,
    "autoencoder": Autoencoder,
    "lossy-cae": LossyCAE,
    "cyclegan": CycleGAN,
}


def build_model(arch: ArchConfig) -> nn.Module:
    try:
        return FAMILIES[arch.family](arch)
    except KeyError:
        raise ValueError(f"unknown model family {arch.family!r}; known: {sorted(FAMILIES)}") from None
