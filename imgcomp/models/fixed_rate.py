"""The study's three model families (seed slides), rebuilt behind the same `Codec` interface.

* ``autoencoder``: image -> one 8-bit "compressed image" at 1/4 of the width and height -> image.
* ``lossy-cae``: image -> n binary feature maps at 1/4 resolution (stochastic binarization while
  training, the sign at inference) -> image.
* ``cyclegan``: generator G: image -> RGB "compressed image" at 1/2 resolution, F: back, with two
  discriminators while training (`imgcomp.training.fixed_rate`).

Unlike the study, whose features were pickled raw, the features are coded losslessly
(`feature_coding`) inside the usual versioned container. Each model has one quality level: its
rate is fixed by the feature size, and the lossless coder only removes redundancy.

No layer normalises with per-image statistics, so the networks are translation-equivariant up to
their stride and a large frame can be processed in overlapping tiles whose stitched output is the
whole-frame output: `tiled` does that for the Cycle-GAN (the study's 1008x1008 patches showed seams).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imgcomp.models.feature_coding import (
    decode_binary_maps,
    decode_uint8_planes,
    encode_binary_maps,
    encode_uint8_planes,
)

FIXED_RATE_FAMILIES = ("autoencoder", "lossy-cae", "cyclegan")


class _StochasticBinarize(torch.autograd.Function):
    """b = +1 with probability (1 + t) / 2, else -1; gradient passed straight through."""

    @staticmethod
    def forward(ctx, t: Tensor) -> Tensor:  # noqa: ANN001 - autograd signature
        return torch.where(torch.rand_like(t) < (1 + t) / 2, 1.0, -1.0).to(t.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # noqa: ANN001
        return grad


def binarize(t: Tensor, training: bool) -> Tensor:
    """Toderici et al.'s binarizer for t in [-1, 1]: stochastic in training, sign at inference."""
    if training:
        return _StochasticBinarize.apply(t)
    return torch.where(t >= 0, 1.0, -1.0).to(t.dtype)


def quantize_8bit(y: Tensor) -> Tensor:
    """y in [0, 1] rounded to 256 levels; straight-through gradient."""
    return y + (torch.round(y * 255.0) / 255.0 - y).detach()


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


def _down_stack(cin: int, width: int, cout: int, stages: int) -> nn.Sequential:
    """`stages` stride-2 steps; no convolution at full resolution (the costly place on a CPU)."""
    layers: list[nn.Module] = []
    channels = cin
    for _ in range(stages):
        layers += [_conv(channels, width, stride=2), nn.ReLU(inplace=True), _conv(width, width), nn.ReLU(inplace=True)]
        channels = width
    layers.append(_conv(width, cout))
    return nn.Sequential(*layers)


def _up_stack(cin: int, width: int, cout: int, stages: int) -> nn.Sequential:
    """`stages` x2 steps (sub-pixel convolution); the last one emits the output directly."""
    layers: list[nn.Module] = [_conv(cin, width), nn.ReLU(inplace=True), _conv(width, width), nn.ReLU(inplace=True)]
    for _ in range(stages - 1):
        layers += [_conv(width, 4 * width), nn.PixelShuffle(2), nn.ReLU(inplace=True), _conv(width, width), nn.ReLU(inplace=True)]
    layers += [_conv(width, 4 * cout), nn.PixelShuffle(2)]
    return nn.Sequential(*layers)


def tiled(fn: Callable[[Tensor], Tensor], x: Tensor, tile: int, margin: int, scale: float, align: int) -> Tensor:
    """fn(x) computed over overlapping tiles of `tile` px (+ `margin` of context on each side).

    `scale` is fn's output/input size ratio and `align` the input stride every tile origin keeps
    (so tiles see the same sampling grid as the whole frame). Only each tile's centre is kept;
    with a margin beyond fn's receptive field the result equals fn(x) (tested: no seams)."""
    h, w = x.shape[-2:]
    if h <= tile + 2 * margin and w <= tile + 2 * margin:
        return fn(x)
    if tile % align or margin % align:
        raise ValueError(f"tile {tile} and margin {margin} must be multiples of {align}")
    out: Tensor | None = None
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            t0, l0 = max(top - margin, 0), max(left - margin, 0)
            t1, l1 = min(top + tile + margin, h), min(left + tile + margin, w)
            piece = fn(x[..., t0:t1, l0:l1])
            if out is None:
                out = piece.new_empty(*piece.shape[:2], round(h * scale), round(w * scale))
            ct, cl = round((top - t0) * scale), round((left - l0) * scale)
            ch, cw = round(min(tile, h - top) * scale), round(min(tile, w - left) * scale)
            out[..., round(top * scale) : round(top * scale) + ch, round(left * scale) : round(left * scale) + cw] = piece[
                ..., ct : ct + ch, cl : cl + cw
            ]
    assert out is not None
    return out


