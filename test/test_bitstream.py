"""The container rejects every malformed payload with BitstreamError, never a crash or garbage."""

from __future__ import annotations

import struct
import zlib
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgcomp.eval.baselines import jpeg_encode
from imgcomp.bitstream import MAGIC, BitstreamError, Frame, ModelMismatchError, pack, unpack


pytestmark = pytest.mark.robot  # on the robot's install path too (.ci/robot.sh, docs/robot.md)


@pytest.fixture(scope="module")
def payload(hyperprior_codec, real_images) -> bytes:
    return hyperprior_codec.encode(real_images["astronaut_odd"][:40, :56], quality=2)


def test_a_valid_payload_parses_and_decodes(hyperprior_codec, payload):
    frame = unpack(payload)
    assert frame.header.model == "hyperprior-mse"
    assert frame.header.model_hash == hyperprior_codec.model_hash
    assert (frame.header.height, frame.header.width, frame.header.quality) == (40, 56, 2)
    assert hyperprior_codec.decode(payload).shape == (40, 56, 3)


def test_truncation_at_every_offset_is_rejected(hyperprior_codec, payload):
    for cut in range(len(payload)):
        with pytest.raises(BitstreamError):
            hyperprior_codec.decode(payload[:cut])


def test_appended_bytes_are_rejected(hyperprior_codec, payload):
    with pytest.raises(BitstreamError):
        hyperprior_codec.decode(payload + b"\x00")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_bit_flips_are_rejected(hyperprior_codec, payload, data):
    flips = data.draw(st.lists(st.integers(0, 8 * len(payload) - 1), min_size=1, max_size=4, unique=True))
    corrupted = bytearray(payload)
    for bit in flips:
        corrupted[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(BitstreamError):
        hyperprior_codec.decode(bytes(corrupted))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.binary(max_size=600))
def test_foreign_bytes_are_rejected(hyperprior_codec, junk):
    with pytest.raises(BitstreamError):
        hyperprior_codec.decode(junk)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.binary(min_size=8, max_size=300))
def test_junk_behind_a_valid_magic_is_rejected(hyperprior_codec, junk):
    with pytest.raises(BitstreamError):
        hyperprior_codec.decode(MAGIC + junk)


def test_empty_payload_says_so(hyperprior_codec):
    with pytest.raises(BitstreamError, match="empty"):
        hyperprior_codec.decode(b"")


def test_a_jpeg_is_not_mistaken_for_a_payload(hyperprior_codec, real_images):
    with pytest.raises(BitstreamError, match="not an imgcomp bitstream"):
        hyperprior_codec.decode(jpeg_encode(real_images["home"], 80))


def test_payload_from_other_weights_names_both_hashes(hyperprior_codec, factorized_codec, real_images):
    foreign = factorized_codec.encode(real_images["home"])
    with pytest.raises(ModelMismatchError) as excinfo:
        hyperprior_codec.decode(foreign)
    assert factorized_codec.model_hash in str(excinfo.value)
    assert hyperprior_codec.model_hash in str(excinfo.value)


def test_same_model_name_with_other_weights_is_a_mismatch(hyperprior_codec, payload):
    frame = unpack(payload)
    forged = pack(Frame(replace(frame.header, model_hash="0123456789abcdef"), frame.streams))
    with pytest.raises(ModelMismatchError, match="0123456789abcdef"):
        hyperprior_codec.decode(forged)


def _repack(frame: Frame, **changes) -> bytes:
    return pack(Frame(replace(frame.header, **changes), frame.streams))


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"latent_shape": (2, 3)}, "latent shape"),
        ({"quality": 99}, "quality"),
        ({"height": 100000}, "exceeds"),
        ({"frame_type": 1}, "predicted"),
    ],
)
def test_consistent_checksum_but_inconsistent_header_is_rejected(hyperprior_codec, payload, changes, message):
    """A well-formed container whose fields contradict the model never reaches the entropy decoder."""
    with pytest.raises(BitstreamError, match=message):
        hyperprior_codec.decode(_repack(unpack(payload), **changes))


def test_unknown_version_is_named(hyperprior_codec, payload):
    body = bytearray(payload[:-4])
    body[4] = 7
    with pytest.raises(BitstreamError, match="version 7"):
        hyperprior_codec.decode(bytes(body) + struct.pack(">I", zlib.crc32(bytes(body))))


def test_missing_stream_is_rejected(hyperprior_codec, payload):
    frame = unpack(payload)
    with pytest.raises(BitstreamError, match="streams"):
        hyperprior_codec.decode(pack(Frame(frame.header, frame.streams[:1])))


def test_decoder_keeps_working_after_bad_payloads(hyperprior_codec, payload):
    for bad in (b"", b"IMGC", payload[:10], bytes(np.random.default_rng(0).integers(0, 256, 64, dtype=np.uint8))):
        with pytest.raises(BitstreamError):
            hyperprior_codec.decode(bad)
    assert hyperprior_codec.decode(payload).shape == (40, 56, 3)


@settings(max_examples=200, deadline=None)
@given(
    model=st.text(min_size=1, max_size=40),
    digest=st.binary(min_size=8, max_size=8),
    height=st.integers(1, 8192),
    width=st.integers(1, 8192),
    channels=st.sampled_from([1, 3]),
    encoding=st.sampled_from(["rgb8", "bgr8", "mono8", "yuv422", "bayer_rggb8"]),
    quality=st.integers(0, 255),
    frame_number=st.integers(0, 2**32 - 1),
    latent=st.tuples(st.integers(0, 65535), st.integers(0, 65535)),
    streams=st.lists(st.binary(max_size=64), max_size=4),
)
def test_container_round_trips_every_valid_header(model, digest, height, width, channels, encoding, quality, frame_number, latent, streams):
    from imgcomp.bitstream import FrameHeader

    if len(model.encode()) > 255:
        return
    header = FrameHeader(model, digest.hex(), height, width, channels, encoding, quality, 0, frame_number, frame_number, latent)
    frame = unpack(pack(Frame(header, tuple(streams))))
    assert frame.header == header
    assert frame.streams == tuple(streams)
