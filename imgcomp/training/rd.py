"""Rate–distortion training: one command for CPU, one CUDA GPU, or several under torchrun.

    imgcomp train --config config/models/hyperprior-mse.yaml [--resume] [--device cuda]
    torchrun --nproc_per_node 4 -m imgcomp.cli.main train --config ... --device cuda

Each sample in a batch draws a quality level; its loss is ``lambda_level * D + R`` with D the
MSE (scaled by 255², CompressAI's convention) or ``1 - MS-SSIM``, R the estimated bits per pixel.
The entropy bottleneck's auxiliary quantile loss is returned by the forward pass so that
DistributedDataParallel sees every parameter used in one graph.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import Tensor, nn
from tqdm import tqdm

from imgcomp.data.crops import RandomCropSampler, load_images, load_training_images
from imgcomp.training.checkpoints import load_initial_weights, load_resume_state, lr_scale, save_checkpoint
from imgcomp.training.losses import ms_ssim_per_sample
from imgcomp.training.precision import configure_precision
from imgcomp.models.gained import ArchConfig, GainedCodec, build_model


@dataclass
class TrainConfig:
    name: str
    arch: ArchConfig
    distortion: str = "mse"  # "mse" or "ms-ssim"
    lambdas: tuple[float, ...] = ()
    train_dir: str = "data/images/train"
    val_dir: str = "data/images/val"
    run_dir: str = "runs"
    crop: int = 128
    batch_size: int = 8
    steps: int = 10000
    lr: float = 1e-4
    aux_lr: float = 1e-3
    lr_drop_at: float = 0.9  # fraction of steps after which lr drops by 10x
    grad_clip: float = 1.0
    val_every: int = 1000
    checkpoint_every: int = 500
    seed: int = 0
    init_from: str | None = None  # weights file (shipped) to start from, e.g. fine-tuning
    ms_ssim_window: int = 7  # 7 lets 128-px crops go through 5 MS-SSIM scales
    precision: str = "fp32"  # fp32, tf32 or (fixed-rate families only) bf16: training/precision.py
    extra: dict = field(default_factory=dict)

    @staticmethod
    def from_yaml(path: str | Path) -> "TrainConfig":
        from imgcomp.models.fixed_rate import FIXED_RATE_FAMILIES
        from imgcomp.training.fixed_rate import FIXED_RATE_DISTORTIONS

        raw = yaml.safe_load(Path(path).read_text())
        arch_raw = raw.pop("arch")
        fixed_rate = arch_raw.get("family") in FIXED_RATE_FAMILIES
        # The study families have one fixed rate: no lambdas, one level.
        lambdas = tuple(float(v) for v in raw.pop("lambdas", [] if not fixed_rate else [1.0]))
        if not lambdas:
            raise ValueError(f"{path}: an entropy-coded model needs 'lambdas' (one per quality level)")
        arch = ArchConfig(**arch_raw, levels=len(lambdas), lambdas=lambdas)
        config = TrainConfig(arch=arch, lambdas=lambdas, **raw)
        allowed = FIXED_RATE_DISTORTIONS if fixed_rate else ("mse", "ms-ssim")
        if config.distortion not in allowed:
            raise ValueError(f"distortion must be one of {', '.join(allowed)} for {arch.family}, got {config.distortion!r}")
        return config


def rate_bpp(likelihoods: dict[str, Tensor], num_pixels: int) -> Tensor:
    """Per-sample estimated bits per pixel."""
    total = sum(-torch.log2(p).flatten(1).sum(1) for p in likelihoods.values())
    return total / num_pixels


def distortion_per_sample(x: Tensor, x_hat: Tensor, kind: str, window: int) -> Tensor:
    if kind == "mse":
        return (255.0**2) * ((x - x_hat) ** 2).flatten(1).mean(1)
    return 1.0 - ms_ssim_per_sample(x, x_hat.clamp(0, 1), window=window)


class RDLoss(nn.Module):
    def __init__(self, lambdas: tuple[float, ...], kind: str, window: int) -> None:
        super().__init__()
        self.register_buffer("lambdas", torch.tensor(lambdas, dtype=torch.float32))
        self.kind, self.window = kind, window

    def forward(self, out: dict, x: Tensor, levels: Tensor) -> dict[str, Tensor]:
        bpp = rate_bpp(out["likelihoods"], x.shape[-2] * x.shape[-1])
        dist_ = distortion_per_sample(x, out["x_hat"], self.kind, self.window)
        loss = (self.lambdas[levels] * dist_ + bpp).mean()
        return {"loss": loss, "bpp": bpp.mean(), "distortion": dist_.mean()}


class TrainingModel(nn.Module):
    """Forward that also returns the aux loss, so DDP sees all parameters in one graph."""

    def __init__(self, codec: GainedCodec) -> None:
        super().__init__()
        self.codec = codec

    def forward(self, x: Tensor, levels: Tensor) -> dict:
        out = self.codec(x, levels)
        out["aux_loss"] = self.codec.aux_loss()
        return out


def _distributed() -> tuple[int, int]:
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    return 0, 1


def _optimizers(codec: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    main = [p for n, p in codec.named_parameters() if not n.endswith(".quantiles")]
    aux = [p for n, p in codec.named_parameters() if n.endswith(".quantiles")]
    return torch.optim.Adam([{"params": main, "lr": config.lr}, {"params": aux, "lr": config.aux_lr}])


@torch.no_grad()
def validate(codec: GainedCodec, images: list[np.ndarray], config: TrainConfig, device: torch.device) -> dict:
    """Estimated bpp and PSNR per level on the validation images (no entropy coding)."""
    from imgcomp.padding import pad_to_multiple

    codec.eval()
    rows = []
    for level in range(codec.levels):
        bpps, psnrs = [], []
        for image in images:
            x = torch.from_numpy(image).permute(2, 0, 1)[None].float().div(255).to(device)
            padded, (h, w) = pad_to_multiple(x, codec.downsampling)
            out = codec(padded, level)
            x_hat = out["x_hat"][..., :h, :w].clamp(0, 1)
            bpps.append(float(rate_bpp(out["likelihoods"], h * w)))
            mse = float(((x_hat * 255).round() - x * 255).pow(2).mean())
            psnrs.append(10 * math.log10(255**2 / max(mse, 1e-10)))
        rows.append({"level": level + 1, "bpp": float(np.mean(bpps)), "psnr": float(np.mean(psnrs))})
    codec.train()
    return {"levels": rows}


def train(config: TrainConfig, device: str = "cpu", resume: bool = False, max_minutes: float | None = None) -> Path:
    """Train and return the path of the last checkpoint."""
    from imgcomp.models.fixed_rate import FIXED_RATE_FAMILIES

    if config.arch.family in FIXED_RATE_FAMILIES:
        from imgcomp.training.fixed_rate import train_fixed_rate

        return train_fixed_rate(config, device=device, resume=resume, max_minutes=max_minutes)
    rank, world = _distributed()
    if world > 1:
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        if device.startswith("cuda"):
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
            torch.cuda.set_device(device)
    torch_device = torch.device(device)
    configure_precision(config.precision, torch_device, entropy_coded=True)
    torch.manual_seed(config.seed)  # identical initial weights on every rank

    codec = build_model(config.arch).to(torch_device)
    if config.init_from:
        missing = load_initial_weights(codec, Path(config.init_from))
        if rank == 0:
            print(f"initialised from {config.init_from} ({missing})")
    optimizer = _optimizers(codec, config)
    run_dir = Path(config.run_dir) / config.name
    checkpoint = run_dir / "last.pt"
    state = load_resume_state(checkpoint, codec, optimizer, torch_device) if resume else None
    step = int(state["step"]) if state else 0
    if state and rank == 0:
        print(f"resumed {checkpoint} at step {step}")

    model: nn.Module = TrainingModel(codec)
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[torch_device.index] if torch_device.type == "cuda" else None)
    criterion = RDLoss(config.lambdas, config.distortion, config.ms_ssim_window).to(torch_device)
    sampler = RandomCropSampler(load_training_images(Path(config.train_dir)), config.crop, seed=config.seed * 1000 + rank * 7919 + step)
    val_images = load_images(Path(config.val_dir)) if rank == 0 and Path(config.val_dir).exists() else []
    level_rng = np.random.default_rng(config.seed + rank + step)

    started = time.monotonic()
    skipped = 0
    progress = tqdm(total=config.steps, initial=step, disable=rank != 0, desc=config.name, dynamic_ncols=True)
    history_path = run_dir / "history.jsonl"
    while step < config.steps:
        elapsed = time.monotonic() - started
        if max_minutes is not None and elapsed > 60 * max_minutes:
            break  # a time budget (e.g. a CPU session): stop cleanly, the checkpoint follows
        optimizer.param_groups[0]["lr"] = config.lr * lr_scale(step, config, elapsed, max_minutes)
        x = torch.from_numpy(sampler.batch(config.batch_size)).to(torch_device).float().div_(255)
        levels = torch.from_numpy(level_rng.integers(0, config.arch.levels, size=x.shape[0])).to(torch_device)
        out = model(x, levels)
        losses = criterion(out, x, levels)
        optimizer.zero_grad(set_to_none=True)
        (losses["loss"] + out["aux_loss"]).backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(codec.parameters(), config.grad_clip if config.grad_clip > 0 else math.inf)
        if not torch.isfinite(grad_norm):
            # A rare non-finite step (e.g. a latent value far outside the entropy model's range)
            # would poison Adam's moments for good; skip it, as mixed-precision scalers do. Under
            # DDP every rank sees the same all-reduced gradients, so all ranks skip together.
            skipped += 1
            if skipped > 100:
                raise RuntimeError("more than 100 non-finite training steps: lower the learning rate")
            continue
        optimizer.step()
        step += 1
        if rank == 0:
            progress.update(1)
            if step % 20 == 0:  # each .item() waits for the GPU: not every step
                progress.set_postfix(
                    loss=f"{losses['loss'].item():.3f}", bpp=f"{losses['bpp'].item():.3f}", aux=f"{out['aux_loss'].item():.1f}", skipped=skipped
                )
            if step % config.checkpoint_every == 0 or step == config.steps:
                save_checkpoint(checkpoint, codec, optimizer, step, config)
            if val_images and (step % config.val_every == 0 or step == config.steps):
                report = validate(codec, val_images, config, torch_device)
                report.update(step=step, loss=losses["loss"].item(), time=time.time())
                history_path.parent.mkdir(parents=True, exist_ok=True)
                with history_path.open("a") as f:
                    f.write(__import__("json").dumps(report) + "\n")
                progress.write(f"step {step}: " + "  ".join(f"q{r['level']} {r['bpp']:.3f}bpp {r['psnr']:.2f}dB" for r in report["levels"]))
    progress.close()
    if rank == 0:
        save_checkpoint(checkpoint, codec, optimizer, step, config)
    if world > 1:
        _check_ranks_agree(codec)
        dist.destroy_process_group()
    return checkpoint


def _check_ranks_agree(codec: nn.Module) -> None:
    """DDP keeps replicas identical; prove it instead of assuming (a desync is silent otherwise)."""
    checksum = torch.stack([p.detach().double().sum() for p in codec.parameters()]).sum().reshape(1).cpu()
    low, high = checksum.clone(), checksum.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    if not torch.equal(low, high):
        raise RuntimeError(f"DDP replicas diverged: parameter checksums range {low.item()}..{high.item()}")
