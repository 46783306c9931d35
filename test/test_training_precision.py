"""The GPU session's training knobs: precision (`imgcomp train --precision`: bf16 autocast only
where no entropy model sums likelihoods, and real training steps under it) and multi-task heads
that start from their shipped weights (`--init-from`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from imgcomp.training.precision import autocast, configure_precision
from imgcomp.training.rd import TrainConfig, train

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "test" / "fixtures" / "images"


def _config(name: str, tmp_path: Path, precision: str) -> TrainConfig:
    config = TrainConfig.from_yaml(REPO / "config" / "models" / f"{name}.yaml")
    config.train_dir = config.val_dir = str(FIXTURES)
    config.run_dir, config.steps, config.batch_size, config.crop = str(tmp_path), 2, 2, 64
    config.precision = precision
    return config


def test_bf16_is_refused_for_an_entropy_coded_model_and_unknown_precisions_too(tmp_path):
    with pytest.raises(ValueError, match="entropy model"):
        train(_config("smoke", tmp_path, "bf16"))
    with pytest.raises(ValueError, match="precision must be one of"):
        configure_precision("fp8", "cpu", entropy_coded=False)


def test_autocast_runs_convolutions_in_bf16_only_when_asked():
    conv, x = torch.nn.Conv2d(3, 4, 3), torch.rand(1, 3, 8, 8)
    with autocast("bf16", "cpu"):
        assert conv(x).dtype == torch.bfloat16
    with autocast("tf32", "cpu"):
        assert conv(x).dtype == torch.float32


@pytest.mark.parametrize("name", ["cae8-ssim", "cyclegan-ssim"])
def test_a_fixed_rate_family_trains_under_bf16_autocast(tmp_path, name):
    torch.manual_seed(0)
    checkpoint = train(_config(name, tmp_path, "bf16"))
    state = torch.load(checkpoint, weights_only=False)
    assert state["step"] == 2 and state["config"]["precision"] == "bf16"
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert all(v.dtype != torch.bfloat16 for v in state["model"].values())  # weights stay float32


def test_a_head_starts_from_its_shipped_weights_but_not_its_latent_scale():
    from imgcomp.multitask.model import HeadConfig, MultiTaskHead
    from imgcomp.multitask.train import load_head_parameters

    path = REPO / "imgcomp" / "weights" / "multitask" / "multitask-latent.pt"
    payload = torch.load(path, weights_only=True)
    torch.manual_seed(1)
    head = MultiTaskHead(HeadConfig(**payload["head"]))
    result = load_head_parameters(head, path)
    assert not result.unexpected_keys and result.missing_keys == ["input_scale"]
    for name, value in head.state_dict().items():
        if name != "input_scale":
            assert torch.equal(value, payload["state_dict"][name].to(value.dtype)), name
    assert torch.equal(head.input_scale, torch.ones_like(head.input_scale))  # recomputed from the new pack
