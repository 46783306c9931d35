"""`imgcomp.stream.DecoderCore`: bad payloads of every kind are rejected and counted and the next
frame decodes; the model cache; preloading."""

from __future__ import annotations

import dataclasses

import pytest

from imgcomp import bitstream
from imgcomp.stream import (
    DecoderCore,
    EncoderCore,
    FeaturesFields,
    ImageFields,
    Rejection,
)
from imgcomp.stream import stats as stats_mod

from stream_support import H, W, features_msg, image_msg

# one torch thread: many times faster on two busy cores; on the robot's install path too (.ci/robot.sh)
pytestmark = [pytest.mark.robot, pytest.mark.usefixtures("one_torch_thread")]


# ---------------------------------------------------------------------- decoder: bad payload
@pytest.fixture(scope="module")
def good_features(factory, photo) -> FeaturesFields:
    encoder = EncoderCore(factory, model="hyperprior-mse", quality=3)
    f = encoder.process(ImageFields.from_msg(image_msg(photo, "bgr8")))
    assert isinstance(f, FeaturesFields)
    return f


def _repacked(f: FeaturesFields, **header_changes) -> FeaturesFields:
    """The same frame, re-packed (valid checksum) with other header values; the message
    fields follow the header, as a real encoder with those settings would write them."""
    frame = bitstream.unpack(f.data)
    header = dataclasses.replace(frame.header, **header_changes)
    data = bitstream.pack(bitstream.Frame(header, frame.streams))
    return dataclasses.replace(f, data=data, codec=header.model, model_hash=header.model_hash,
                               encoding=header.encoding)


def _flip(data: bytes, index: int) -> bytes:
    raw = bytearray(data)
    raw[index] ^= 0x40
    return bytes(raw)


BAD_PAYLOADS = {
    "flipped bit": (lambda f: dataclasses.replace(f, data=_flip(f.data, len(f.data) // 2)),
                    "malformed_payload", "checksum mismatch"),
    "truncated": (lambda f: dataclasses.replace(f, data=f.data[:-7]), "malformed_payload", "checksum"),
    "empty": (lambda f: dataclasses.replace(f, data=b""), "malformed_payload", "payload is empty"),
    "not imgcomp": (lambda f: dataclasses.replace(f, data=b"\x89PNG\r\n\x1a\n" + bytes(40)),
                    "malformed_payload", "not an imgcomp bitstream"),
    "fields disagree": (lambda f: dataclasses.replace(f, width=f.width + 1),
                        "malformed_payload", "width=65 but the payload says 64"),
    "other weights": (lambda f: _repacked(f, model_hash="0123456789abcdef"), "model_mismatch", "0123456789abcdef"),
    "unknown model": (lambda f: _repacked(f, model="my-private-model"), "unknown_model", "'my-private-model'"),
    "latent shape": (lambda f: _repacked(f, latent_shape=(9, 9)), "malformed_payload", "latent shape"),
    "unknown encoding": (lambda f: _repacked(f, encoding="32FC1"), "unsupported_encoding", "32FC1"),
}


@pytest.mark.parametrize("case", list(BAD_PAYLOADS))
def test_bad_payload_is_rejected_and_the_next_frame_decodes(factory, codecs, good_features, case: str) -> None:
    corrupt, cause, text = BAD_PAYLOADS[case]
    decoder = DecoderCore(factory, model="hyperprior-mse")
    bad = corrupt(good_features)
    result = decoder.process(FeaturesFields.from_msg(features_msg(bad)))
    assert isinstance(result, Rejection), result
    assert result.cause == cause and text in result.message, result
    if cause == "model_mismatch":  # the error names both hashes
        assert codecs["hyperprior-mse"].model_hash in result.message
    assert decoder.stats.rejected_by_cause == {cause: 1}
    assert decoder.diagnostics()[f"rejected.{cause}"] == "1"
    assert decoder.status()[0] == stats_mod.ERROR  # frames came in, nothing decoded yet
    good = decoder.process(FeaturesFields.from_msg(features_msg(good_features)))
    assert isinstance(good, ImageFields) and (good.height, good.width, good.encoding) == (H, W, "bgr8")
    assert decoder.status()[0] == stats_mod.WARN  # decoding again, rejections in the window


def test_unknown_model_is_never_loaded(factory, good_features) -> None:
    decoder = DecoderCore(factory, model="hyperprior-mse")
    before = len(factory.calls)
    decoder.process(_repacked(good_features, model="my-private-model"))
    assert len(factory.calls) == before and decoder.loaded_models == ["hyperprior-mse"]


def test_decoder_model_cache_is_bounded(factory, codecs, good_features) -> None:
    decoder = DecoderCore(factory, model="factorized-mse", max_cached_models=1)
    assert isinstance(decoder.process(good_features), ImageFields)
    assert decoder.loaded_models == ["hyperprior-mse"]


def test_decoder_preload(factory) -> None:
    decoder = DecoderCore(factory, model=None)
    assert decoder.loaded_models == []
    decoder.preload("factorized-mse")
    assert decoder.loaded_models == ["factorized-mse"]
    with pytest.raises(ValueError, match="unknown model"):
        decoder.preload("no-such-model")


