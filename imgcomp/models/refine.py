"""The encoder's effort mode: refine the latents against the rate–distortion objective.

The analysis transform g_a is amortised: one forward pass guesses latents that are good on
average over the training images, not the best ones for *this* image. At encode time the encoder
can do better, without touching the decoder or the payload format: starting from g_a's y (and
h_a's z), it minimises the model's own training objective

    R + lambda * D   (R: bits per pixel under the model's entropy models, D: 255^2 * MSE, or
                      1 - MS-SSIM for a model trained on MS-SSIM; lambda: the level's training one)

over the continuous y and z with Adam, through the model's entropy models and g_s, and then
quantises and entropy-codes the result exactly as an effort-0 encode would. Two roundings:

* ``ste``: hard rounding with a straight-through gradient (deterministic, cheap: the low effort);
* ``sga``: stochastic Gumbel annealing (Yang, Bamler and Mandt, "Improving Inference for
  Amortized Learned Image Compression", NeurIPS 2020): each element is a relaxed random choice
  between its floor and its ceiling, with probabilities from its distance to each and a
  temperature annealed from 0.5 (soft) towards 0 (hard rounding). The Gumbel noise comes from a
  seeded generator, so an encode is reproducible.

Rates here come from the float h_s, as in training; the bits actually coded come from the
integer hyperprior (`imgcomp.models.integer_prior`), whose indexes differ only near table
boundaries. `imgcomp.codec.Codec` therefore codes the candidates for real and keeps the one
whose real objective (real bytes, real decoded pixels: `coded_objective`) is lowest; effort 0's
latents are always a candidate, so more effort never costs more than it saves.

Distortion is measured on the image's own pixels only (not the padding to a multiple of 64),
so refinement also makes the padded area cheap to code.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from imgcomp.defaults import MAX_EFFORT, check_effort
from imgcomp.metrics import MS_SSIM_MIN_SIDE, ms_ssim_per_sample
from imgcomp.models.gained import FactorizedPrior, GainedCodec, ScaleHyperprior

DISTORTIONS = ("mse", "ms-ssim")


@dataclass(frozen=True)
class EffortSchedule:
    """How one effort level refines: `sga_steps` Adam steps on the annealed objective (step size
    `lr`, decaying linearly to `lr * lr_end`; temperature `tau_start` to `tau_end`,
    exponentially), then `ste_steps` with hard rounding and a straight-through gradient (step
    size `ste_lr`), whose losses are those of the hard-rounded latents: the best latents seen
    there are returned (the first STE step evaluates where SGA ended, or the amortised latents)."""

    sga_steps: int
    ste_steps: int
    lr: float = 0.03
    lr_end: float = 0.1
    ste_lr: float = 0.003
    tau_start: float = 0.3
    tau_end: float = 0.05

    @property
    def steps(self) -> int:
        return self.sga_steps + self.ste_steps

    @property
    def rounding(self) -> str:
        return "+".join(f"{n} {name}" for n, name in ((self.sga_steps, "sga"), (self.ste_steps, "ste")) if n)

    def tau(self, step: int) -> float:
        if self.sga_steps <= 1:
            return self.tau_end
        return self.tau_start * (self.tau_end / self.tau_start) ** (step / (self.sga_steps - 1))

    def step_size(self, step: int) -> float:
        if self.sga_steps <= 1:
            return self.lr
        return self.lr * (1.0 + (self.lr_end - 1.0) * step / (self.sga_steps - 1))


# Effort -> schedule. 0 is the plain amortised encode (no refinement).
EFFORTS: dict[int, EffortSchedule] = {
    1: EffortSchedule(sga_steps=0, ste_steps=10, ste_lr=0.01),
    2: EffortSchedule(sga_steps=30, ste_steps=10, lr=0.03, tau_start=0.3, ste_lr=0.003),
    3: EffortSchedule(sga_steps=100, ste_steps=20, lr=0.03, tau_start=0.3, ste_lr=0.003),
}
assert sorted(EFFORTS) == list(range(1, MAX_EFFORT + 1)), "one schedule per effort level"
__all__ = ["EFFORTS", "MAX_EFFORT", "EffortSchedule", "RDTarget", "check_effort", "coded_objective", "refine_latents"]


def supports_effort(net: object) -> bool:
    """Only the entropy-coded families have a rate to trade against distortion."""
    return isinstance(net, (FactorizedPrior, ScaleHyperprior))


@dataclass(frozen=True)
class RDTarget:
    """What one encode minimises: bpp + lam * distortion over the image's height x width."""

    lam: float
    distortion: str  # "mse" or "ms-ssim"
    height: int
    width: int
    channels: int = 3  # 1: the decoder returns the mean of the colour channels

    def __post_init__(self) -> None:
        if self.distortion not in DISTORTIONS:
            raise ValueError(f"distortion must be one of {', '.join(DISTORTIONS)}, got {self.distortion!r}")
        if not (math.isfinite(self.lam) and self.lam > 0):
            raise ValueError(f"lambda must be positive, got {self.lam!r}")

    @property
    def ms_ssim_window(self) -> int:
        # 11 (the metric's window) where the 5-scale MS-SSIM is defined, else training's 7
        return 11 if min(self.height, self.width) >= MS_SSIM_MIN_SIDE else 7