class FixedRateCodec(nn.Module):
    """What `imgcomp.codec.Codec` needs from a model, for the fixed-rate families (the seed study's autoencoder, lossy CAE and Cycle-GAN)."""

    downsampling = 4
    compress_stream_names: tuple[str, ...] = ("features",)
    levels = 1

    def __init__(self, arch) -> None:  # noqa: ANN001 - ArchConfig (import cycle)
        super().__init__()
        self.arch = arch

    # --- the parts each family defines
    def encode_features(self, x: Tensor) -> Tensor:
        """Image -> continuous features (before quantization)."""
        raise NotImplementedError

    def quantize(self, features: Tensor) -> Tensor:
        raise NotImplementedError

    def decode_features(self, features: Tensor) -> Tensor:
        raise NotImplementedError

    bits_per_value = 8  # raw size of one feature value: 8-bit images, or 1 for binary maps

    def raw_bits(self, height: int, width: int) -> int:
        """Bits of the features sent raw (what the study pickled), for a padded frame."""
        d = self.downsampling
        return self.bits_per_value * self.arch.latent_channels * (-(-height // d)) * (-(-width // d))

    def _pack(self, q: Tensor) -> bytes:
        raise NotImplementedError

    def _unpack(self, data: bytes, shape: tuple[int, int, int]) -> Tensor:
        raise NotImplementedError

    # --- training view
    def forward(self, x: Tensor, level_index: Tensor | int | None = None) -> dict:
        q = self.quantize(self.encode_features(x))
        return {"x_hat": self.decode_features(q), "features": q}

    # --- Codec interface
    def update(self, *args, **kwargs) -> bool:
        return False  # no entropy-model tables to rebuild

    def feature_shape(self, latent_hw: tuple[int, int]) -> tuple[int, int, int]:
        return (self.arch.latent_channels, *latent_hw)

    @torch.no_grad()
    def analyse_for_coding(self, x: Tensor, level_index: Tensor | int) -> tuple[Tensor, None]:
        return self.encode_features(x), None

    @torch.no_grad()
    def compress_analysed(self, y: Tensor, z: Tensor | None = None) -> dict:
        q = self.quantize(y)
        return {"strings": [[self._pack(q[0])]], "shape": tuple(q.shape[-2:]), "y_hat": q}

    @torch.no_grad()
    def compress(self, x: Tensor, level_index: int = 0) -> dict:
        return self.compress_analysed(*self.analyse_for_coding(x, level_index))

    def decompress_latent(self, strings: list[list[bytes]], shape: tuple[int, int]) -> Tensor:
        q = self._unpack(strings[0][0], self.feature_shape(tuple(shape)))
        return q[None].to(next(self.parameters()).device)

    @torch.no_grad()
    def synthesise(self, y_hat: Tensor, level_index: Tensor | int) -> Tensor:
        return self.decode_features(y_hat)

    def latent_features(self, y_hat: Tensor, level_index: Tensor | int) -> Tensor:
        return y_hat


class _EightBitFeatures(FixedRateCodec):
    def quantize(self, features: Tensor) -> Tensor:
        return quantize_8bit(features)

    def _pack(self, q: Tensor) -> bytes:
        return encode_uint8_planes(torch.round(q * 255).clamp(0, 255).to(torch.uint8).cpu().numpy())

    def _unpack(self, data: bytes, shape: tuple[int, int, int]) -> Tensor:
        return torch.from_numpy(decode_uint8_planes(data, shape)).float() / 255.0


def _quarter_size_transforms(arch) -> tuple[nn.Sequential, nn.Sequential]:  # noqa: ANN001
    """Encoder (image -> `latent_channels` maps at 1/4 size) and decoder (back) of AE and CAE."""
    return (
        _down_stack(3, arch.channels, arch.latent_channels, stages=2),
        _up_stack(arch.latent_channels, arch.channels, 3, stages=2),
    )


def _luma(x: Tensor) -> Tensor:
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


class Autoencoder(_EightBitFeatures):
    """Image -> one 8-bit channel at 1/4 size -> image (the study's autoencoder).

    Both halves learn residuals: the compressed image starts as the 1/4-size luma and the
    decoder's output as that image upsampled, so training starts from a viewable thumbnail and a
    blurry grey reconstruction instead of from noise (from scratch, 1 - SSIM barely moved a
    plain network in a CPU budget)."""

    def __init__(self, arch) -> None:  # noqa: ANN001
        super().__init__(arch)
        if arch.latent_channels != 1:
            raise ValueError("the autoencoder's compressed image has one channel: latent_channels must be 1")
        self.encoder, self.decoder = _quarter_size_transforms(arch)

    def encode_features(self, x: Tensor) -> Tensor:
        return (F.avg_pool2d(_luma(x), 4) + self.encoder(x)).clamp(0, 1)

    def decode_features(self, features: Tensor) -> Tensor:
        base = F.interpolate(features, scale_factor=4, mode="bilinear", align_corners=False)
        return (base + self.decoder(features)).clamp(0, 1)


class LossyCAE(FixedRateCodec):
    """Image -> n binary maps at 1/4 size -> image (the study's lossy compressive autoencoder)."""

    bits_per_value = 1

    def __init__(self, arch) -> None:  # noqa: ANN001
        super().__init__(arch)
        self.encoder, self.decoder = _quarter_size_transforms(arch)

    # With the encoder's small initial outputs, tanh stays near 0 and every stochastic bit is a
    # coin flip: the decoder sees noise and learns nothing for hundreds of steps. A fixed gain of
    # 4 lets bits carry signal from the start (held-out MSE after 200 steps: 0.054 -> 0.030).
    PRE_TANH_GAIN = 4.0

    def encode_features(self, x: Tensor) -> Tensor:
        return torch.tanh(self.PRE_TANH_GAIN * self.encoder(x))

    def quantize(self, features: Tensor) -> Tensor:
        return binarize(features, self.training)

    def decode_features(self, features: Tensor) -> Tensor:
        return torch.sigmoid(self.decoder(features))

    def _pack(self, q: Tensor) -> bytes:
        return encode_binary_maps((q > 0).cpu().numpy())

    def _unpack(self, data: bytes, shape: tuple[int, int, int]) -> Tensor:
        return torch.from_numpy(decode_binary_maps(data, shape)).float() * 2 - 1


class PatchDiscriminator(nn.Module):
    """A small PatchGAN: one real/fake logit per overlapping patch."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * width, 1, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class CycleGAN(_EightBitFeatures):
    """G: image -> RGB image at 1/2 size (8-bit), F: back. Both predict a residual over plain
    resampling, so the compressed image is a viewable thumbnail. The two small discriminators are
    only used in training (shipped with the weights so training can resume from them)."""

    downsampling = 2
    TILE, MARGIN = 512, 32  # patch-wise inference above (TILE + 2 MARGIN) px; margin > receptive field

    def __init__(self, arch) -> None:  # noqa: ANN001
        super().__init__(arch)
        if arch.latent_channels != 3:
            raise ValueError("the Cycle-GAN's compressed image is RGB: latent_channels must be 3")
        self.g = _down_stack(3, arch.channels, 3, stages=1)
        self.f = _up_stack(3, arch.channels, 3, stages=1)
        self.d_x = PatchDiscriminator(arch.hyper_channels)
        self.d_y = PatchDiscriminator(arch.hyper_channels)

    def generator_g(self, x: Tensor) -> Tensor:
        return (F.avg_pool2d(x, 2) + self.g(x)).clamp(0, 1)

    def generator_f(self, y: Tensor) -> Tensor:
        return (F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False) + self.f(y)).clamp(0, 1)

    def encode_features(self, x: Tensor) -> Tensor:
        if self.training:
            return self.generator_g(x)
        return tiled(self.generator_g, x, self.TILE, self.MARGIN, 0.5, align=2)

    def decode_features(self, features: Tensor) -> Tensor:
        if self.training:
            return self.generator_f(features)
        return tiled(self.generator_f, features, self.TILE // 2, self.MARGIN // 2, 2.0, align=1)


def laplacian_target(x: Tensor) -> Tensor:
    """The study's Laplacian constraint for the autoencoder's 1/4-size image: 0.5 + the
    Laplacian of the luma at 1/4 size (most values near 0.5, i.e. "mostly zero")."""
    small = F.avg_pool2d(_luma(x), 4)
    kernel = small.new_tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
    return (0.5 + F.conv2d(F.pad(small, (1, 1, 1, 1), mode="replicate"), kernel)).clamp(0, 1)


__all__ = [
    "FIXED_RATE_FAMILIES", "Autoencoder", "CycleGAN", "LossyCAE", "FixedRateCodec", "binarize",
    "laplacian_target", "quantize_8bit", "tiled",
]
