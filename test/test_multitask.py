"""Multi-task perception from the codec features: data pack, head, losses and metrics, training,
shipped heads, the payload -> perception path and the multi-task node's core (without ROS)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from imgcomp import bitstream
from imgcomp.models.registry import WeightsError
from imgcomp.multitask.model import HeadConfig, MultiTaskHead, subsample_targets
from imgcomp.multitask.objectives import MetricAccumulator, multitask_losses, relative_gap
from imgcomp.multitask.pack import build_split, load_split
from imgcomp.multitask.train import MultiTaskTrainConfig, batch_tensors, train_multitask
from imgcomp.multitask.weights import available_heads, export_head, load_head
from imgcomp.stream import FeaturesFields, MultiTaskCore, PerceptionFields, Rejection
from imgcomp.stream import stats as stats_mod
from imgcomp.multitask.scenes import CLASSES, TEST_FIRST_SEED

SIZE = 64  # small frames keep the pack and training runs short


@pytest.fixture(scope="module")
def pack(tmp_path_factory) -> Path:
    """A real pack: 40 rendered training frames and 6 test frames, coded by hyperprior-mse."""
    root = tmp_path_factory.mktemp("pack")
    build_split(root / "train", "hyperprior-mse", list(range(40)), SIZE, all_levels=False, workers=1)
    build_split(root / "test", "hyperprior-mse", list(range(TEST_FIRST_SEED, TEST_FIRST_SEED + 6)), SIZE,
                all_levels=True, workers=1)
    return root


def _config(pack: Path, run_dir: Path, head_input: str, steps: int) -> MultiTaskTrainConfig:
    return MultiTaskTrainConfig(
        name=f"multitask-{head_input}", head=HeadConfig(input=head_input, width=32, blocks=1), pack=str(pack),
        run_dir=str(run_dir), batch_size=8, steps=steps, lr=3e-3, val_frames=8, val_every=1000, checkpoint_every=1000,
    )


# ------------------------------------------------------------------------------------- the pack
def test_pack_holds_what_the_codec_decodes_from_its_payloads(pack, hyperprior_codec) -> None:
    test = load_split(pack / "test")
    train = load_split(pack / "train")
    assert len(test) == 6 and len(train) == 40
    assert test.latent.shape == (6, hyperprior_codec.levels, 128, 4, 4)
    assert train.latent.shape[1] == 1 and set(np.unique(train.quality)) <= set(range(1, 7))
    assert len(set(train.quality[:, 0])) > 1  # training frames span several quality levels
    for i, q in ((0, 1), (3, 4), (5, 6)):
        payload = test.payload(i, q)
        assert bitstream.unpack(payload).header.quality == q
        np.testing.assert_array_equal(test.decoded[i, q - 1], hyperprior_codec.decode(payload))
        latent = hyperprior_codec.decode_latent(payload)[0].numpy().astype(np.float16)
        np.testing.assert_array_equal(test.latent[i, q - 1], latent)
    normals = test.normals.astype(np.float32) / 127.0
    assert np.allclose(np.linalg.norm(normals, axis=-1), 1.0, atol=0.02)
    assert test.labels.max() < len(CLASSES) and (test.depth > 0).all()
    with pytest.raises(ValueError, match="every level"):
        train.level_index(1)
    with pytest.raises(ValueError, match="quality must be"):
        test.level_index(7)


# -------------------------------------------------------------------------------------- the head
@pytest.mark.parametrize("height, width", [(37, 53), (64, 64), (100, 17), (1, 1)])
def test_head_outputs_match_odd_image_sizes(hyperprior_codec, height: int, width: int) -> None:
    image = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    payload = hyperprior_codec.encode(image, quality=2)
    for head_input in ("latent", "decoded", "original"):
        head = MultiTaskHead(HeadConfig(input=head_input, width=32, blocks=1)).eval()
        if head_input == "latent":
            x = hyperprior_codec.decode_latent(payload)
        else:
            x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            out = head.predict(x, height, width)
        assert out["depth"].shape == (1, 1, height, width) and (out["depth"] > 0).all()
        assert out["seg"].shape == (1, len(CLASSES), height, width)
        assert out["normals"].shape == (1, 3, height, width)
        assert torch.allclose(out["normals"].norm(dim=1), torch.ones(1, height, width), atol=1e-4)


def test_latent_head_refuses_a_latent_too_small_for_the_image() -> None:
    head = MultiTaskHead(HeadConfig(input="latent", width=32, blocks=1)).eval()
    with pytest.raises(ValueError, match="cannot cover"):
        head.predict(torch.zeros(1, 128, 2, 2), 64, 33)
    with pytest.raises(ValueError, match="input must be one of"):
        HeadConfig(input="pixels")


# ------------------------------------------------------------------------- losses and metrics
def test_metrics_on_known_predictions() -> None:
    depth = torch.full((1, 4, 4), 2.0)
    labels = torch.tensor([[[0, 0, 1, 1]] * 4])
    normals = torch.zeros(1, 3, 4, 4)
    normals[:, 2] = 1.0
    logits = torch.nn.functional.one_hot(labels, 6).permute(0, 3, 1, 2).float()

    perfect = MetricAccumulator(6)
    perfect.add(depth[:, None], logits, normals, depth, labels, normals)
    assert perfect.result() == pytest.approx(
        {"abs_rel": 0.0, "delta1": 1.0, "miou": 1.0, "normal_mean_deg": 0.0, "normal_11_25": 1.0}, abs=1e-3)

    tilted = torch.zeros(1, 3, 4, 4)
    tilted[:, 0], tilted[:, 2] = math.sin(math.radians(20)), math.cos(math.radians(20))
    wrong_logits = logits.clone()
    wrong_logits[..., 3] = torch.nn.functional.one_hot(torch.tensor(0), 6).float()[:, None]  # column 3 -> class 0
    off = MetricAccumulator(6)
    off.add(depth[:, None] * 1.3, wrong_logits, tilted, depth, labels, normals)
    result = off.result()
    assert result["abs_rel"] == pytest.approx(0.3, abs=1e-5) and result["delta1"] == 0.0
    # class 0: 8 true, 12 predicted, 8 overlap -> 2/3; class 1: 8 true, 4 predicted -> 1/2
    assert result["miou"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert result["normal_mean_deg"] == pytest.approx(20.0, abs=1e-3) and result["normal_11_25"] == 0.0
    assert relative_gap(0.11, 0.10, "abs_rel") == pytest.approx(0.1)
    assert relative_gap(0.45, 0.50, "miou") == pytest.approx(0.1)
    assert relative_gap(0.55, 0.50, "miou") == pytest.approx(-0.1)
    with pytest.raises(ValueError):
        MetricAccumulator(6).result()


def test_losses_vanish_only_for_the_truth() -> None:
    depth = torch.rand(2, 8, 8) + 1
    labels = torch.randint(0, 6, (2, 8, 8))
    normals = torch.nn.functional.normalize(torch.randn(2, 3, 8, 8), dim=1)
    truth = {"log_depth": depth.log()[:, None], "seg": 50 * torch.nn.functional.one_hot(labels, 6).permute(0, 3, 1, 2).float(),
             "normals": normals}
    at_truth = multitask_losses(truth, depth, labels, normals)
    assert all(float(at_truth[k]) < 1e-3 for k in ("depth", "seg", "normals"))
    scaled = dict(truth, log_depth=truth["log_depth"] + math.log(2.0))  # twice as far everywhere
    assert float(multitask_losses(scaled, depth, labels, normals)["depth"]) > 0.2  # scale still counts
    assert subsample_targets(torch.zeros(2, 64, 48))[0].shape == (2, 16, 12)


# ---------------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def trained(pack, tmp_path_factory) -> dict[str, Path]:
    """Checkpoints of three short real training runs (one per input) on the pack."""
    run_dir = tmp_path_factory.mktemp("runs")
    torch.set_num_threads(1)
    return {k: train_multitask(_config(pack, run_dir, k, steps=120 if k == "latent" else 20)) for k in ("latent", "decoded", "original")}


@torch.no_grad()
def _losses_on(model: MultiTaskHead, pack: Path, head_input: str) -> dict[str, float]:
    split = load_split(pack / "train")
    model.eval()
    x, depth, labels, normals = batch_tensors(split, np.arange(32), head_input)
    return {k: float(v) for k, v in multitask_losses(model(x), *subsample_targets(depth, labels, normals)).items()}


def test_short_training_lowers_every_loss(pack, trained) -> None:
    config = _config(pack, Path("unused"), "latent", steps=0)
    torch.manual_seed(config.seed)
    initial = MultiTaskHead(config.head)  # the run's own initial weights (same seed)
    from imgcomp.multitask.train import latent_scale

    initial.input_scale.copy_(latent_scale(load_split(pack / "train")))
    state = torch.load(trained["latent"], weights_only=False)
    assert state["step"] == 120
    final = MultiTaskHead(config.head)
    final.load_state_dict(state["model"])
    before, after = _losses_on(initial, pack, "latent"), _losses_on(final, pack, "latent")
    for name in ("depth", "seg", "normals"):
        assert after[name] < 0.8 * before[name], (name, before[name], after[name])


def test_training_resumes_from_its_checkpoint(pack, trained, tmp_path) -> None:
    run_dir = Path(trained["decoded"]).parent.parent
    config = dataclasses.replace(_config(pack, run_dir, "decoded", steps=25))
    checkpoint = train_multitask(config, resume=True)
    assert torch.load(checkpoint, weights_only=False)["step"] == 25


# ------------------------------------------------------------------- export, load, evaluate
def test_exported_heads_load_verified_and_evaluate(pack, trained, tmp_path) -> None:
    from imgcomp.multitask.evaluate import run_multitask_eval

    heads_dir = tmp_path / "heads"
    for checkpoint in trained.values():
        export_head(checkpoint, heads_dir)
    assert available_heads(heads_dir) == ["multitask-decoded", "multitask-latent", "multitask-original"]
    head, entry = load_head("multitask-latent", heads_dir)
    assert entry["input"] == "latent" and entry["codec"] == "hyperprior-mse" and entry["steps"] == 120
    assert "hyperprior-mse" in (heads_dir / "multitask-latent.md").read_text()

    report = run_multitask_eval(quality=2, out_dir=tmp_path / "out", pack=pack, heads_dir=heads_dir, timing_frames=2,
                                camera_frames=1)
    assert set(report.rows) == {"latent", "decoded", "original"} and set(report.by_quality) == set(range(1, 7))
    assert all(0 <= report.rows[k]["miou"] <= 1 for k in report.rows)
    assert set(report.timing_ms) == set(report.camera_timing_ms) == {"latent", "decoded"}
    saved = json.loads((tmp_path / "out" / "multitask.json").read_text())
    assert saved["latent_vs_decoded"] == pytest.approx(report.gaps())
    assert "latent vs decoded" in (tmp_path / "out" / "multitask.md").read_text()
    assert (tmp_path / "out" / "grid.jpg").stat().st_size > 10_000

    weights = heads_dir / "multitask-latent.pt"
    raw = bytearray(weights.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    weights.write_bytes(bytes(raw))
    with pytest.raises(WeightsError, match="sha256"):
        load_head("multitask-latent", heads_dir)
    with pytest.raises(WeightsError, match="unknown multi-task head"):
        load_head("multitask-nothing", heads_dir)


# ------------------------------------------------------- shipped head: payload -> perception
@pytest.fixture(scope="module")
def perceiver(hyperprior_codec):
    from imgcomp.multitask.predictor import Perceiver

    return Perceiver("multitask-latent", codec_factory=lambda name: hyperprior_codec)


@pytest.mark.parametrize("shape", [(75, 101, 3), (48, 64), (256, 256, 3)])
def test_shipped_head_perceives_payloads_of_any_size(perceiver, hyperprior_codec, real_images, shape) -> None:
    photo = next(iter(real_images.values()))
    image = np.resize(photo, shape).astype(np.uint8)
    payload = hyperprior_codec.encode(image, quality=3)
    p = perceiver.perceive(payload)
    assert p.depth.shape == shape[:2] and p.depth.dtype == np.float32 and (p.depth > 0).all()
    assert p.labels.shape == shape[:2] and p.labels.max() < len(CLASSES)
    assert p.normals.shape == (*shape[:2], 3)
    assert np.allclose(np.linalg.norm(p.normals, axis=-1), 1.0, atol=1e-3)
    head, _ = load_head("multitask-latent")
    with torch.no_grad():
        direct = head.predict(hyperprior_codec.decode_latent(payload), *shape[:2])
    np.testing.assert_allclose(p.depth, direct["depth"][0, 0].numpy(), rtol=1e-5)


def test_shipped_head_is_tied_to_its_codec_weights(perceiver) -> None:
    entry = perceiver.entry
    assert entry["codec"] == "hyperprior-mse" and entry["codec_hash"] == perceiver.codec.model_hash


def _features(codec, image: np.ndarray, quality: int = 3) -> FeaturesFields:
    data = codec.encode(image, quality=quality)
    h = bitstream.unpack(data).header
    return FeaturesFields(data=data, codec=h.model, model_hash=h.model_hash, quality=h.quality, height=h.height,
                          width=h.width, encoding=h.encoding, stamp=(12, 34), frame_id="cam")


def test_core_publishes_five_images_and_survives_bad_payloads(perceiver, hyperprior_codec, factorized_codec) -> None:
    from imgcomp.multitask.scenes import render_scene

    frame = render_scene(TEST_FIRST_SEED, 96, 128)
    core = MultiTaskCore(perceiver)
    good = _features(hyperprior_codec, frame.rgb)
    out = core.process(good)
    assert isinstance(out, PerceptionFields)
    expected = {"depth": ("32FC1", 4), "labels": ("mono8", 1), "labels_color": ("rgb8", 3),
                "normals": ("32FC3", 12), "normals_color": ("rgb8", 3)}
    for name, (encoding, bytes_per_pixel) in expected.items():
        image = getattr(out, name)
        assert (image.encoding, image.height, image.width) == (encoding, 96, 128)
        assert image.step == 128 * bytes_per_pixel and len(image.data) == 96 * image.step
        assert (image.stamp, image.frame_id) == ((12, 34), "cam")
    depth = np.frombuffer(out.depth.data, dtype="<f4").reshape(96, 128)
    assert np.isfinite(depth).all() and (depth > 0).all()

    frame_bytes = bitstream.unpack(good.data)
    forged = bitstream.pack(bitstream.Frame(dataclasses.replace(frame_bytes.header, model_hash="0123456789abcdef"),
                                            frame_bytes.streams))
    bad = {
        "malformed_payload": dataclasses.replace(good, data=good.data[:-5]),
        "head_mismatch": _features(factorized_codec, frame.rgb),
        "model_mismatch": dataclasses.replace(good, data=forged, model_hash="0123456789abcdef"),
    }
    for cause, fields in bad.items():
        result = core.process(fields)
        assert isinstance(result, Rejection) and result.cause == cause, result
    assert "factorized-mse" in core.process(bad["head_mismatch"]).message
    assert core.stats.rejected_by_cause == {"malformed_payload": 1, "head_mismatch": 2, "model_mismatch": 1}
    assert isinstance(core.process(good), PerceptionFields)
    diagnostics = core.diagnostics()
    assert diagnostics["head"] == "multitask-latent" and diagnostics["rejected.head_mismatch"] == "2"
    assert core.status()[0] == stats_mod.WARN


def _stream_fields(payloads: list[bytes]) -> list[FeaturesFields]:
    out = []
    for data in payloads:
        h = bitstream.unpack(data).header
        out.append(FeaturesFields(data=data, codec=h.model, model_hash=h.model_hash, quality=h.quality, height=h.height,
                                  width=h.width, encoding=h.encoding, frame_type=h.frame_type,
                                  frame_number=h.frame_number, reference_frame_number=h.reference_frame_number,
                                  stamp=(h.frame_number, 0), frame_id="cam"))
    return out


def test_core_reads_a_pframes_reconstructed_latent(perceiver, hyperprior_codec) -> None:
    """Temporal mode: the head reads each P-frame's latent as reconstructed against its stream's
    reference (real vtest.avi frames); a P-frame without its reference is refused, never guessed."""
    from imgcomp.temporal.stream import StreamDecoder, StreamEncoder
    from imgcomp.video import read_video

    clip = Path(__file__).resolve().parent / "fixtures" / "vtest_100f_192x144.avi"
    frames, _ = read_video(clip, 6)
    encoder = StreamEncoder(hyperprior_codec, keyframe_interval=5)
    sent = [encoder.encode(f, quality=3) for f in frames]
    assert [e.keyframe for e in sent] == [True, False, False, False, False, True]
    fields = _stream_fields([e.payload for e in sent])
    core = MultiTaskCore(perceiver)
    reference = StreamDecoder(hyperprior_codec)
    for t, f in enumerate(fields):
        out = core.process(f)
        assert isinstance(out, PerceptionFields), out
        header, y_hat = reference.decode_latent(f.data)
        assert np.array_equal(y_hat, sent[t].y_hat)
        expected = perceiver.perceive_latent(header, y_hat)
        np.testing.assert_array_equal(np.frombuffer(out.depth.data, dtype="<f4").reshape(144, 192), expected.depth)
    # a key frame read as a latent gives what the payload path gives
    np.testing.assert_allclose(perceiver.perceive_latent(*StreamDecoder(hyperprior_codec).decode_latent(fields[0].data)).depth,
                               perceiver.perceive(fields[0].data).depth, rtol=1e-6)
    assert core.diagnostics()["pframes_decoded"] == "4"
    lossy = MultiTaskCore(perceiver)
    results = [lossy.process(f) for t, f in enumerate(fields) if t != 2]
    assert [type(r).__name__ for r in results] == ["PerceptionFields", "PerceptionFields", "Rejection", "Rejection",
                                                  "PerceptionFields"]
    assert results[2].cause == "missing_reference" and lossy.stats.rejected_by_cause == {"missing_reference": 2}
    # the worker's skipped frames keep the reference
    catching = MultiTaskCore(perceiver)
    catching.process(fields[0])
    assert catching.catch_up(fields[1:3]) == 2
    assert isinstance(catching.process(fields[3]), PerceptionFields)
