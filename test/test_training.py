"""Real (short) training runs: the loss goes down, resume continues, DDP runs on two CPU processes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from imgcomp.data.crops import RandomCropSampler, load_images
from imgcomp.models.gained import build_model
from imgcomp.models.registry import export_weights, install_weights, sha256_of
from imgcomp.training.rd import RDLoss, TrainConfig, train

REPO = Path(__file__).resolve().parent.parent
SMOKE = REPO / "config" / "models" / "smoke.yaml"


def _smoke_config(tmp_path: Path, steps: int) -> TrainConfig:
    config = TrainConfig.from_yaml(SMOKE)
    config.train_dir = str(REPO / config.train_dir)
    config.val_dir = str(REPO / config.val_dir)
    config.run_dir = str(tmp_path)
    config.steps = steps
    return config


def _held_out_loss(codec, config: TrainConfig) -> float:
    sampler = RandomCropSampler(load_images(Path(config.train_dir)), config.crop, seed=12345)
    criterion = RDLoss(config.lambdas, config.distortion, config.ms_ssim_window)
    x = torch.from_numpy(sampler.batch(16)).float() / 255
    levels = torch.arange(16) % config.arch.levels
    codec.train()  # noisy-quantization proxy, as optimised
    torch.manual_seed(0)
    with torch.no_grad():
        return float(criterion(codec(x, levels), x, levels)["loss"])


def test_short_training_lowers_the_loss(tmp_path):
    config = _smoke_config(tmp_path, steps=80)
    torch.manual_seed(config.seed)
    before = _held_out_loss(build_model(config.arch), config)
    checkpoint = train(config)
    trained = build_model(config.arch)
    trained.load_state_dict(torch.load(checkpoint, weights_only=False)["model"])
    after = _held_out_loss(trained, config)
    assert after < 0.7 * before, (before, after)


def test_resume_continues_from_the_checkpoint(tmp_path):
    config = _smoke_config(tmp_path, steps=10)
    train(config)
    config.steps = 14
    checkpoint = train(config, resume=True)
    assert torch.load(checkpoint, weights_only=False)["step"] == 14


def test_export_writes_weights_with_a_verified_hash(tmp_path):
    config = _smoke_config(tmp_path, steps=4)
    checkpoint = train(config)
    path = export_weights(checkpoint, out_dir=tmp_path / "weights")
    manifest = (tmp_path / "weights" / "manifest.json").read_text()
    assert sha256_of(path) in manifest
    assert (tmp_path / "weights" / "smoke.md").exists()
    shipped = torch.load(path, weights_only=True)["state_dict"]
    # fp16 would flush these constants to zero (and turn rates into inf when fine-tuning from it)
    assert shipped["gaussian_conditional.likelihood_lower_bound.bound"].dtype == torch.float32
    assert float(shipped["gaussian_conditional.likelihood_lower_bound.bound"]) == pytest.approx(1e-9)
    assert shipped["g_a.0.weight"].dtype == torch.float16


def test_install_merges_exported_weights_into_a_weights_folder(tmp_path):
    """What comes back from a GPU run: installed beside the models already shipped."""
    config = _smoke_config(tmp_path, steps=2)
    exported = export_weights(train(config), out_dir=tmp_path / "exported")
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / "manifest.json").write_text(json.dumps({"other": {"file": "other.pt", "sha256": "00"}}))
    assert install_weights(tmp_path / "exported", shipped) == ["smoke"]
    manifest = json.loads((shipped / "manifest.json").read_text())
    assert sorted(manifest) == ["other", "smoke"]
    assert manifest["smoke"]["sha256"] == sha256_of(shipped / "smoke.pt") == sha256_of(exported)
    assert (shipped / "smoke.md").read_text() == (tmp_path / "exported" / "smoke.md").read_text()


def test_fine_tuning_starts_from_shipped_weights(tmp_path):
    """`init_from` loads an exported (fp16, with CDF buffers) file into a fresh model."""
    config = _smoke_config(tmp_path, steps=6)
    exported = export_weights(train(config), out_dir=tmp_path / "weights")
    shipped = torch.load(exported, weights_only=True)["state_dict"]
    config.run_dir = str(tmp_path / "fine")
    config.steps = 1
    config.lr = 1e-12  # one step that cannot move the weights: they must be the shipped ones
    config.init_from = str(exported)
    tuned = torch.load(train(config), weights_only=False)["model"]
    for key in ("g_a.0.weight", "h_s.0.weight", "entropy_bottleneck.quantiles"):
        assert torch.allclose(tuned[key].float(), shipped[key].float(), atol=1e-3), key


def test_fine_tuned_weights_record_the_training_they_started_from(tmp_path):
    config = _smoke_config(tmp_path, steps=3)
    first = export_weights(train(config), out_dir=tmp_path / "first")
    config.run_dir = str(tmp_path / "fine")
    config.steps, config.batch_size = 2, 2
    config.init_from = str(first)
    second = export_weights(train(config), out_dir=tmp_path / "second")
    entry = json.loads((second.parent / "manifest.json").read_text())["smoke"]
    assert entry["earlier_training"] == [{"trained_steps": 3, "batch_size": 4, "crop": 64}]
    assert (entry["trained_steps"], entry["batch_size"]) == (2, 2)
    card = (second.parent / "smoke.md").read_text()
    assert "3 steps at batch 4 on 64x64, then 2 steps at batch 2 on 64x64 (each stage" in card


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_distributed_training_on_two_cpu_processes(tmp_path):
    """torchrun + gloo: the same command users run on several GPUs; replicas must stay identical."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        "-m", "imgcomp", "train", "--config", str(SMOKE), "--steps", "6", "--run-dir", str(tmp_path), "--threads", "1",
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    state = torch.load(tmp_path / "smoke" / "last.pt", weights_only=False)
    assert state["step"] == 6
