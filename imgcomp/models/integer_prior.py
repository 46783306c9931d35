"""Integer hyper-synthesis: the Gaussian scale indexes of a hyperprior, computed exactly.

Encoder and decoder of a scale hyperprior must derive the *same* table index for every latent
element from the decoded hyper-latent z. Computed with the float transform ``h_s``, a scale near
a table boundary can land on either side depending on the device, the dtype, the thread count or
the convolution algorithm, and one differing index desynchronises the rANS decoder: garbage,
without any error. Following Ballé, Johnston and Minnen, "Integer networks for data compression
with latent-variable models" (ICLR 2019), this module evaluates ``h_s`` in fixed point instead:

* weights are integers ``round(w * 2**FW)``, biases ``round(b * 2**(FA + FW))``, activations are
  integers in units of ``2**-FA``; the input is the integer z symbol ``q = round(z - median)``
  plus the channel median in fixed point, ``q * 2**FA + round(median * 2**FA)``;
* every layer is a sum of integer products computed in float64. All terms and all partial sums
  are integers far below 2**53 (the bound is checked when the layers are built, and activations
  saturate so that it holds for *any* input), so every float64 operation is exact and the result
  does not depend on summation order, BLAS, thread count or device (CPU or CUDA);
* after each layer the accumulator (units ``2**-(FA + FW)``) is rescaled to ``2**-FA`` with an
  exact round-half-up: ``floor((acc + 2**(FW - 1)) / 2**FW)``; ReLU and saturation are exact;
* the output scale (units ``2**-FA``) is compared with integer thresholds ``round(table * 2**FA)``
  after the same lower bound that ``GaussianConditional.build_indexes`` applies, giving indexes
  with the same semantics: ``index = #{i < len(table) - 1 : max(scale, bound) > table[i]}``.

The fixed-point conversion of the weights is itself exact and deterministic: the shipped weights
are fp16 values, ``w * 2**FW`` is computed in float64 (a power-of-two scaling, exact) and rounded
with ``torch.round`` (half to even, exact). With FW = 20 every fp16 weight of magnitude 2**-10
or more converts exactly and smaller ones are rounded to a multiple of 2**-20, so the main
approximation is the activation rounding to ``2**-FA``.

Convolutions are written as matrix products over unfolded patches (`unfold`/`fold` only move and
add integers), never as a library convolution, so no FFT or Winograd algorithm (cuDNN), which
would multiply by non-dyadic constants, can be picked.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

FW = 20  # weight fraction bits: fp16 weights of magnitude >= 2**-10 convert exactly
FA = 16  # activation fraction bits: resolution 1.5e-5, 1/7200 of the smallest table scale (0.11)
INPUT_LIMIT = 2**9  # |z_hat| saturates here (real units); on real images |z_hat| < 50
HIDDEN_LIMIT = 2**9  # hidden activations saturate here (real units); on real images < 16
OUTPUT_LIMIT = 2**9  # output scales saturate here; any scale above the table's last threshold
# (226.4) gets the last index anyway, so this saturation never changes an index
SAFE_SUM = 2**50  # every |partial sum| stays below this, 8x below 2**53 (up to which float64
# holds every integer exactly); where a layer's weights need it, the saturation limit of its
# input is lowered (deterministically, from the integer weights) to keep this bound


@dataclass(frozen=True)
class IntegerLayer:
    weight: Tensor  # float64 integers; conv: (out, in, k, k); transposed conv: (in, out, k, k)
    bias: Tensor  # float64 integers in units 2**-(FA + FW), shape (out,)
    transposed: bool
    stride: int
    padding: int
    output_padding: int
    limit: int  # saturation of the layer's output, in units 2**-FA
    bound: int  # max |partial sum| for any input, units 2**-(FA + FW)


def _fixed(t: Tensor, bits: int) -> Tensor:
    return torch.round(t.detach().to(torch.float64) * float(2**bits))


def _max_fan_in_abs(weight: Tensor, transposed: bool, stride: int) -> int:
    """Max over output elements of the sum of |integer weights| that reach one output element.

    A transposed convolution with stride s feeds an output element only from the taps of one
    phase class (tap index = output index + padding mod s), so the bound is taken per class."""
    w = weight.abs()
    if not transposed:
        return int(w.sum(dim=(1, 2, 3)).max().item())
    k = w.shape[-1]
    best = 0
    for a in range(min(stride, k)):
        for b in range(min(stride, k)):
            best = max(best, int(w[:, :, a::stride, b::stride].sum(dim=(0, 2, 3)).max().item()))
    return best


def _conv2d(x: Tensor, w: Tensor, padding: int) -> Tensor:
    """Stride-1 convolution as one integer matrix product over unfolded patches (im2col).

    `unfold` only copies values and the product sums integer terms, so the result is exact in any
    summation order (see the module docstring); one matrix product instead of one per tap."""
    n, _, h, wd = x.shape
    k = w.shape[-1]
    cols = nn.functional.unfold(x, k, padding=padding)  # (n, c*k*k, positions)
    out = w.reshape(w.shape[0], -1) @ cols
    return out.reshape(n, w.shape[0], h + 2 * padding - k + 1, wd + 2 * padding - k + 1)


def _conv_transpose2d(x: Tensor, w: Tensor, stride: int, padding: int, output_padding: int) -> Tensor:
    """``nn.ConvTranspose2d`` as one integer matrix product and a `fold` (col2im), which adds the
    taps' integer contributions: exact in any order, like `_conv2d`."""
    n, c, h, wd = x.shape
    k = w.shape[-1]
    if output_padding > padding:
        raise ValueError("output_padding larger than padding is not supported")
    cols = w.reshape(c, -1).t() @ x.reshape(n, c, h * wd)  # (n, out*k*k, positions)
    full = nn.functional.fold(cols, ((h - 1) * stride + k, (wd - 1) * stride + k), k, stride=stride)
    ho = (h - 1) * stride - 2 * padding + k + output_padding
    wo = (wd - 1) * stride - 2 * padding + k + output_padding
    return full[:, :, padding : padding + ho, padding : padding + wo]


