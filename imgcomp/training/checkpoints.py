"""Checkpoints and the learning-rate schedule shared by every trainer (rate-distortion, the
fixed-rate families, the multi-task heads)."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["load_initial_weights", "load_resume_state", "lr_scale", "save_checkpoint"]


def save_checkpoint(
    path: Path, codec: nn.Module, optimizer: torch.optim.Optimizer, step: int, config: Any, **extra_state: dict
) -> None:
    """Write the checkpoint atomically; `extra_state` adds entries (e.g. a second optimizer)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    state = {"step": step, "model": codec.state_dict(), "optimizer": optimizer.state_dict(), "config": asdict(config)}
    torch.save({**state, **extra_state}, tmp)
    os.replace(tmp, path)  # atomic: an interrupted save never corrupts the last checkpoint


def load_resume_state(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device) -> dict | None:
    """Restore model and optimizer from the checkpoint `path` if it exists and return its whole
    state (step, extra optimizers), else None."""
    if not path.exists():
        return None
    state = torch.load(path, map_location=device, weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return state


def load_initial_weights(model: nn.Module, path: Path) -> object:
    """Start from a shipped weights file (fine-tuning): learned parameters only.

    nn.Module's loader, not CompressAI's: that one insists on the CDF buffers, which a shipped
    file has but a fresh model rebuilds with update(). A model with more quality levels than the
    file gets the extra gain vectors by extrapolation (`extrapolate_levels`). Returns the
    missing/unexpected keys."""
    from imgcomp.models.gained import extrapolate_levels
    from imgcomp.models.registry import load_state_dict_file

    learned = dict(model.named_parameters())
    initial = {k: v for k, v in load_state_dict_file(path).items() if k in learned}
    for name in ("gain", "inverse_gain"):
        if name in initial and initial[name].shape != learned[name].shape:
            initial[name] = extrapolate_levels(initial[name].float(), learned[name].shape[0])
    return torch.nn.Module.load_state_dict(model, initial, strict=False)


def lr_scale(step: int, config: Any, elapsed_s: float, max_minutes: float | None) -> float:
    """0.1 after `lr_drop_at` of the steps or of the time budget, else 1."""
    late = step >= config.lr_drop_at * config.steps or (
        max_minutes is not None and elapsed_s > config.lr_drop_at * 60 * max_minutes
    )
    return 0.1 if late else 1.0
