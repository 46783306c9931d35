"""Training of the multi-task heads (dispatched from ``imgcomp train`` for ``task: multitask``).

    imgcomp train --config config/multitask/latent.yaml [--resume] [--device cuda] --export

The three inputs (latent, decoded image, original image) train with the same steps, batch size,
learning rate schedule and frames, so their comparison is one of inputs, not of budgets. The last
`val_frames` frames of the training pack are held out for the validation loss printed during
training; the test split is only touched by ``imgcomp multitask eval``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import Tensor
from tqdm import tqdm

from imgcomp.defaults import DEFAULT_MODEL
from imgcomp.multitask.model import HeadConfig, MultiTaskHead, subsample_targets
from imgcomp.multitask.objectives import multitask_losses
from imgcomp.multitask.pack import NORMAL_SCALE, Split, load_split
from imgcomp.training.checkpoints import load_resume_state, lr_scale, save_checkpoint
from imgcomp.training.precision import autocast, configure_precision


@dataclass
class MultiTaskTrainConfig:
    name: str
    head: HeadConfig
    codec: str = DEFAULT_MODEL
    pack: str = "data/multitask/hyperprior-mse-256"
    run_dir: str = "runs"
    batch_size: int = 16
    steps: int = 3000
    lr: float = 1e-3
    weight_decay: float = 1e-4
    lr_drop_at: float = 0.8
    val_every: int = 500
    val_frames: int = 200
    checkpoint_every: int = 250
    seed: int = 0
    init_from: str | None = None  # shipped head weights to start from (e.g. after a codec fine-tune)
    precision: str = "fp32"  # fp32, tf32 or bf16: imgcomp/training/precision.py
    extra: dict = field(default_factory=dict)

    @staticmethod
    def from_yaml(path: str | Path) -> "MultiTaskTrainConfig":
        raw = yaml.safe_load(Path(path).read_text())
        if raw.pop("task", None) != "multitask":
            raise ValueError(f"{path} is not a multi-task config (task: multitask)")
        return MultiTaskTrainConfig(head=HeadConfig(**raw.pop("head")), **raw)


def is_multitask_config(path: str | Path) -> bool:
    raw = yaml.safe_load(Path(path).read_text())
    return isinstance(raw, dict) and raw.get("task") == "multitask"


def batch_tensors(split: Split, index: np.ndarray, head_input: str, level: int = 0,
                  device: torch.device | str = "cpu") -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(input, depth, labels, normals) of frames `index`; `level` picks the column of the
    decoded/latent arrays (0 for a training split, coded at one level per frame)."""
    index = np.sort(index)  # memory-mapped reads in file order
    if head_input == "latent":
        x = torch.from_numpy(np.asarray(split.latent[index, level], dtype=np.float32))
    else:
        pixels = split.decoded[index, level] if head_input == "decoded" else split.rgb[index]
        x = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).float().div_(255.0)
    depth = torch.from_numpy(np.asarray(split.depth[index], dtype=np.float32))
    labels = torch.from_numpy(np.asarray(split.labels[index], dtype=np.int64))
    normals = torch.from_numpy(np.asarray(split.normals[index], dtype=np.float32)).permute(0, 3, 1, 2)
    normals = torch.nn.functional.normalize(normals / NORMAL_SCALE, dim=1, eps=1e-6)
    return x.to(device), depth.to(device), labels.to(device), normals.to(device)


def latent_scale(split: Split, frames: int = 500) -> Tensor:
    """Per-channel standard deviation of the training latents (floored: some channels are ~0)."""
    sample = np.asarray(split.latent[:frames, 0], dtype=np.float32)
    return torch.from_numpy(sample.std(axis=(0, 2, 3))).clamp_min(0.05)


@torch.no_grad()
def validation_losses(model: MultiTaskHead, split: Split, index: np.ndarray, head_input: str,
                      device: torch.device, batch: int = 16) -> dict[str, float]:
    model.eval()
    sums: dict[str, float] = {}
    for start in range(0, len(index), batch):
        x, depth, labels, normals = batch_tensors(split, index[start:start + batch], head_input, device=device)
        losses = multitask_losses(model.predict(x, *depth.shape[-2:]), depth, labels, normals)
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + float(v) * len(x)
    model.train()
    return {k: v / len(index) for k, v in sums.items()}


def load_head_parameters(model: MultiTaskHead, path: Path) -> object:
    """A shipped head file's (`export_head`) weights and normalisation statistics, all but the
    latent input scale, which belongs to the codec the head learnt from (the caller recomputes it
    from the new pack)."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    state = {k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items() if k != "input_scale"}
    return torch.nn.Module.load_state_dict(model, state, strict=False)


def train_multitask(config: MultiTaskTrainConfig, device: str = "cpu", resume: bool = False,
                    max_minutes: float | None = None) -> Path:
    """Train and return the path of the last checkpoint (runs/<name>/last.pt)."""
    torch_device = torch.device(device)
    configure_precision(config.precision, torch_device, entropy_coded=False)
    torch.manual_seed(config.seed)
    split = load_split(Path(config.pack) / "train")
    if len(split) <= config.val_frames:
        raise ValueError(f"{split.folder} has {len(split)} frames; need more than val_frames={config.val_frames}")
    train_index = np.arange(len(split) - config.val_frames)
    val_index = np.arange(len(split) - config.val_frames, len(split))

    model = MultiTaskHead(config.head)
    if config.init_from:
        print(f"initialised from {config.init_from} ({load_head_parameters(model, Path(config.init_from))})")
    if config.head.input == "latent":  # from this pack's latents, also after init_from
        model.input_scale.copy_(latent_scale(split))
    model.to(torch_device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    checkpoint = Path(config.run_dir) / config.name / "last.pt"
    state = load_resume_state(checkpoint, model, optimizer, torch_device) if resume else None
    step = int(state["step"]) if state else 0
    if state:
        print(f"resumed {checkpoint} at step {step}")

    rng = np.random.default_rng([config.seed, step])
    started = time.monotonic()
    bar = tqdm(total=config.steps, initial=step, desc=config.name, dynamic_ncols=True)
    model.train()
    while step < config.steps:
        elapsed = time.monotonic() - started
        if max_minutes is not None and elapsed > 60 * max_minutes:
            print(f"time budget of {max_minutes} min reached at step {step}")
            break
        for group in optimizer.param_groups:
            group["lr"] = config.lr * lr_scale(step, config, elapsed, max_minutes)
        x, depth, labels, normals = batch_tensors(
            split, rng.choice(train_index, config.batch_size, replace=False), config.head.input, device=torch_device
        )
        with autocast(config.precision, torch_device):
            out = model(x)
        losses = multitask_losses({k: v.float() for k, v in out.items()}, *subsample_targets(depth, labels, normals))
        optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        step += 1
        bar.update(1)
        bar.set_postfix({k: f"{v.item():.3f}" for k, v in losses.items()})
        if step % config.checkpoint_every == 0 or step == config.steps:
            save_checkpoint(checkpoint, model, optimizer, step, config)
        if step % config.val_every == 0 or step == config.steps:
            val = validation_losses(model, split, val_index, config.head.input, torch_device)
            tqdm.write(f"step {step} val " + " ".join(f"{k}={v:.4f}" for k, v in val.items()))
    bar.close()
    save_checkpoint(checkpoint, model, optimizer, step, config)
    return checkpoint