class IntegerHyperSynthesis:
    """``h_s`` (deconv ReLU deconv ReLU conv ReLU) in exact fixed point, and the scale indexes.

    Build it with :meth:`from_float` from the trained float layers; it holds no learnable state
    (it is not an ``nn.Module``, so it never enters a state dict) and runs on the device of the
    float weights it was built from.
    """

    def __init__(self, layers: list[IntegerLayer], medians: Tensor, thresholds: Tensor, lower_bound: int,
                 input_limit: int, fw: int = FW, fa: int = FA) -> None:
        self.layers = layers
        self.medians = medians  # (C,) float64 integers, units 2**-FA
        self.thresholds = thresholds  # (T - 1,) float64 integers, units 2**-FA
        self.lower_bound = lower_bound  # units 2**-FA
        self.input_limit = input_limit  # units 2**-FA
        self.fw, self.fa = fw, fa

    @property
    def max_partial_sum(self) -> int:
        """Largest |partial sum| any input can produce, in integer units (must stay < 2**53)."""
        return max(layer.bound for layer in self.layers)

    @classmethod
    def from_float(cls, h_s: nn.Sequential, medians: Tensor, scale_table: Tensor, scale_bound: Tensor,
                   fw: int = FW, fa: int = FA) -> "IntegerHyperSynthesis":
        """Convert a trained float ``h_s`` (ConvTranspose2d/Conv2d layers each followed by ReLU),
        the z medians, the Gaussian scale table and its lower bound, deterministically."""
        modules = list(h_s)
        convs = [m for m in modules if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
        expected = [t for m in convs for t in (type(m), nn.ReLU)]
        if [type(m) for m in modules] != expected or not convs:
            raise ValueError(f"h_s must alternate convolutions and ReLUs, got {[type(m).__name__ for m in modules]}")
        if scale_table.numel() < 1:
            raise ValueError("the Gaussian conditional has no scale table: run update() first")
        parts = []
        for conv in convs:
            if len(set(conv.kernel_size)) != 1 or len(set(conv.stride)) != 1 or len(set(conv.padding)) != 1:
                raise ValueError("only square kernels, strides and paddings are supported")
            if conv.dilation != (1, 1) or conv.groups != 1 or conv.bias is None:
                raise ValueError("only undilated, ungrouped convolutions with bias are supported")
            transposed = isinstance(conv, nn.ConvTranspose2d)
            if not transposed and conv.stride[0] != 1:
                raise ValueError("only stride-1 forward convolutions are supported")
            weight, bias = _fixed(conv.weight, fw), _fixed(conv.bias, fa + fw)
            parts.append((conv, transposed, weight, bias, _max_fan_in_abs(weight, transposed, conv.stride[0]),
                          int(bias.abs().max().item()) + 2 ** (fw - 1)))
        # Saturation limits (units 2**-FA): the nominal ones, lowered where needed so that
        # fan_in_abs * input_limit + |bias| + rounding offset < 2**52 for every layer.
        def safe(index: int, nominal: int) -> int:
            _, _, _, _, fan, extra = parts[index]
            return min(nominal, (SAFE_SUM - 1 - extra) // max(fan, 1))
        input_limit = safe(0, INPUT_LIMIT * 2**fa)
        layers, in_limit = [], input_limit
        for index, (conv, transposed, weight, bias, fan, extra) in enumerate(parts):
            last = index == len(parts) - 1
            limit = OUTPUT_LIMIT * 2**fa if last else safe(index + 1, HIDDEN_LIMIT * 2**fa)
            bound = fan * in_limit + extra
            if bound >= SAFE_SUM or limit <= 0:
                raise ValueError(f"h_s layer {index}: partial sums up to {bound} would not be exact in float64")
            layers.append(IntegerLayer(weight, bias, transposed, conv.stride[0], conv.padding[0],
                                       conv.output_padding[0] if transposed else 0, limit, bound))
            in_limit = limit
        device = convs[0].weight.device
        table = scale_table.detach().to(device=device, dtype=torch.float64)
        thresholds = torch.round(table[:-1] * float(2**fa))
        lower_bound = int(torch.round(scale_bound.detach().to(torch.float64).reshape(-1)[0] * float(2**fa)).item())
        med = _fixed(medians.reshape(-1).to(device), fa)
        return cls(layers, med, thresholds, lower_bound, input_limit, fw, fa)

    def scales(self, symbols: Tensor) -> Tensor:
        """Integer scales (float64, units ``2**-FA``) from the integer z symbols ``(N, C, H, W)``."""
        device = self.medians.device
        q = symbols.to(device=device, dtype=torch.float64)
        if not bool(torch.equal(q, torch.round(q))):
            raise ValueError("z symbols must be integers")
        x = q * float(2**self.fa) + self.medians.reshape(1, -1, 1, 1)
        x = x.clamp(-self.input_limit, self.input_limit)
        half, unit = float(2 ** (self.fw - 1)), float(2.0 ** -self.fw)
        for layer in self.layers:
            if layer.transposed:
                acc = _conv_transpose2d(x, layer.weight, layer.stride, layer.padding, layer.output_padding)
            else:
                acc = _conv2d(x, layer.weight, layer.padding)
            acc += layer.bias.reshape(1, -1, 1, 1)
            # floor((acc + 2**(FW-1)) / 2**FW): adding an integer below 2**53 and scaling by a
            # power of two are exact in float64, and so is floor
            x = acc.add_(half).mul_(unit).floor_().clamp_(0, layer.limit)  # ReLU, then saturation (exact)
        return x

    def indexes_from_scales(self, scales: Tensor) -> Tensor:
        """``GaussianConditional.build_indexes`` on integer scales: lower bound, then the number
        of table entries (all but the last) strictly below the scale. Returns int32, same device."""
        s = scales.clamp(min=float(self.lower_bound)).contiguous()
        # number of thresholds strictly below s (exact comparisons of float64 integers)
        return torch.searchsorted(self.thresholds.to(s.device), s, right=False, out_int32=True)

    def indexes(self, symbols: Tensor) -> Tensor:
        """Scale-table indexes (int32, on the prior's device) for the latent y from z symbols."""
        return self.indexes_from_scales(self.scales(symbols))
