"""Tests for imgcomp.image: sensor_msgs/Image fields <-> numpy codec input."""

from __future__ import annotations

import array
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imgcomp.image import (
    SUPPORTED_ENCODINGS,
    ImageEncodingError,
    bytes_per_pixel,
    channels_for_encoding,
    image_from_msg_fields,
    image_to_msg_fields,
)

pytestmark = pytest.mark.robot  # on the robot's install path too (.ci/robot.sh, docs/robot.md)


ASTRONAUT = Path(__file__).resolve().parent.parent / "data" / "images" / "val" / "skimage-astronaut.png"

EXACT_COLOUR = ("rgb8", "bgr8", "rgba8", "bgra8", "8UC3")
MONO = ("mono8", "8UC1", "mono16", "16UC1")
YUV = ("yuv422", "uyvy", "yuv422_yuy2", "yuyv")
BAYER = ("bayer_rggb8", "bayer_bggr8", "bayer_gbrg8", "bayer_grbg8")


def smooth_rgb(height: int, width: int) -> np.ndarray:
    """Deterministic smooth colour pattern: gradients plus a slow sinusoid."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    fy, fx = y / max(height - 1, 1), x / max(width - 1, 1)
    r = 30 + 190 * fx
    g = 40 + 170 * fy
    b = 128 + 90 * np.sin(2 * np.pi * (fx + fy) / 2)
    return np.clip(np.rint(np.dstack([r, g, b])), 0, 255).astype(np.uint8)


def smooth_mono(height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return ((x * 7 + y * 3) % 256).astype(np.uint8)


def load_astronaut() -> np.ndarray:
    if not ASTRONAUT.exists():
        pytest.skip(f"{ASTRONAUT} not available")
    bgr = cv2.imread(str(ASTRONAUT), cv2.IMREAD_COLOR)
    assert bgr is not None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def round_trip(image: np.ndarray, encoding: str) -> np.ndarray:
    data, height, width, enc, step = image_to_msg_fields(image, encoding)
    return image_from_msg_fields(data, height, width, enc, step, 0)


def test_supported_encodings() -> None:
    assert isinstance(SUPPORTED_ENCODINGS, tuple)
    assert set(SUPPORTED_ENCODINGS) == set(EXACT_COLOUR + MONO + YUV + BAYER)


@pytest.mark.parametrize(
    ("encoding", "channels", "bpp"),
    [
        ("rgb8", 3, 3), ("bgr8", 3, 3), ("rgba8", 3, 4), ("bgra8", 3, 4),
        ("mono8", 1, 1), ("8UC1", 1, 1), ("8UC3", 3, 3), ("mono16", 1, 2), ("16UC1", 1, 2),
        ("yuv422", 3, 2), ("uyvy", 3, 2), ("yuv422_yuy2", 3, 2), ("yuyv", 3, 2),
        ("bayer_rggb8", 3, 1), ("bayer_bggr8", 3, 1), ("bayer_gbrg8", 3, 1), ("bayer_grbg8", 3, 1),
    ],
)
def test_channels_and_bytes_per_pixel(encoding: str, channels: int, bpp: int) -> None:
    assert channels_for_encoding(encoding) == channels
    assert bytes_per_pixel(encoding) == bpp


@pytest.mark.parametrize("func", [channels_for_encoding, bytes_per_pixel])
def test_info_functions_reject_unsupported(func) -> None:
    with pytest.raises(ImageEncodingError, match="32FC1"):
        func("32FC1")


# ------------------------------------------------------------------ byte layouts


def test_colour_byte_layouts() -> None:
    rgb = np.array([[[10, 20, 30], [40, 50, 60]]], dtype=np.uint8)
    assert image_to_msg_fields(rgb, "rgb8") == (bytes([10, 20, 30, 40, 50, 60]), 1, 2, "rgb8", 6)
    assert image_to_msg_fields(rgb, "bgr8")[0] == bytes([30, 20, 10, 60, 50, 40])
    assert image_to_msg_fields(rgb, "8UC3")[0] == bytes([30, 20, 10, 60, 50, 40])
    assert image_to_msg_fields(rgb, "rgba8") == (
        bytes([10, 20, 30, 255, 40, 50, 60, 255]), 1, 2, "rgba8", 8)
    assert image_to_msg_fields(rgb, "bgra8")[0] == bytes([30, 20, 10, 255, 60, 50, 40, 255])


def test_alpha_is_dropped() -> None:
    data = bytes([10, 20, 30, 7, 40, 50, 60, 9])
    np.testing.assert_array_equal(
        image_from_msg_fields(data, 1, 2, "rgba8", 8, 0), [[[10, 20, 30], [40, 50, 60]]])
    np.testing.assert_array_equal(
        image_from_msg_fields(data, 1, 2, "bgra8", 8, 0), [[[30, 20, 10], [60, 50, 40]]])


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
def test_mono16_layout_is_little_endian_replicated(encoding: str) -> None:
    mono = np.array([[0, 1, 0x12, 255]], dtype=np.uint8)
    data, h, w, enc, step = image_to_msg_fields(mono, encoding)
    assert (h, w, enc, step) == (1, 4, encoding, 8)
    np.testing.assert_array_equal(np.frombuffer(data, "<u2"), [0, 0x0101, 0x1212, 0xFFFF])


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
def test_mono16_keeps_top_byte_both_endiannesses(encoding: str) -> None:
    mono = smooth_mono(5, 6)
    values = mono.astype(np.uint16) * 256 + 17  # low byte differs from the top byte
    big = image_from_msg_fields(values.astype(">u2").tobytes(), 5, 6, encoding, 12, 1)
    little = image_from_msg_fields(values.astype("<u2").tobytes(), 5, 6, encoding, 12, 0)
    np.testing.assert_array_equal(big, mono)
    np.testing.assert_array_equal(little, mono)
    # The flag matters: big-endian bytes read as little-endian give the low byte.
    wrong = image_from_msg_fields(values.astype(">u2").tobytes(), 5, 6, encoding, 12, 0)
    assert np.all(wrong == 17)


@pytest.mark.parametrize(("encoding", "luma_at"), [
    ("yuv422", (1, 3)), ("uyvy", (1, 3)), ("yuv422_yuy2", (0, 2)), ("yuyv", (0, 2)),
])
def test_yuv_byte_order(encoding: str, luma_at: tuple[int, int]) -> None:
    # Grey has neutral chroma (128) and limited-range luma 16..235.
    for level, luma in ((0, 16), (255, 235)):
        data = image_to_msg_fields(np.full((1, 2), level, np.uint8), encoding)[0]
        chroma_at = tuple(sorted({0, 1, 2, 3} - set(luma_at)))
        assert [data[i] for i in luma_at] == [luma, luma]
        assert [data[i] for i in chroma_at] == [128, 128]


def test_yuv_aliases_produce_identical_bytes() -> None:
    rgb = smooth_rgb(6, 8)
    assert image_to_msg_fields(rgb, "yuv422")[0] == image_to_msg_fields(rgb, "uyvy")[0]
    assert image_to_msg_fields(rgb, "yuv422_yuy2")[0] == image_to_msg_fields(rgb, "yuyv")[0]
    assert image_to_msg_fields(rgb, "uyvy")[0] != image_to_msg_fields(rgb, "yuyv")[0]


def test_yuv_decode_known_colours() -> None:
    # Limited-range BT.601 red: Y=81, U=90, V=240 (UYVY order U Y V Y).
    red = image_from_msg_fields(bytes([90, 81, 240, 81]), 1, 2, "uyvy", 4, 0)
    assert np.abs(red.astype(int) - [255, 0, 0]).max() <= 2
    white = image_from_msg_fields(bytes([235, 128, 235, 128]), 1, 2, "yuyv", 4, 0)
    np.testing.assert_array_equal(white, np.full((1, 2, 3), 255))


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize("encoding", EXACT_COLOUR)
@pytest.mark.parametrize("size", [(48, 64), (37, 53), (1, 1)])
def test_exact_colour_round_trip(encoding: str, size: tuple[int, int]) -> None:
    rgb = smooth_rgb(*size)
    out = round_trip(rgb, encoding)
    assert out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize("encoding", MONO)
@pytest.mark.parametrize("size", [(48, 64), (37, 53), (1, 1)])
def test_exact_mono_round_trip(encoding: str, size: tuple[int, int]) -> None:
    mono = smooth_mono(*size)
    out = round_trip(mono, encoding)
    assert out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, mono)


@pytest.mark.parametrize("encoding", YUV)
@pytest.mark.parametrize("size", [(48, 64), (38, 54), (1, 64)])
def test_yuv_round_trip_smooth(encoding: str, size: tuple[int, int]) -> None:
    rgb = smooth_rgb(*size)
    out = round_trip(rgb, encoding)
    assert out.shape == rgb.shape and out.dtype == np.uint8 and out.flags.c_contiguous
    err = np.abs(out.astype(int) - rgb)
    assert err.mean() < 3
    assert err.max() <= 8


@pytest.mark.parametrize("encoding", YUV)
@pytest.mark.parametrize("colour", [(0, 0, 0), (255, 255, 255), (200, 100, 30), (20, 90, 220)])
def test_yuv_round_trip_minimal_uniform(encoding: str, colour: tuple[int, int, int]) -> None:
    # 1x2 is the smallest 4:2:2 image; one chroma pair, so only uniform colour survives exactly.
    rgb = np.full((1, 2, 3), colour, np.uint8)
    assert np.abs(round_trip(rgb, encoding).astype(int) - rgb).max() <= 2


@pytest.mark.parametrize("encoding", YUV)
def test_yuv_round_trip_real_image(encoding: str) -> None:
    rgb = load_astronaut()
    out = round_trip(rgb, encoding)
    assert np.abs(out.astype(int) - rgb).mean() < 3


def reference_mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """Independent mosaic: ``pattern`` like "rggb" lists the 2x2 block row-major."""
    channel = {"r": 0, "g": 1, "b": 2}
    raw = np.empty(rgb.shape[:2], np.uint8)
    for (dy, dx), colour in zip([(0, 0), (0, 1), (1, 0), (1, 1)], pattern):
        raw[dy::2, dx::2] = rgb[dy::2, dx::2, channel[colour]]
    return raw


@pytest.mark.parametrize("encoding", BAYER)
@pytest.mark.parametrize("colour", [(200, 100, 30), (20, 90, 220), (60, 230, 140)])
def test_bayer_pattern_mapping_uniform_colour(encoding: str, colour: tuple[int, int, int]) -> None:
    # A uniform patch must demosaic to itself; a wrong OpenCV pattern swaps R/B or G.
    rgb = np.full((16, 20, 3), colour, np.uint8)
    raw = reference_mosaic(rgb, encoding[len("bayer_"):-1])
    out = image_from_msg_fields(raw.tobytes(), 16, 20, encoding, 20, 0)
    assert np.abs(out[2:-2, 2:-2].astype(int) - colour).max() <= 2


@pytest.mark.parametrize("encoding", BAYER)
@pytest.mark.parametrize("size", [(48, 64), (37, 53), (1, 1)])
def test_bayer_mosaic_matches_reference_and_round_trips(encoding: str, size: tuple[int, int]) -> None:
    rgb = smooth_rgb(*size)
    data, h, w, enc, step = image_to_msg_fields(rgb, encoding)
    assert (h, w, enc, step) == (size[0], size[1], encoding, size[1])
    np.testing.assert_array_equal(
        np.frombuffer(data, np.uint8).reshape(size), reference_mosaic(rgb, encoding[6:-1]))
    out = image_from_msg_fields(data, h, w, enc, step, 0)
    assert out.shape == rgb.shape and out.dtype == np.uint8 and out.flags.c_contiguous
    if min(size) >= 8:
        assert np.abs(out.astype(int) - rgb).mean() < 3


@pytest.mark.parametrize("encoding", BAYER)
def test_bayer_round_trip_real_image(encoding: str) -> None:
    rgb = load_astronaut()
    out = round_trip(rgb, encoding)
    assert np.abs(out.astype(int) - rgb).mean() < 4


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
def test_row_padding_is_skipped(encoding: str) -> None:
    height, width = (37, 54)
    rgb = smooth_rgb(height, width)
    data, h, w, enc, step = image_to_msg_fields(rgb, encoding)
    pad = 13
    rows = np.frombuffer(data, np.uint8).reshape(h, step)
    padded = np.concatenate([rows, np.full((h, pad), 0xAB, np.uint8)], axis=1)
    expected = image_from_msg_fields(data, h, w, enc, step, 0)
    out = image_from_msg_fields(padded.tobytes() + b"trailing", h, w, enc, step + pad, 0)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize(
    "wrap",
    [bytes, bytearray, memoryview, lambda b: np.frombuffer(b, np.uint8),
     lambda b: array.array("B", b)],
    ids=["bytes", "bytearray", "memoryview", "ndarray", "array.array"],
)
def test_accepts_buffer_types(wrap) -> None:
    rgb = smooth_rgb(4, 6)
    data, h, w, enc, step = image_to_msg_fields(rgb, "bgr8")
    np.testing.assert_array_equal(image_from_msg_fields(wrap(data), h, w, enc, step, 0), rgb)


def test_mono_colour_conversions_on_encode() -> None:
    rgb = smooth_rgb(6, 8)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    np.testing.assert_array_equal(round_trip(rgb, "mono8"), grey)
    np.testing.assert_array_equal(round_trip(rgb, "mono16"), grey)
    mono = smooth_mono(6, 8)
    np.testing.assert_array_equal(round_trip(mono, "rgb8"), np.dstack([mono] * 3))
    np.testing.assert_array_equal(round_trip(mono[:, :, None], "mono8"), mono)


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
def test_decode_returns_owned_writable_array(encoding: str) -> None:
    data, h, w, enc, step = image_to_msg_fields(smooth_rgb(4, 6), encoding)
    buf = bytearray(data)
    out = image_from_msg_fields(bytes(buf), h, w, enc, step, 0)
    assert out.flags.writeable and out.flags.c_contiguous and out.flags.owndata
    view = image_from_msg_fields(buf, h, w, enc, step, 0)
    assert not np.shares_memory(view, np.frombuffer(buf, np.uint8))


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("encoding", ["32FC1", "16UC3", "bayer_rggb16", "bayer_bggr16", "nv12", "", "RGB8"])
def test_unsupported_encoding(encoding: str) -> None:
    with pytest.raises(ImageEncodingError, match="unsupported image encoding") as info:
        image_from_msg_fields(bytes(64), 2, 2, encoding, 32, 0)
    assert repr(encoding) in str(info.value) and "rgb8" in str(info.value)
    with pytest.raises(ImageEncodingError, match="unsupported image encoding"):
        image_to_msg_fields(smooth_rgb(2, 2), encoding)


def test_error_is_value_error() -> None:
    assert issubclass(ImageEncodingError, ValueError)
    with pytest.raises(ValueError):
        image_from_msg_fields(b"", 1, 1, "32FC1", 4, 0)


@pytest.mark.parametrize("encoding", [None, 3, b"rgb8"])
def test_non_string_encoding(encoding) -> None:
    with pytest.raises(ImageEncodingError, match="unsupported image encoding"):
        image_from_msg_fields(bytes(3), 1, 1, encoding, 3, 0)


@pytest.mark.parametrize(("height", "width"), [(0, 4), (4, 0), (0, 0), (-1, 4), (4, -2)])
def test_non_positive_size(height: int, width: int) -> None:
    with pytest.raises(ImageEncodingError, match="must be positive"):
        image_from_msg_fields(bytes(64), height, width, "mono8", 4, 0)


@pytest.mark.parametrize("field", ["height", "width", "step"])
def test_non_integer_fields(field: str) -> None:
    kwargs = dict(data=bytes(16), height=4, width=4, encoding="mono8", step=4, is_bigendian=0)
    kwargs[field] = 4.0
    with pytest.raises(ImageEncodingError, match=field):
        image_from_msg_fields(**kwargs)


def test_truncated_data() -> None:
    data = image_to_msg_fields(smooth_rgb(4, 6), "rgb8")[0]
    with pytest.raises(ImageEncodingError, match=r"expected 72 bytes, got 71"):
        image_from_msg_fields(data[:-1], 4, 6, "rgb8", 18, 0)
    with pytest.raises(ImageEncodingError, match=r"expected 80 bytes, got 72"):
        image_from_msg_fields(data, 4, 6, "rgb8", 20, 0)


def test_step_too_small() -> None:
    with pytest.raises(ImageEncodingError, match=r"step 17 is smaller than .* 18"):
        image_from_msg_fields(bytes(100), 4, 6, "rgb8", 17, 0)
    with pytest.raises(ImageEncodingError, match="step 5 is smaller"):
        image_from_msg_fields(bytes(100), 4, 3, "mono16", 5, 0)


@pytest.mark.parametrize("encoding", YUV)
def test_odd_width_yuv(encoding: str) -> None:
    with pytest.raises(ImageEncodingError, match="even width, got 53"):
        image_from_msg_fields(bytes(2 * 53 * 4), 4, 53, encoding, 106, 0)
    with pytest.raises(ImageEncodingError, match="even width, got 53"):
        image_to_msg_fields(smooth_rgb(4, 53), encoding)


def test_too_many_pixels() -> None:
    # Checked before the data length, so no huge buffer is needed.
    with pytest.raises(ImageEncodingError, match="more than the limit of 67108864"):
        image_from_msg_fields(b"", 8193, 8192, "mono8", 8192, 0)
    with pytest.raises(ImageEncodingError, match="more than the limit of 100"):
        image_from_msg_fields(bytes(101), 1, 101, "mono8", 101, 0, max_pixels=100)
    assert image_from_msg_fields(bytes(100), 1, 100, "mono8", 100, 0, max_pixels=100).shape == (1, 100)


@pytest.mark.parametrize("data", ["text", None, 12, [1, 2, 3], memoryview(bytes(32))[::2]])
def test_bad_data_type(data) -> None:
    with pytest.raises(ImageEncodingError, match="bytes-like"):
        image_from_msg_fields(data, 1, 3, "mono8", 3, 0)


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.zeros((4, 4), np.uint16), "uint8"),
        (np.zeros((4, 4), np.float32), "uint8"),
        (np.zeros((4, 4, 4), np.uint8), "shape"),
        (np.zeros((4,), np.uint8), "shape"),
        (np.zeros((0, 4, 3), np.uint8), "empty"),
        ([[1, 2], [3, 4]], "numpy array"),
    ],
)
def test_encode_bad_image(image, match: str) -> None:
    with pytest.raises(ImageEncodingError, match=match):
        image_to_msg_fields(image, "rgb8")


# ------------------------------------------------------------------ property


@settings(max_examples=150, deadline=None)
@given(
    encoding=st.sampled_from(SUPPORTED_ENCODINGS),
    height=st.integers(1, 24),
    half_width=st.integers(1, 12),
    odd=st.booleans(),
    colour_input=st.booleans(),
    pad=st.integers(0, 5),
)
def test_round_trip_shape_and_dtype(
    encoding: str, height: int, half_width: int, odd: bool, colour_input: bool, pad: int
) -> None:
    width = 2 * half_width - (odd and encoding not in YUV)
    image = smooth_rgb(height, width) if colour_input else smooth_mono(height, width)
    data, h, w, enc, step = image_to_msg_fields(image, encoding)
    assert (h, w, enc) == (height, width, encoding)
    assert step == width * bytes_per_pixel(encoding) and len(data) == step * height
    if pad:
        rows = np.frombuffer(data, np.uint8).reshape(h, step)
        data = np.concatenate([rows, np.zeros((h, pad), np.uint8)], axis=1).tobytes()
    out = image_from_msg_fields(data, h, w, enc, step + pad, 0)
    channels = channels_for_encoding(encoding)
    assert out.shape == ((height, width, 3) if channels == 3 else (height, width))
    assert out.dtype == np.uint8 and out.flags.c_contiguous
