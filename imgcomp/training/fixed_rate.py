"""Training for the study's fixed-rate families (autoencoder, lossy CAE, Cycle-GAN).

Reached through the same `imgcomp train --config ...` as the entropy-coded models: `train()`
hands a config whose family is one of `FIXED_RATE_FAMILIES` to `train_fixed_rate`. There is no rate term
(the feature size fixes the rate); the loss is the chosen distortion:

* ``mse``: mean squared error;
* ``ssim``: 1 - SSIM (the study's loss);
* ``ms-ssim``: 1 - MS-SSIM;
* ``ms-ssim-l1``: (1 - MS-SSIM) + alpha * L1 (Zhao et al.'s mix; ``extra.l1_alpha``, default 0.16).

``extra.mse_warmup_steps`` trains with MSE for that many steps first (leaving the flat-grey start).

The autoencoder can be held to the study's Laplacian target (``extra.laplacian_weight`` > 0).
The Cycle-GAN adds, as in Zhu et al. (2017), adversarial losses for G against D_Y (real: other
images of the batch downscaled by 2) and for F against D_X, and cycle losses on both domains:
``adv_weight * (L_GAN(G) + L_GAN(F)) + cycle_weight * (D(F(G(x)), x) + |G(F(y)) - y|_1)``.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_msssim import ssim as ssim_fn
from torch import Tensor, nn
from tqdm import tqdm

from imgcomp.data.crops import RandomCropSampler, load_images, load_training_images
from imgcomp.training.losses import ms_ssim_per_sample
from imgcomp.models.gained import build_model
from imgcomp.models.fixed_rate import CycleGAN, FixedRateCodec, laplacian_target
from imgcomp.training.checkpoints import load_initial_weights, load_resume_state, lr_scale, save_checkpoint
from imgcomp.training.precision import autocast, configure_precision

FIXED_RATE_DISTORTIONS = ("mse", "ssim", "ms-ssim", "ms-ssim-l1")


def fixed_rate_distortion(x: Tensor, x_hat: Tensor, kind: str, extra: dict) -> Tensor:
    """Mean distortion of a batch (images in [0, 1])."""
    if kind == "mse":
        return F.mse_loss(x_hat, x)
    if kind == "ssim":
        return 1.0 - ssim_fn(x_hat, x, data_range=1.0, size_average=True)
    ms = 1.0 - ms_ssim_per_sample(x, x_hat.clamp(0, 1), window=int(extra.get("ms_ssim_window", 7))).mean()
    if kind == "ms-ssim":
        return ms
    if kind == "ms-ssim-l1":
        return ms + float(extra.get("l1_alpha", 0.16)) * F.l1_loss(x_hat, x)
    raise ValueError(f"distortion must be one of {', '.join(FIXED_RATE_DISTORTIONS)}, got {kind!r}")


def _bce(logits: Tensor, real: bool) -> Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, 1.0 if real else 0.0))


def _generator_parameters(net: nn.Module) -> list[nn.Parameter]:
    return [p for n, p in net.named_parameters() if not n.startswith(("d_x.", "d_y."))]


@torch.no_grad()
def validate_fixed_rate(net: FixedRateCodec, images: list[np.ndarray], device: torch.device) -> dict:
    """PSNR and SSIM through the real quantization (eval mode), on the validation images."""
    from imgcomp.padding import pad_to_multiple

    net.eval()
    psnrs, ssims = [], []
    for image in images:
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float().div(255).to(device)
        padded, (h, w) = pad_to_multiple(x, net.downsampling)
        x_hat = (net(padded)["x_hat"][..., :h, :w].clamp(0, 1) * 255).round() / 255
        mse = float((x_hat - x).pow(2).mean())
        psnrs.append(10 * math.log10(1.0 / max(mse, 1e-12)))
        ssims.append(float(ssim_fn(x_hat, x, data_range=1.0)))
    net.train()
    return {"psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims))}


def train_fixed_rate(config, device: str = "cpu", resume: bool = False, max_minutes: float | None = None) -> Path:  # noqa: ANN001
    """Train a fixed-rate model from a `TrainConfig`; returns the last checkpoint."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise RuntimeError("the study families train in one process (their models are small)")
    torch_device = torch.device(device)
    configure_precision(config.precision, torch_device, entropy_coded=False)
    amp = lambda: autocast(config.precision, torch_device)  # noqa: E731 - a fresh context per use
    torch.manual_seed(config.seed)
    net: FixedRateCodec = build_model(config.arch).to(torch_device)
    if config.init_from:
        print(f"initialised from {config.init_from} ({load_initial_weights(net, Path(config.init_from))})")
    extra = dict(config.extra)
    gan = isinstance(net, CycleGAN)
    generator_parameters = _generator_parameters(net)
    optimizer = torch.optim.Adam(generator_parameters, lr=config.lr)
    d_optimizer = (
        torch.optim.Adam([*net.d_x.parameters(), *net.d_y.parameters()], lr=float(extra.get("d_lr", 2e-4)), betas=(0.5, 0.999))
        if gan
        else None
    )
    run_dir = Path(config.run_dir) / config.name
    checkpoint = run_dir / "last.pt"
    state = load_resume_state(checkpoint, net, optimizer, torch_device) if resume else None
    step = int(state["step"]) if state else 0
    if state:
        if d_optimizer is not None and "d_optimizer" in state:
            d_optimizer.load_state_dict(state["d_optimizer"])
        print(f"resumed {checkpoint} at step {step}")

    sampler = RandomCropSampler(load_training_images(Path(config.train_dir)), config.crop, seed=config.seed * 1000 + step)
    val_images = load_images(Path(config.val_dir)) if Path(config.val_dir).exists() else []
    laplacian_weight = float(extra.get("laplacian_weight", 0.0))
    # A plain network starts from a flat grey output, where the SSIM gradient is tiny: a wider
    # lossy CAE sat there for 2000 steps. A few hundred MSE steps first leave that plateau.
    mse_warmup_steps = int(extra.get("mse_warmup_steps", 0))
    adv_weight = float(extra.get("adv_weight", 0.05))
    cycle_weight = float(extra.get("cycle_weight", 1.0))

    def save() -> None:
        extra_state = {"d_optimizer": d_optimizer.state_dict()} if d_optimizer is not None else {}
        save_checkpoint(checkpoint, net, optimizer, step, config, **extra_state)

    started = time.monotonic()
    progress = tqdm(total=config.steps, initial=step, desc=config.name, dynamic_ncols=True)
    net.train()
    while step < config.steps:
        elapsed = time.monotonic() - started
        if max_minutes is not None and elapsed > 60 * max_minutes:
            break
        for group in optimizer.param_groups:
            group["lr"] = config.lr * lr_scale(step, config, elapsed, max_minutes)
        x = torch.from_numpy(sampler.batch(config.batch_size)).to(torch_device).float().div_(255)
        kind = "mse" if step < mse_warmup_steps else config.distortion
        logs: dict[str, float] = {}
        # Networks under `amp` (bf16 autocast when asked), losses in float32 on the outputs.
        if gan:
            y_real = F.avg_pool2d(x.roll(1, dims=0), 2)  # domain Y: real half-size images
            with amp():
                y_fake = net.quantize(net.generator_g(x)).float()
                x_cycle = net.generator_f(y_fake).float()
                x_fake = net.generator_f(y_real).float()
                y_cycle = net.generator_g(x_fake).float()
                fake_logits = (net.d_y(y_fake).float(), net.d_x(x_fake).float())
            distortion = fixed_rate_distortion(x, x_cycle, kind, extra)
            adversarial = _bce(fake_logits[0], True) + _bce(fake_logits[1], True)
            loss = cycle_weight * (distortion + F.l1_loss(y_cycle, y_real)) + adv_weight * adversarial
            logs["adv"] = adversarial.item()
        else:
            with amp():
                out = {k: v.float() for k, v in net(x).items()}
            distortion = fixed_rate_distortion(x, out["x_hat"], kind, extra)
            loss = distortion
            if laplacian_weight > 0:
                loss = loss + laplacian_weight * F.l1_loss(out["features"], laplacian_target(x))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(generator_parameters, config.grad_clip if config.grad_clip > 0 else math.inf)
        if not torch.isfinite(grad_norm):
            continue
        optimizer.step()
        if gan:
            assert d_optimizer is not None
            with amp():
                logits = [net.d_y(y_real), net.d_y(y_fake.detach()), net.d_x(x), net.d_x(x_fake.detach())]
            real_y, fake_y, real_x, fake_x = (v.float() for v in logits)
            d_loss = (_bce(real_y, True) + _bce(fake_y, False) + _bce(real_x, True) + _bce(fake_x, False)) / 2
            d_optimizer.zero_grad(set_to_none=True)
            d_loss.backward()
            d_optimizer.step()
            logs["d"] = d_loss.item()
        step += 1
        progress.update(1)
        progress.set_postfix(loss=f"{loss.item():.4f}", dist=f"{distortion.item():.4f}", **{k: f"{v:.3f}" for k, v in logs.items()})
        if step % config.checkpoint_every == 0 or step == config.steps:
            save()
        if val_images and (step % config.val_every == 0 or step == config.steps):
            report = validate_fixed_rate(net, val_images, torch_device)
            report.update(step=step, loss=loss.item(), time=time.time())
            with (run_dir / "history.jsonl").open("a") as f:
                f.write(json.dumps(report) + "\n")
            progress.write(f"step {step}: {report['psnr']:.2f} dB, SSIM {report['ssim']:.4f}")
    progress.close()
    save()
    return checkpoint