def distortion(x: Tensor, x_hat: Tensor, target: RDTarget) -> Tensor:
    """D of a reconstruction (1 x 3 x H x W, any range: clamped here) against the padded input,
    on the image's own pixels; mono sources are compared as the decoder returns them."""
    h, w = target.height, target.width
    x, x_hat = x[..., :h, :w], x_hat[..., :h, :w].clamp(0, 1)
    if target.channels == 1:
        x, x_hat = x[:, :1], x_hat.mean(1, keepdim=True)
    return decoded_distortion(x, x_hat, target)


def decoded_distortion(x: Tensor, decoded: Tensor, target: RDTarget) -> Tensor:
    """D between two same-shape images in 0..1 (N x C x H x W, already cropped)."""
    if target.distortion == "mse":
        return (255.0**2) * (x - decoded).pow(2).mean()
    return 1.0 - ms_ssim_per_sample(x, decoded, window=target.ms_ssim_window).mean()


def coded_objective(x: Tensor, decoded_uint8: Tensor, coded_bytes: int, target: RDTarget) -> float:
    """The real R + lambda * D: `coded_bytes` of entropy-coded streams and the decoder's uint8
    image (C x H x W, C = target.channels) against the padded input x (1 x 3 x H' x W')."""
    h, w = target.height, target.width
    reference = x[:, : target.channels, :h, :w].to(torch.float64)
    decoded = decoded_uint8[None].to(device=x.device, dtype=torch.float64) / 255.0
    if target.distortion == "ms-ssim":  # pytorch_msssim in float32, as the metric is computed
        reference, decoded = reference.float(), decoded.float()
    bpp = 8.0 * coded_bytes / (h * w)
    return bpp + target.lam * float(decoded_distortion(reference, decoded, target))


def _ste_round(v: Tensor) -> Tensor:
    return v + (torch.round(v) - v).detach()


def _sga_round(v: Tensor, tau: float, generator: torch.Generator) -> Tensor:
    """A relaxed random choice between floor(v) and floor(v) + 1 (Yang et al. 2020, eq. 4 ff.):
    logits -atanh(distance) / tau, Gumbel-softmax sample at temperature tau."""
    floor = torch.floor(v.detach())
    frac = v - floor
    eps = 1e-5
    logits = torch.stack(
        [-torch.atanh(frac.clamp(-1 + eps, 1 - eps)), -torch.atanh((1 - frac).clamp(-1 + eps, 1 - eps))], dim=-1
    ) / tau
    uniform = torch.rand(logits.shape, generator=generator, device=v.device, dtype=v.dtype)
    gumbel = -torch.log(-torch.log(uniform.clamp(1e-10, 1 - 1e-7)))
    weights = torch.softmax((logits + gumbel) / tau, dim=-1)
    return floor + weights[..., 1]


def _bottleneck_likelihood(bottleneck: torch.nn.Module, values: Tensor) -> Tensor:
    """EntropyBottleneck likelihoods of already-rounded values (B x C x H x W), differentiable."""
    flat = values.transpose(0, 1).reshape(values.shape[1], 1, -1)
    likelihood, _, _ = bottleneck._likelihood(flat)
    if bottleneck.use_likelihood_bound:
        likelihood = bottleneck.likelihood_lower_bound(likelihood)
    return likelihood


