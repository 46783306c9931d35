"""`imgcomp.stream.EncoderCore` (with DecoderCore for the round trips): real rosbags messages
(CDR-serialized and parsed back) with the real codec, every encoding, bad inputs of every kind,
model and quality switches, rate control."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from imgcomp import bitstream
from imgcomp.image import image_from_msg_fields, image_to_msg_fields
from imgcomp.metrics import psnr
from imgcomp.models.registry import WeightsError
from imgcomp.stream import (
    DecoderCore,
    EncoderCore,
    FeaturesFields,
    ImageFields,
    Rejection,
)
from imgcomp.stream import stats as stats_mod

from stream_support import FRAME_ID, H, W, features_msg, image_msg, out_msg, raw_image_msg, roundtrip

# one torch thread: many times faster on two busy cores; on the robot's install path too (.ci/robot.sh)
pytestmark = [pytest.mark.robot, pytest.mark.usefixtures("one_torch_thread")]


# ---------------------------------------------------------------------- image round trips
ENCODINGS = ["rgb8", "bgr8", "mono8", "rgba8", "yuv422", "bayer_rggb8", "mono16"]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_roundtrip_every_encoding(encoder, decoder, codecs, photo, encoding: str) -> None:
    msg = image_msg(photo, encoding)
    features, out = roundtrip(encoder, decoder, msg)
    # The message describes the source and carries what the codec made of it.
    assert (features.codec, features.model_hash) == ("hyperprior-mse", codecs["hyperprior-mse"].model_hash)
    assert (features.height, features.width, features.encoding, features.quality) == (H, W, encoding, 6)
    source = image_from_msg_fields(msg.data, msg.height, msg.width, msg.encoding, msg.step, msg.is_bigendian)
    # Decoded output: same header, size and encoding as the source, exactly the codec's pixels.
    back = out_msg(out)
    assert (back.header.stamp.sec, back.header.stamp.nanosec) == (msg.header.stamp.sec, msg.header.stamp.nanosec)
    assert back.header.frame_id == FRAME_ID
    assert (back.height, back.width, back.encoding, back.step) == (msg.height, msg.width, msg.encoding, msg.step)
    expected = image_to_msg_fields(codecs["hyperprior-mse"].decode(features.data), encoding)[0]
    assert bytes(back.data) == expected
    # And it looks like the source (the shipped weights are small; top quality, small crop).
    decoded = image_from_msg_fields(back.data, back.height, back.width, back.encoding, back.step, 0)
    assert decoded.shape == source.shape
    assert psnr(source, decoded) > 15.0


@pytest.mark.parametrize("size", [(1, 1), (37, 53), (17, 130)], ids=lambda s: f"{s[1]}x{s[0]}")
def test_odd_sizes_keep_their_size(encoder, decoder, photo, size) -> None:
    h, w = size
    rgb = np.ascontiguousarray(cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA))
    msg = image_msg(rgb, "rgb8", stamp_ns=42, frame_id="odd")
    _, out = roundtrip(encoder, decoder, msg)
    assert (out.height, out.width, out.step, len(out.data)) == (h, w, 3 * w, 3 * h * w)
    assert out.frame_id == "odd" and (out.stamp.sec, out.stamp.nanosec) == (0, 42)


def test_row_padding_in_the_source_is_accepted(encoder, decoder, photo) -> None:
    padded = np.zeros((H, 3 * W + 8), dtype=np.uint8)
    padded[:, : 3 * W] = photo.reshape(H, 3 * W)
    msg = raw_image_msg(step=3 * W + 8, data=padded.reshape(-1))
    out = decoder.process(FeaturesFields.from_msg(features_msg(encoder.process(ImageFields.from_msg(msg)))))
    assert isinstance(out, ImageFields) and out.step == 3 * W  # republished packed


def test_frame_numbers_count_published_frames(encoder, photo) -> None:
    msg = image_msg(photo, "rgb8")
    numbers = []
    for _ in range(3):
        numbers.append(encoder.process(ImageFields.from_msg(msg)).frame_number)
        encoder.process(ImageFields.from_msg(raw_image_msg(encoding="nope")))  # rejected: no number
    assert numbers == [0, 1, 2]
    assert bitstream.unpack(encoder.process(ImageFields.from_msg(msg)).data).header.frame_number == 3


# ------------------------------------------------------------------------ encoder: bad input
BAD_INPUTS = {
    "unsupported encoding": (dict(encoding="32FC1", step=4 * W, data=np.zeros(4 * H * W, np.uint8)),
                             "unsupported_encoding", "unsupported image encoding '32FC1'"),
    "truncated data": (dict(data=np.zeros(3 * H * W - 1, np.uint8)), "bad_image", "too short"),
    "zero height": (dict(height=0, data=np.zeros(0, np.uint8)), "bad_image", "must be positive"),
    "zero width": (dict(width=0, step=0), "bad_image", "must be positive"),
    "step too small": (dict(step=3 * W - 1), "bad_image", "step"),
    "odd width yuv422": (dict(encoding="yuv422", width=W - 1, step=2 * (W - 1)), "bad_image", "even width"),
    "huge image": (dict(height=100_000, width=100_000, step=300_000), "too_large", "more than max_input_pixels"),
    "side over the codec limit": (dict(height=1, width=20_000, step=60_000, data=np.zeros(60_000, np.uint8)),
                                  "too_large", "side over"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_classified_counted_and_the_next_frame_encodes(factory, photo, case: str) -> None:
    fields, cause, text = BAD_INPUTS[case]
    encoder = EncoderCore(factory, model="hyperprior-mse", max_pixels=8192 * 8192 if "side" in case else 1920 * 1080)
    result = encoder.process(ImageFields.from_msg(raw_image_msg(**fields)))
    assert isinstance(result, Rejection)
    assert result.cause == cause and text in result.message
    assert encoder.stats.rejected_by_cause == {cause: 1}
    snap = encoder.diagnostics()
    assert snap[f"rejected.{cause}"] == "1" and snap["rejected_payloads"] == "1"
    good = encoder.process(ImageFields.from_msg(image_msg(photo, "rgb8")))
    assert isinstance(good, FeaturesFields)
    assert encoder.stats.outputs_total == 1


def test_encode_failure_inside_the_codec_is_contained(factory, photo) -> None:
    """A codec error (here: its own size validation, reached by lifting the core's limit
    check) becomes encode_failed or too_large, never an exception."""
    encoder = EncoderCore(factory, model="hyperprior-mse")
    encoder._precheck = lambda image: None  # reach the codec with a side over its limit
    msg = raw_image_msg(height=1, width=17_000, step=51_000, data=np.zeros(51_000, np.uint8))
    result = encoder.process(ImageFields.from_msg(msg))
    assert isinstance(result, Rejection) and result.cause == "encode_failed"
    assert "exceeds the limit" in result.message


def test_model_and_quality_switch_at_runtime(factory, codecs, photo) -> None:
    encoder = EncoderCore(factory, model="hyperprior-mse", quality=2)
    decoder = DecoderCore(factory, model="hyperprior-mse")
    msg = image_msg(photo, "rgb8")
    assert encoder.process(ImageFields.from_msg(msg)).quality == 2
    encoder.set_quality(5)
    assert encoder.process(ImageFields.from_msg(msg)).quality == 5
    with pytest.raises(ValueError):
        encoder.set_quality(encoder.levels + 1)
    encoder.set_model("factorized-mse")
    f = encoder.process(ImageFields.from_msg(msg))
    assert (f.codec, f.model_hash, f.quality) == ("factorized-mse", codecs["factorized-mse"].model_hash, 5)
    # The decoder was started with the hyperprior model and loads the one the payload names.
    out = decoder.process(FeaturesFields.from_msg(features_msg(f)))
    assert isinstance(out, ImageFields)
    assert decoder.loaded_models == ["hyperprior-mse", "factorized-mse"]
    with pytest.raises(WeightsError):
        encoder.set_model("no-such-model")
    assert encoder.model_name == "factorized-mse"  # the old model stays in use


def test_switching_to_a_fixed_rate_model_by_name(factory, photo) -> None:
    """The fixed-rate families are selected by name like any other model."""
    from imgcomp.models.registry import load_manifest
    from imgcomp.models.fixed_rate import FIXED_RATE_FAMILIES

    name = next(n for n, e in sorted(load_manifest().items()) if e["family"] == "lossy-cae")
    assert load_manifest()[name]["family"] in FIXED_RATE_FAMILIES
    encoder = EncoderCore(factory, model="hyperprior-mse", quality=4)
    decoder = DecoderCore(factory, model="hyperprior-mse")
    encoder.set_model(name)
    assert (encoder.levels, encoder.quality) == (1, 1)  # clamped to the model's single level
    features, out = roundtrip(encoder, decoder, image_msg(photo, "rgb8"))
    assert features.codec == name and (out.height, out.width) == photo.shape[:2]


def test_model_switch_during_an_encode_is_safe(factory, photo) -> None:
    """Frames encoded while another thread switches models all decode, each with its model."""
    encoder = EncoderCore(factory, model="hyperprior-mse")
    decoder = DecoderCore(factory, model=None)
    msg = image_msg(photo, "rgb8")
    results: list = []
    stop = threading.Event()

    def encode_loop():
        while not stop.is_set():
            results.append(encoder.process(ImageFields.from_msg(msg)))

    thread = threading.Thread(target=encode_loop)
    thread.start()
    try:
        for model in ("factorized-mse", "hyperprior-mse", "factorized-mse"):
            time.sleep(0.05)
            encoder.set_model(model)
            encoder.set_quality(1 + len(results) % encoder.levels)
    finally:
        stop.set()
        thread.join()
    assert len(results) >= 3
    models = set()
    for f in results:
        assert isinstance(f, FeaturesFields)
        assert isinstance(decoder.process(FeaturesFields.from_msg(features_msg(f))), ImageFields)
        models.add(f.codec)
    assert "factorized-mse" in models


def test_rate_control_through_the_encoder(factory, photo) -> None:
    clock = iter(np.arange(0, 100, 1 / 30))
    encoder = EncoderCore(factory, model="hyperprior-mse", quality=6, target_kbps=1.0)
    msg = image_msg(photo, "rgb8")
    qualities = [encoder.process(ImageFields.from_msg(msg), now=next(clock)).quality for _ in range(4)]
    assert qualities[0] == 6 and qualities[1:] == [1, 1, 1]  # far below the range: lowest level
    diag = encoder.diagnostics()
    assert diag["rate_range"] == "below_range" and "holding level 1" in diag["rate_note"]
    level, message = encoder.status()
    assert level == stats_mod.WARN and "below the lowest level" in message
    encoder.set_target_kbps(0)
    assert encoder.process(ImageFields.from_msg(msg), now=next(clock)).quality == 6


