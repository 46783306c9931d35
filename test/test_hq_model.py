"""hyperprior-mse-hq: the refinement block and the extra levels start exactly at hyperprior-mse."""

from pathlib import Path

import torch

from imgcomp.models.gained import build_model, extrapolate_levels
from imgcomp.models.registry import load_model
from imgcomp.training.checkpoints import load_initial_weights
from imgcomp.training.rd import TrainConfig

CONFIG = Path(__file__).resolve().parents[1] / "config/models/hyperprior-mse-hq.yaml"


def _initialised() -> torch.nn.Module:
    config = TrainConfig.from_yaml(CONFIG)
    model = build_model(config.arch)
    load_initial_weights(model, Path(__file__).resolve().parents[1] / config.init_from)
    return model.eval()


def test_refinement_at_init_reproduces_the_base_model() -> None:
    base = load_model("hyperprior-mse")
    base = base[0] if isinstance(base, tuple) else base
    hq = _initialised()
    y_hat = torch.randn(1, 128, 4, 5, generator=torch.Generator().manual_seed(0)) * 3
    with torch.no_grad():
        for level in range(6):
            a = base.float().synthesise(y_hat, level)
            b = hq.synthesise(y_hat, level)
            assert torch.equal(a, b), level


def test_extra_levels_continue_the_gain_ratio() -> None:
    gains = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 500.0]])
    out = extrapolate_levels(gains, 4)
    assert out.shape == (4, 3)
    # median ratio 2, applied to every channel (the x500 outlier does not run away)
    assert torch.allclose(out[2:], torch.tensor([[4.0, 8.0, 1000.0], [8.0, 16.0, 2000.0]]))


def test_extrapolated_levels_give_a_finite_loss_and_more_bits() -> None:
    hq = _initialised()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        bpp = []
        for level in (5, 6, 7):
            out = hq(x, level)
            assert torch.isfinite(out["x_hat"]).all()
            bpp.append(sum(-torch.log2(p).sum() for p in out["likelihoods"].values()).item())
    assert bpp[0] < bpp[1] < bpp[2]