def rd_loss(
    net: GainedCodec, x: Tensor, y: Tensor, z: Tensor | None, level_index: int, target: RDTarget,
    rounding: Callable[[Tensor], Tensor],
) -> tuple[Tensor, Tensor, Tensor]:
    """(bpp + lam * D, bpp, D) of latents y (and z) rounded with `rounding`, through the model's
    entropy models and g_s. Rounding is relative to the medians where the coder's is."""
    bottleneck = net.entropy_bottleneck
    if isinstance(net, ScaleHyperprior):
        if z is None:
            raise ValueError("a scale hyperprior needs the hyper-latent z")
        medians = bottleneck._get_medians().detach().reshape(1, -1, 1, 1)
        z_tilde = medians + rounding(z - medians)
        bits = -torch.log2(_bottleneck_likelihood(bottleneck, z_tilde)).sum()
        y_tilde = rounding(y)
        conditional = net.gaussian_conditional
        likelihood = conditional._likelihood(y_tilde, net.h_s(z_tilde))
        if conditional.use_likelihood_bound:
            likelihood = conditional.likelihood_lower_bound(likelihood)
        bits = bits - torch.log2(likelihood).sum()
    else:
        medians = bottleneck._get_medians().detach().reshape(1, -1, 1, 1)
        y_tilde = medians + rounding(y - medians)
        bits = -torch.log2(_bottleneck_likelihood(bottleneck, y_tilde)).sum()
    bpp = bits / (target.height * target.width)
    dist = distortion(x, net.synthesise(y_tilde, level_index), target)
    return bpp + target.lam * dist, bpp, dist


@contextmanager
def _frozen(net: torch.nn.Module) -> Iterator[None]:
    """The weights without requires_grad for a while: autograd then skips their gradients,
    which are half the backward pass (convolution_backward) and of no use here."""
    was = [(p, p.requires_grad) for p in net.parameters()]
    try:
        for p, _ in was:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in was:
            p.requires_grad_(flag)


def refine_latents(
    net: GainedCodec, x: Tensor, y: Tensor, z: Tensor | None, level_index: int, target: RDTarget,
    effort: int | EffortSchedule, seed: int = 0, trace: list[float] | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Latents that lower `rd_loss` below the amortised ones, by `EFFORTS[effort]` (or by a
    schedule given directly).

    `x` is the padded input (1 x 3 x H x W, 0..1) and y, z the analysis' latents, all on the
    model's device; `level_index` is 0-based. Returns new continuous (y, z), still to be coded by
    `compress_analysed`. `trace`, if given, receives the loss of every step."""
    if isinstance(effort, EffortSchedule):
        schedule = effort
    elif check_effort(effort) == 0:
        return y, z
    else:
        schedule = EFFORTS[effort]
    params = [y.detach().clone().requires_grad_(True)]
    if z is not None:
        params.append(z.detach().clone().requires_grad_(True))
    optimizer = torch.optim.Adam(params, lr=schedule.lr)
    generator = torch.Generator(device=y.device).manual_seed(seed)
    x = x.detach()
    best: tuple[float, list[Tensor]] = (math.inf, [p.detach().clone() for p in params])
    with torch.enable_grad(), _frozen(net):
        for step in range(schedule.steps):
            annealing = step < schedule.sga_steps
            if annealing:
                tau = schedule.tau(step)
                rounding: Callable[[Tensor], Tensor] = lambda v, tau=tau: _sga_round(v, tau, generator)  # noqa: E731
                lr = schedule.step_size(step)
            else:
                rounding, lr = _ste_round, schedule.ste_lr
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss, _, _ = rd_loss(net, x, params[0], params[1] if z is not None else None, level_index, target, rounding)
            value = float(loss.detach())
            if not annealing and value < best[0]:
                best = (value, [p.detach().clone() for p in params])
            grads = torch.autograd.grad(loss, params)
            for param, grad in zip(params, grads):
                param.grad = grad
            optimizer.step()
            if trace is not None:
                trace.append(value)
    latents = best[1] if schedule.ste_steps else [p.detach() for p in params]
    return latents[0], (latents[1] if z is not None else None)
