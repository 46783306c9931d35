"""`model: avif` (and jpeg, jxl, webp) through the node cores: EncoderCore -> CompressedFeatures
(CDR through rosbags) -> DecoderCore -> Image, with runtime quality, target bitrate and model
changes, diagnostics, rejections, and a real rosbag2 round trip with the bag tools."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from imgcomp.classical import classical_hash
from imgcomp.codec import Codec
from imgcomp.defaults import CLASSICAL_MODELS
from imgcomp.image import image_from_msg_fields
from imgcomp.metrics import psnr
from imgcomp.stream import DecoderCore, EncoderCore, FeaturesFields, ImageFields, Rejection

from stream_support import FRAME_ID, H, W, features_msg, image_msg, out_msg, roundtrip

pytestmark = [pytest.mark.robot, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture
def classical_factory(factory):
    """The conftest factory (learned models already loaded); classical codecs load instantly."""
    return factory


@pytest.mark.parametrize("name", CLASSICAL_MODELS)
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8", "rgba8", "mono16", "yuv422"])
def test_model_name_through_encoder_message_decoder(classical_factory, photo, name, encoding):
    encoder = EncoderCore(classical_factory, model=name, quality=6)
    decoder = DecoderCore(classical_factory, model=None)  # loads the codec the payload names
    msg = image_msg(photo, encoding)
    features, out = roundtrip(encoder, decoder, msg)
    assert (features.codec, features.model_hash, features.quality) == (name, classical_hash(name), 6)
    assert (features.height, features.width, features.encoding, features.frame_type) == (H, W, encoding, 0)
    back = out_msg(out)
    assert (back.height, back.width, back.encoding, back.step) == (msg.height, msg.width, msg.encoding, msg.step)
    assert back.header.frame_id == FRAME_ID
    source = image_from_msg_fields(msg.data, msg.height, msg.width, msg.encoding, msg.step, msg.is_bigendian)
    decoded = image_from_msg_fields(back.data, back.height, back.width, back.encoding, back.step, 0)
    assert decoded.shape == source.shape
    assert psnr(source, decoded) > 25.0
    assert decoder.loaded_models == [name]


@pytest.mark.parametrize("name", CLASSICAL_MODELS)
def test_runtime_quality_and_target_bitrate(classical_factory, photo, name):
    encoder = EncoderCore(classical_factory, model=name, quality=1, fps_hint=10.0)
    msg = ImageFields.from_msg(image_msg(photo, "rgb8"))
    low = encoder.process(msg, now=0.0)
    encoder.set_quality(6)
    high = encoder.process(msg, now=0.1)
    assert (low.quality, high.quality) == (1, 6) and len(high.data) > len(low.data)
    with pytest.raises(ValueError):
        encoder.set_quality(7)
    # A target between the two levels' rates: the controller mixes levels to hold it.
    target = 10 * 8e-3 * (len(low.data) + len(high.data)) / 2
    encoder.set_target_kbps(target)
    levels = {encoder.process(msg, now=0.2 + 0.1 * i).quality for i in range(30)}
    assert len(levels) >= 2 and levels <= set(range(1, 7))
    diag = encoder.diagnostics()
    assert (diag["model"], diag["model_hash"], diag["levels"], diag["rate_control"]) == (name, classical_hash(name), "6", "on")
    assert diag["rate_range"] == "in_range"


def test_switching_between_a_learned_model_and_a_classical_codec_at_runtime(classical_factory, photo):
    encoder = EncoderCore(classical_factory, model="hyperprior-mse", quality=6)
    decoder = DecoderCore(classical_factory, model="hyperprior-mse")
    msg = image_msg(photo, "rgb8")
    first, _ = roundtrip(encoder, decoder, msg)
    encoder.set_model("avif")
    second, out = roundtrip(encoder, decoder, msg)
    assert (first.codec, second.codec, second.quality) == ("hyperprior-mse", "avif", 6)
    assert second.frame_number == 0  # a model switch starts a new stream (new stream id, numbers from 0)
    assert sorted(decoder.loaded_models) == ["avif", "hyperprior-mse"]
    encoder.set_model("hyperprior-mse")
    third, _ = roundtrip(encoder, decoder, msg)
    assert third.codec == "hyperprior-mse"


def test_payloads_that_lie_about_their_codec_are_rejected_and_the_next_frame_decodes(classical_factory, photo):
    encoder = EncoderCore(classical_factory, model="avif", quality=3)
    decoder = DecoderCore(classical_factory, model=None)
    good = encoder.process(ImageFields.from_msg(image_msg(photo, "rgb8")))
    # The message says jxl, the payload avif: the fields disagree with the payload.
    fields = FeaturesFields.from_msg(features_msg(good))
    lying = FeaturesFields(**{**fields.__dict__, "codec": "jxl", "model_hash": classical_hash("jxl")})
    assert decoder.process(lying).cause == "malformed_payload"
    # A JPEG file in a payload that names avif: refused from the file's header, before libavif.
    from imgcomp.bitstream import Frame, pack_fields, unpack

    frame = unpack(good.data)
    jpeg = unpack(Codec("jpeg").encode(photo)).streams
    forged = pack_fields(Frame(frame.header, jpeg))
    result = decoder.process(FeaturesFields(**{**fields.__dict__, "data": forged}))
    assert isinstance(result, Rejection) and result.cause == "malformed_payload"
    assert "AVIF" in result.message
    # Same name, another hash (a future format revision): a model mismatch naming both.
    from dataclasses import replace

    renamed = pack_fields(Frame(replace(frame.header, model_hash="00" * 8), frame.streams))
    result = decoder.process(FeaturesFields(**{**fields.__dict__, "data": renamed, "model_hash": "00" * 8}))
    assert result.cause == "model_mismatch" and classical_hash("avif") in result.message
    assert isinstance(decoder.process(fields), ImageFields)
    counts = decoder.diagnostics()
    assert counts["rejected.malformed_payload"] == "2" and counts["rejected.model_mismatch"] == "1"


def test_bag_compress_and_decompress_with_a_classical_codec(tmp_path, real_images):
    from imgcomp.rosbag import compress, decompress, info
    from imgcomp.rosbag.io import open_writer
    from imgcomp.rosbag.messages import IMAGE_TYPE, make_image_msg, typestore

    raw = tmp_path / "raw"
    frames = [np.ascontiguousarray(real_images[k][:48, :64]) for k in ("baboon", "fruits", "home")]
    with open_writer(raw) as writer:
        for i, rgb in enumerate(frames):
            image = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if i == 1 else rgb
            msg = make_image_msg(1000 + i, "cam", image, "mono8" if i == 1 else "rgb8")
            writer.write_raw("/camera/image_raw", IMAGE_TYPE, 1000 + i, typestore().serialize_cdr(msg, IMAGE_TYPE))
    summary = compress(raw, tmp_path / "comp", model="webp", quality=4, progress=False)
    assert summary.frames == 3
    report = info(tmp_path / "comp")
    assert "webp" in str(report)
    decompress(tmp_path / "comp", tmp_path / "dec", progress=False)
    from rosbags.rosbag2 import Reader

    from imgcomp.rosbag.messages import deserialize

    with Reader(tmp_path / "dec") as reader:
        out = [deserialize(raw_msg, IMAGE_TYPE) for _, _, raw_msg in reader.messages()]
    assert [m.encoding for m in out] == ["rgb8", "mono8", "rgb8"]
    for msg, rgb in zip(out, frames):
        got = image_from_msg_fields(msg.data, msg.height, msg.width, msg.encoding, msg.step, 0)
        ref = rgb if msg.encoding == "rgb8" else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        assert psnr(ref, got) > 24


def test_a_node_backend_and_threads_apply_to_a_classical_codec_without_a_fallback() -> None:
    """A node on `backend: openvino, threads: 1` serving `model: avif`: the codec loads as asked
    (its libraries take the thread count), no 'could not load' fallback is logged."""
    from imgcomp.classical import set_threads, threads
    from imgcomp.stream.backend import codec_factory

    fallbacks: list[str] = []
    before = threads()
    try:
        codec = codec_factory("onnxruntime", "cpu", fallbacks.append, threads=2)("avif")
        assert fallbacks == [] and codec.model_name == "avif" and threads() == 2
    finally:
        set_threads(before)
    with pytest.raises(ValueError, match="threads"):
        Codec("webp", threads=-1)
