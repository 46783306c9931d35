"""The classical codecs behind `Codec` (imgcomp.classical): round trips, levels, the container,
refusals, and forged files whose own header lies (checked before any library decodes them)."""

from __future__ import annotations

import dataclasses
import struct

import cv2
import imagecodecs
import numpy as np
import pytest

from imgcomp.bitstream import BitstreamError, Frame, ModelMismatchError, TooLargeError, pack_fields, unpack
from imgcomp.classical import ClassicalCodec, classical_hash
from imgcomp.classical import formats as formats_mod
from imgcomp.codec import Codec
from imgcomp.defaults import CLASSICAL_MODELS
from imgcomp.metrics import psnr
from imgcomp.models.registry import available_models, model_entry

MAGIC = {"jpeg": b"\xff\xd8", "webp": b"RIFF", "avif": b"\x00\x00\x00", "jxl": b"\xff\x0a"}


@pytest.fixture(scope="module")
def image(real_images) -> np.ndarray:
    return np.ascontiguousarray(real_images["fruits"][:48, :64])


def _file(payload: bytes) -> bytes:
    return bytes(unpack(payload).streams[0])


def _relabel(payload: bytes, stream: bytes | None = None, **changes) -> bytes:
    """The payload with header fields and/or its file replaced (correct CRC: what a forger sends)."""
    frame = unpack(payload)
    return pack_fields(Frame(dataclasses.replace(frame.header, **changes), (stream if stream is not None else frame.streams[0],)))


@pytest.fixture
def no_library_decode(monkeypatch):
    """Make every library decode fail loudly: a refusal must come from the header checks."""
    def boom(data, channels=3):
        raise AssertionError("the library decoder was called")

    for name, fmt in formats_mod.FORMATS.items():
        monkeypatch.setitem(formats_mod.FORMATS, name, dataclasses.replace(fmt, decode=boom))


# ------------------------------------------------------------------------------------ basics
@pytest.mark.parametrize("name", CLASSICAL_MODELS)
def test_codec_takes_a_classical_name_like_a_model(name):
    codec = Codec(name, device="cpu", backend="onnxruntime")  # the transforms' backend does not apply
    assert isinstance(codec, ClassicalCodec)
    assert (codec.model_name, codec.model_hash, codec.levels, codec.quality) == (name, classical_hash(name), 6, 3)
    assert name in available_models() and model_entry(name)["levels"] == 6
    assert len({classical_hash(n) for n in CLASSICAL_MODELS}) == len(CLASSICAL_MODELS)


@pytest.mark.parametrize("name", CLASSICAL_MODELS)
@pytest.mark.parametrize("shape", [(48, 64, 3), (48, 64), (37, 53, 3), (1, 1, 3), (17, 130)], ids=str)
def test_round_trip_restores_size_and_channels(name, shape, real_images):
    h, w = shape[:2]
    source = np.ascontiguousarray(real_images["baboon"][:h, :w])
    if len(shape) == 2:
        source = cv2.cvtColor(source, cv2.COLOR_RGB2GRAY)
    codec = Codec(name)
    payload = codec.encode(source, quality=6)
    frame = unpack(payload)
    assert (frame.header.model, frame.header.model_hash, frame.header.latent_shape) == (name, classical_hash(name), (0, 0))
    assert (frame.header.channels, frame.header.encoding) == ((1, "mono8") if len(shape) == 2 else (3, "rgb8"))
    assert len(frame.streams) == 1 and frame.streams[0].startswith(MAGIC[name])
    decoded = codec.decode(payload)
    assert decoded.shape == source.shape and decoded.dtype == np.uint8
    if h * w > 100:
        assert psnr(source, decoded) > 20  # the top level on the baboon: 23-30 dB; swapped colours ~10


@pytest.mark.parametrize("name", CLASSICAL_MODELS)
def test_levels_cost_more_bits_and_give_less_error_on_every_real_image(name, real_images):
    codec = Codec(name)
    for key, image in real_images.items():
        sizes, errors = [], []
        for q in range(1, 7):
            payload = codec.encode(image, quality=q)
            sizes.append(len(payload))
            errors.append(np.mean((codec.decode(payload).astype(float) - image) ** 2))
        assert all(a < b for a, b in zip(sizes, sizes[1:])), (key, sizes)
        assert errors[-1] < errors[0], (key, errors)


@pytest.mark.parametrize("name", CLASSICAL_MODELS)
def test_bad_inputs_are_refused_like_the_learned_codec(name, image):
    codec = Codec(name)
    for bad in (image.astype(np.float32), image[:, :, :2], np.zeros((0, 5, 3), np.uint8), np.zeros((4, 4, 4), np.uint8)):
        with pytest.raises(ValueError):
            codec.encode(bad)
    for quality in (0, 7, True, 2.0):
        with pytest.raises(ValueError):
            codec.encode(image, quality=quality)
    with pytest.raises(ValueError):
        codec.encode(image, encoding="rgb8é")


# ------------------------------------------------------------------------------------ refusals
@pytest.mark.parametrize("name", CLASSICAL_MODELS)
def test_a_payload_of_another_codec_is_refused_by_name_and_hash(name, image, hyperprior_codec):
    other = next(n for n in CLASSICAL_MODELS if n != name)
    payload = Codec(other).encode(image)
    with pytest.raises(ModelMismatchError, match=f"{other!r} weights {classical_hash(other)}.*{name!r} weights {classical_hash(name)}"):
        Codec(name).decode(payload)
    with pytest.raises(ModelMismatchError):
        hyperprior_codec.decode(payload)
    with pytest.raises(ModelMismatchError):
        Codec(name).decode(hyperprior_codec.encode(image))


