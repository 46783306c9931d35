"""The study's three families: shapes, the binarizer, seam-free tiling, training, and the shipped
weights through `Codec` (round trip, malformed payloads, lossless coding gain)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from imgcomp import BitstreamError, Codec
from imgcomp.bitstream import Frame, pack, unpack
from imgcomp.data.crops import RandomCropSampler, load_images
from imgcomp.models.gained import ArchConfig, build_model
from imgcomp.models.registry import load_manifest
from imgcomp.models.fixed_rate import FIXED_RATE_FAMILIES, CycleGAN, binarize, laplacian_target, tiled
from imgcomp.training.fixed_rate import fixed_rate_distortion
from imgcomp.training.rd import TrainConfig, train

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "test" / "fixtures" / "images"
SHIPPED_FIXED_RATE = sorted(n for n, e in load_manifest().items() if e["family"] in FIXED_RATE_FAMILIES)


def _arch(family: str, latent: int) -> ArchConfig:
    return ArchConfig(family, channels=16, latent_channels=latent, hyper_channels=8, levels=1, lambdas=(1.0,))


@pytest.mark.parametrize(
    "family, latent, feature_scale",
    [("autoencoder", 1, 4), ("lossy-cae", 8, 4), ("lossy-cae", 32, 4), ("cyclegan", 3, 2)],
)
def test_forward_shapes(family: str, latent: int, feature_scale: int) -> None:
    net = build_model(_arch(family, latent))
    x = torch.rand(2, 3, 96, 160)
    out = net(x)
    assert out["x_hat"].shape == x.shape
    assert out["features"].shape == (2, latent, 96 // feature_scale, 160 // feature_scale)
    net.eval()
    features = net(x)["features"]
    if family == "lossy-cae":
        assert set(features.unique().tolist()) <= {-1.0, 1.0}
    else:  # 8-bit images
        assert torch.equal(features, torch.round(features * 255) / 255)


def test_binarizer_is_stochastic_in_training_with_a_straight_through_gradient() -> None:
    torch.manual_seed(0)
    t = torch.tensor([-0.8, -0.2, 0.0, 0.5, 0.9]).repeat(20000, 1).requires_grad_(True)
    b = binarize(t, training=True)
    assert set(b.unique().tolist()) == {-1.0, 1.0}
    # E[b] = t: P(b = 1) = (1 + t) / 2
    assert torch.allclose(b.mean(0), t[0].detach(), atol=0.02)
    weights = torch.arange(5.0).repeat(20000, 1)
    (b * weights).sum().backward()
    assert torch.equal(t.grad, weights)  # identity gradient, whatever b came out as
    # Inference is deterministic: the sign (0 counts as +1).
    assert binarize(t[0].detach(), training=False).tolist() == [-1.0, -1.0, 1.0, 1.0, 1.0]


def _cyclegan() -> CycleGAN:
    torch.manual_seed(1)
    net = build_model(ArchConfig("cyclegan", channels=16, latent_channels=3, hyper_channels=8, levels=1, lambdas=(1.0,)))
    return net.eval()


def test_patchwise_inference_has_no_seams(real_images) -> None:
    net = _cyclegan()
    image = torch.from_numpy(real_images["vtest_frame0"]).permute(2, 0, 1)[None].float() / 255
    x = image[..., :192, :256]
    tile, margin = 64, 16
    with torch.no_grad():
        whole = net.generator_g(x)
        stitched = tiled(net.generator_g, x, tile, margin, 0.5, align=2)
        without_margin = tiled(net.generator_g, x, tile, 0, 0.5, align=2)
    assert stitched.shape == whole.shape == (1, 3, 96, 128)
    assert float((stitched - whole).abs().max()) < 1e-5

    def border_excess(y: torch.Tensor) -> float:
        """How much larger the jumps between neighbouring pixels are across tile borders than in
        the whole-frame output at the same places, relative to the typical jump inside tiles."""
        excess = []
        for axis in (-1, -2):
            d = y.diff(dim=axis).abs()
            ref = whole.diff(dim=axis).abs()
            idx = torch.arange(tile // 2 - 1, d.shape[axis], tile // 2)
            across = d.index_select(axis, idx).mean() - ref.index_select(axis, idx).mean()
            excess.append(float(across / ref.mean()))
        return max(excess)

    assert border_excess(stitched) < 0.01
    # The check can fail: tiles without context do leave seams.
    assert border_excess(without_margin) > 0.05
    assert float((without_margin - whole).abs().max()) > 1e-3


def test_large_frames_go_through_tiles_and_decode_to_the_whole_frame_result() -> None:
    net = _cyclegan()
    net.TILE, net.MARGIN = 64, 16
    x = torch.rand(1, 3, 160, 224)
    with torch.no_grad():
        tiled_y = net.encode_features(x)
        assert torch.allclose(tiled_y, net.generator_g(x), atol=1e-5)
        assert torch.allclose(net.decode_features(tiled_y), net.generator_f(tiled_y), atol=1e-5)


def test_laplacian_target_is_mostly_flat() -> None:
    x = torch.full((1, 3, 64, 64), 0.5)
    assert torch.allclose(laplacian_target(x), torch.full((1, 1, 16, 16), 0.5))


@pytest.mark.parametrize("kind", ["mse", "ssim", "ms-ssim", "ms-ssim-l1"])
def test_distortions_are_zero_for_identical_images_and_grow_with_noise(kind: str) -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 3, 192, 192)
    same = float(fixed_rate_distortion(x, x, kind, {}))
    noisy = float(fixed_rate_distortion(x, (x + 0.1 * torch.randn_like(x)).clamp(0, 1), kind, {}))
    assert abs(same) < 1e-4 < noisy


def _config(tmp_path: Path, family: str, latent: int, distortion: str, steps: int) -> TrainConfig:
    config = TrainConfig(
        name=f"smoke-{family}", arch=_arch(family, latent), distortion=distortion, lambdas=(1.0,),
        train_dir=str(FIXTURES), val_dir=str(FIXTURES), run_dir=str(tmp_path), crop=64, batch_size=4,
        steps=steps, lr=2e-3, val_every=1000, checkpoint_every=1000,
    )
    if family == "autoencoder":
        config.extra = {"laplacian_weight": 0.5}
    return config


def _held_out(net, config: TrainConfig) -> float:
    sampler = RandomCropSampler(load_images(Path(config.train_dir)), config.crop, seed=4321)
    x = torch.from_numpy(sampler.batch(16)).float() / 255
    net.eval()
    with torch.no_grad():
        return float(fixed_rate_distortion(x, net(x)["x_hat"], config.distortion, {}))


@pytest.mark.slow
@pytest.mark.parametrize(
    "family, latent, distortion, steps",
    [("autoencoder", 1, "ssim", 60), ("lossy-cae", 8, "mse", 200), ("cyclegan", 3, "ms-ssim-l1", 60)],
)
def test_short_real_training_lowers_the_loss(tmp_path, family: str, latent: int, distortion: str, steps: int) -> None:
    config = _config(tmp_path, family, latent, distortion, steps=steps)
    torch.manual_seed(config.seed)
    before = _held_out(build_model(config.arch), config)
    checkpoint = train(config)
    trained = build_model(config.arch)
    trained.load_state_dict(torch.load(checkpoint, weights_only=False)["model"])
    after = _held_out(trained, config)
    assert after < 0.8 * before, (before, after)


def test_fixed_rate_configs_parse() -> None:
    for path in sorted((REPO / "config" / "models").glob("*.yaml")):
        config = TrainConfig.from_yaml(path)
        if config.arch.family in FIXED_RATE_FAMILIES:
            assert config.arch.levels == 1


# --------------------------------------------------------------------------- shipped weights
@pytest.fixture(scope="module")
def fixed_rate_codecs() -> dict[str, Codec]:
    return {name: Codec(name) for name in SHIPPED_FIXED_RATE}


def test_every_family_is_shipped() -> None:
    families = {load_manifest()[n]["family"] for n in SHIPPED_FIXED_RATE}
    assert families == set(FIXED_RATE_FAMILIES)


@pytest.mark.parametrize("name", SHIPPED_FIXED_RATE)
def test_round_trip_odd_sizes_and_mono(fixed_rate_codecs, real_images, name: str) -> None:
    codec = fixed_rate_codecs[name]
    image = real_images["astronaut_odd"]
    for crop in (image, image[:37, :53], image[:, :, 1]):
        out = codec.decode(codec.encode(crop))
        assert out.shape == crop.shape and out.dtype == np.uint8


@pytest.mark.parametrize("name", SHIPPED_FIXED_RATE)
def test_lossless_coding_is_exact_and_saves_bits(fixed_rate_codecs, real_images, name: str) -> None:
    """The coded features decode to exactly the quantized ones, in fewer bits than raw.

    How many fewer depends on the content (busy textures least): over the committed crops the
    test asks for 15 %; the issue's 30 % on average over the validation photos is measured by
    `imgcomp compare` (coded / raw column of the README's table)."""
    codec = fixed_rate_codecs[name]
    raw_total = coded_total = 0
    for image in real_images.values():
        payload, latent = codec.encode_with_latent(image)
        frame = codec.parse(payload)
        assert torch.equal(codec.decode_y_hat(frame), latent)  # lossless: identical reconstruction
        h, w = frame.header.latent_shape
        d = codec.net.downsampling
        raw_total += codec.net.raw_bits(h * d, w * d)
        coded_total += 8 * len(frame.streams[0])
    assert coded_total <= 0.85 * raw_total, f"{name}: coded {coded_total} bits vs raw {raw_total}"


@pytest.mark.parametrize("name", SHIPPED_FIXED_RATE)
def test_malformed_payloads_are_rejected(fixed_rate_codecs, real_images, name: str) -> None:
    codec = fixed_rate_codecs[name]
    payload = codec.encode(real_images["home"][:48, :64])
    for cut in range(0, len(payload), max(1, len(payload) // 40)):
        with pytest.raises(BitstreamError):
            codec.decode(payload[:cut])
    rng = np.random.default_rng(0)
    for _ in range(20):
        corrupted = bytearray(payload)
        corrupted[rng.integers(len(corrupted))] ^= 1 << int(rng.integers(8))
        with pytest.raises(BitstreamError):
            codec.decode(bytes(corrupted))
    # A valid container (checksum recomputed) around a damaged feature stream.
    frame = unpack(payload)
    stream = frame.streams[0]
    for damaged in (stream[: len(stream) // 2], stream[::-1], b"\x00" * 64):
        with pytest.raises(BitstreamError):
            codec.decode(pack(Frame(frame.header, (damaged,))))


def test_compare_writes_the_comparison_table_and_grid(tmp_path, monkeypatch) -> None:
    import imgcomp.eval.compare as compare

    monkeypatch.setitem(compare.SIZES, "96x64", (96, 64))
    models = [SHIPPED_FIXED_RATE[0], "factorized-mse"]
    result = compare.run_compare(models, FIXTURES, tmp_path, sizes=["96x64"], grid_crops=2)
    rows = {r["model"]: r for r in result["sizes"]["96x64"]["rows"]}
    assert len(result["sizes"]["96x64"]["images"]) == 5  # every fixture covers 96x64
    fixed = rows[SHIPPED_FIXED_RATE[0]]
    assert fixed["raw_bpp"] > 0 and fixed["coded_bpp"] > 0 and fixed["frames"] == 5
    assert rows["factorized-mse"]["raw_bpp"] is None
    assert fixed["compression_ratio"] == pytest.approx(24 / fixed["coded_bpp"])
    markdown = (tmp_path / "compare.md").read_text()
    assert "| T200 (s) |" in markdown and SHIPPED_FIXED_RATE[0] in markdown
    assert (tmp_path / "grid.jpg").stat().st_size > 1000
