"""The encoder's effort mode (`Codec.encode(..., effort=N)`, `imgcomp.models.refine`).

Refined payloads are the ordinary format (a fresh codec decodes them), effort 0 is the one-pass
encoder byte for byte, and on real photos the refined encode has a lower real rate-distortion
objective (bytes actually written, pixels actually decoded) than effort 0 at the same level.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from imgcomp.bitstream import FRAME_KEY, Frame, FrameHeader, pack, unpack
from imgcomp.codec import Codec
from imgcomp.metrics import ms_ssim_per_sample
from imgcomp.models.refine import EFFORTS, RDTarget, refine_latents, rd_loss
from imgcomp.padding import pad_to_multiple

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "images"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def msssim_codec():
    return Codec("hyperprior-msssim")


@pytest.fixture(scope="module")
def crop(real_images) -> np.ndarray:
    """A 112x128 crop of a real photo: large enough for the 5-scale MS-SSIM (7x7 window)."""
    return np.ascontiguousarray(real_images["baboon"][:112, :128])


def real_objective(codec: Codec, image: np.ndarray, payload: bytes, level: int) -> float:
    """bpp of the whole payload + lambda * D of the image a fresh decode returns: the objective
    the model was trained on, from real bytes and real pixels, computed here independently."""
    decoded = codec.decode(payload)
    lam = codec.net.arch.lambdas[level - 1]
    bpp = 8.0 * len(payload) / (image.shape[0] * image.shape[1])
    ref = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
    dec = torch.from_numpy(decoded).permute(2, 0, 1)[None].float() / 255.0
    if codec.entry["distortion"] == "ms-ssim":
        window = 11 if min(image.shape[:2]) >= 161 else 7
        return bpp + lam * float(1.0 - ms_ssim_per_sample(ref, dec, window=window))
    return bpp + lam * float(255.0**2 * (ref - dec).pow(2).mean())


def test_effort_zero_is_the_one_pass_encoder(hyperprior_codec, factorized_codec, crop):
    for codec in (hyperprior_codec, factorized_codec):
        for level in (1, 4):
            # today's path, spelled out without Codec.encode: analysis, entropy coding, container
            x, _ = pad_to_multiple(torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255.0, codec.net.downsampling)
            with torch.no_grad():
                out = codec.net.compress(x, level - 1)
            header = FrameHeader(
                model=codec.model_name, model_hash=codec.model_hash, height=crop.shape[0], width=crop.shape[1],
                channels=3, encoding="rgb8", quality=level, frame_type=FRAME_KEY, frame_number=0,
                reference_frame_number=0, latent_shape=tuple(int(v) for v in out["shape"]),
            )
            expected = pack(Frame(header, tuple(s[0] for s in out["strings"])))
            assert codec.encode(crop, quality=level) == expected
            assert codec.encode(crop, quality=level, effort=0) == expected


@pytest.mark.parametrize("model,effort", [("hyperprior-mse", 1), ("hyperprior-mse", 2), ("hyperprior-msssim", 1), ("factorized-mse", 1)])
def test_refined_payload_decodes_and_lowers_the_real_objective(model, effort, crop, hyperprior_codec, factorized_codec, msssim_codec):
    codec = {"hyperprior-mse": hyperprior_codec, "factorized-mse": factorized_codec, "hyperprior-msssim": msssim_codec}[model]
    level = 3
    plain = codec.encode(crop, quality=level)
    refined = codec.encode(crop, quality=level, effort=effort)
    assert refined != plain
    fresh = Codec(model)  # a decoder that never saw the encoder's state
    frame = unpack(refined)
    assert frame.header.quality == level and len(frame.streams) == len(fresh.net.compress_stream_names)
    assert fresh.decode(refined).shape == crop.shape
    before, after = real_objective(fresh, crop, plain, level), real_objective(fresh, crop, refined, level)
    assert after < before, f"effort {effort}: objective {after:.4f} not below effort 0's {before:.4f}"


def test_refined_encode_is_reproducible(hyperprior_codec, crop):
    small = np.ascontiguousarray(crop[:64, :64])
    assert hyperprior_codec.encode(small, quality=2, effort=2) == hyperprior_codec.encode(small, quality=2, effort=2)


def test_mono_source_refines_against_what_the_decoder_returns(factorized_codec, real_images):
    gray = np.ascontiguousarray(real_images["home"][:96, :128].mean(axis=2).astype(np.uint8))
    plain = factorized_codec.encode(gray, quality=2)
    refined = factorized_codec.encode(gray, quality=2, effort=1)
    assert factorized_codec.decode(refined).shape == gray.shape
    lam = factorized_codec.net.arch.lambdas[1]

    def objective(payload: bytes) -> float:
        err = factorized_codec.decode(payload).astype(np.float64) - gray
        return 8.0 * len(payload) / gray.size + lam * float(np.mean(err**2))

    assert objective(refined) < objective(plain)


def test_sga_lowers_the_relaxed_objective(hyperprior_codec, crop):
    """The annealing phase itself works: its last soft losses are below its first."""
    codec = hyperprior_codec
    a = codec.analyse_image(crop, 3)
    target = codec.rd_target(3, crop.shape[0], crop.shape[1])
    trace: list[float] = []
    refine_latents(codec.net, a.x, a.y, a.z, 2, target, EFFORTS[2], trace=trace)
    sga = trace[: EFFORTS[2].sga_steps]
    assert np.mean(sga[-5:]) < np.mean(sga[:3])
    # the weights are untouched and trainable again afterwards
    assert all(p.requires_grad for p in codec.net.parameters())
    assert all(p.grad is None for p in codec.net.parameters())


def test_rd_loss_matches_training_rate_at_integer_latents(hyperprior_codec, crop):
    """At already-rounded latents the refinement's rate is the training forward's estimate."""
    codec = hyperprior_codec
    a = codec.analyse_image(crop, 2)
    target = RDTarget(codec.net.arch.lambdas[1], "mse", crop.shape[0], crop.shape[1])
    with torch.no_grad():
        y, z = torch.round(a.y), a.z
        _, bpp, _ = rd_loss(codec.net, a.x, y, z, 1, target, torch.round)
        out = codec.net(a.x, 1)  # eval mode: rounding, as the decoder sees it
        expected = sum(-torch.log2(v).sum() for v in out["likelihoods"].values()) / (crop.shape[0] * crop.shape[1])
    assert float(bpp) == pytest.approx(float(expected), rel=1e-4)


def test_bad_effort_is_a_clear_error(hyperprior_codec, crop):
    for bad in (-1, 4, 1.5, True, "2"):
        with pytest.raises(ValueError, match="effort must be an integer in 0..3"):
            hyperprior_codec.encode(crop, effort=bad)


def test_effort_needs_an_entropy_model(crop):
    codec = Codec("ae-mse")
    with pytest.raises(ValueError, match="no entropy model"):
        codec.encode(crop, effort=1)
    codec.encode(crop, effort=0)


def test_effort_refuses_frames_beyond_the_whole_frame_limit(hyperprior_codec):
    big = np.zeros((1100, 1920, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="1920x1088"):
        hyperprior_codec.encode(big, effort=1)


def test_bench_effort_command_writes_json_and_markdown(tmp_path, capsys):
    """`imgcomp bench-effort` on one tiny real crop: rows, curves and the BD-rate table."""
    from imgcomp.cli.main import main

    out = tmp_path / "effort"
    argv = ["bench-effort", "--models", "factorized-mse", "--images", str(FIXTURES), "--max-images", "1",
            "--crop", "96x64", "--efforts", "0", "1", "--threads", "1", "--split", "fixture crop", "--out", str(out)]
    assert main(argv) == 0
    result = json.loads((out / "effort.json").read_text())
    entries = {e["effort"]: e for e in result["models"]["factorized-mse"]["efforts"]}
    assert set(entries) == {0, 1} and all(len(e["curve"]) == 6 for e in entries.values())
    assert entries[0]["bd_rate_vs_effort0_psnr"] == pytest.approx(0.0, abs=1e-6)
    assert entries[1]["encode_s_per_image"] > entries[0]["encode_s_per_image"]
    assert len((out / "points.jsonl").read_text().splitlines()) == 2 * 6
    assert "fixture crop" in (out / "effort.md").read_text() and "BD-rate" in capsys.readouterr().out
    # --resume measures nothing again
    before = (out / "points.jsonl").read_text()
    assert main([*argv, "--resume"]) == 0
    assert (out / "points.jsonl").read_text() == before


def test_effort_on_the_command_line(capsys):
    from imgcomp.cli.main import build_parser, main

    parser = build_parser()
    assert parser.parse_args(["eval"]).effort == 0
    assert parser.parse_args(["eval", "--effort", "2"]).effort == 2
    for bad in ("4", "-1", "two"):
        with pytest.raises(SystemExit) as exited:
            parser.parse_args(["eval", "--effort", bad])
        assert exited.value.code == 2
    assert "--effort" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="--cards records the one-pass encoder"):
        main(["eval", "--effort", "1", "--cards"])


def test_classical_codecs_take_effort_zero_only(crop):
    codec = Codec("jpeg")
    assert codec.encode(crop, quality=3, effort=0) == codec.encode(crop, quality=3)
    with pytest.raises(ValueError, match="no latents to refine"):
        codec.encode(crop, effort=1)