@pytest.mark.parametrize("name", CLASSICAL_MODELS)
def test_another_codecs_file_under_this_codecs_name_is_refused_before_decoding(name, image, no_library_decode):
    own = Codec(name).encode(image)
    for other in CLASSICAL_MODELS:
        if other != name:
            forged = _relabel(own, stream=_file(Codec(other).encode(image)))
            with pytest.raises(BitstreamError):
                Codec(name).decode(forged)


@pytest.mark.parametrize("name", CLASSICAL_MODELS)
def test_size_limits_are_checked_from_the_headers_before_decoding(name, image, no_library_decode):
    codec = Codec(name)
    payload = codec.encode(image)
    with pytest.raises(TooLargeError):
        codec.decode(payload, max_output_pixels=48 * 64 - 1)
    with pytest.raises(BitstreamError, match="declares 64x48, the payload 640x480"):
        codec.decode(_relabel(payload, height=480, width=640))
    for changes in ({"latent_shape": (3, 4)}, {"frame_type": 1}, {"quality": 7}):
        with pytest.raises(BitstreamError):
            codec.decode(_relabel(payload, **changes))


def _patch(data: bytes, offset: int, fmt: str, *values: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


def _av1_sequence_header(avif: bytes) -> int:
    """Byte offset of the first sequence-header OBU's payload (a temporal delimiter may precede it)."""
    pos = avif.index(b"mdat") + 4
    while avif[pos] >> 3 & 15 != 1:
        pos += 2 + avif[pos + 1]  # has_size OBUs with one-byte sizes, as libaom writes them here
    return pos + 2


def _forged_files(name: str, image: np.ndarray) -> dict[str, bytes]:
    """Files whose own header claims another size than the 48x64 the container says."""
    real = _file(Codec(name).encode(image))
    if name == "jpeg":
        sof = real.index(b"\xff\xc0")
        progressive = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
        return {"SOF 16384x16384": _patch(real, sof + 5, ">HH", 16384, 16384), "progressive": progressive,
                "two scans": real[:-2] + real[real.index(b"\xff\xda"):]}
    if name == "webp":
        return {"VP8 16383x16383": _patch(real, 26, "<HH", 16383, 16383),
                "lossless": bytes(imagecodecs.webp_encode(image, lossless=True))}
    if name == "avif":
        ispe = real.index(b"ispe") + 8
        seq = _av1_sequence_header(real)
        assert real[seq] >> 3 & 1, "libaom writes a reduced still-picture header"
        bits = int.from_bytes(real[seq : seq + 6], "big")  # 48 bits: profile 3, still 1, reduced 1, level 5, ...
        width_bits, height_bits = (bits >> 34 & 15) + 1, (bits >> 30 & 15) + 1
        height_at = 48 - 18 - width_bits - height_bits  # max_frame_height_minus_1: all ones (47 -> 63 for 48)
        forged_bits = bits | ((1 << height_bits) - 1) << height_at
        sequence = bytes(imagecodecs.avif_encode(np.stack([image, image[::-1].copy()]), level=50, speed=10))
        return {"ispe 16384x16384": _patch(real, ispe, ">II", 16384, 16384),
                "AV1 sequence header 64x64": real[:seq] + forged_bits.to_bytes(6, "big") + real[seq + 6 :],
                "image sequence": sequence}
    animation = bytes(imagecodecs.jpegxl_encode(np.stack([image, image[::-1].copy()]), level=50, effort=3))
    return {"size header": real[:2] + bytes([real[2] ^ 0x3E]) + real[3:], "animation": animation}


@pytest.mark.parametrize("name", CLASSICAL_MODELS)
def test_a_file_whose_own_header_lies_is_refused_before_decoding(name, image, no_library_decode):
    codec = Codec(name)
    payload = codec.encode(image)
    for what, forged in _forged_files(name, image).items():
        with pytest.raises(BitstreamError) as caught:
            codec.decode(_relabel(payload, stream=forged))
        assert "library decoder" not in str(caught.value), what
        if what.startswith("AV1"):  # ispe still says 64x48: only the sequence header check can catch it
            assert "sequence header allows 64x64" in str(caught.value)


@pytest.mark.parametrize("name", CLASSICAL_MODELS)
def test_truncated_and_damaged_files_are_refused_or_decode_to_the_right_size(name, image):
    codec = Codec(name)
    payload = codec.encode(image)
    real = _file(payload)
    rng = np.random.default_rng(0)
    cases = [real[:n] for n in sorted(set(np.linspace(0, len(real) - 1, 40).astype(int)))]
    for _ in range(60):
        damaged = bytearray(real)
        for i in rng.integers(0, len(real), size=rng.integers(1, 6)):
            damaged[i] = int(rng.integers(0, 256))
        cases.append(bytes(damaged))
    decoded = 0
    for case in cases:
        try:
            out = codec.decode(_relabel(payload, stream=case))
        except BitstreamError:
            continue
        assert out.shape == image.shape and out.dtype == np.uint8
        decoded += 1
    assert decoded < len(cases)  # truncations at least are refused
