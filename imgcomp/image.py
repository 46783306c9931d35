"""Convert between ``sensor_msgs/Image`` fields and numpy arrays (the codec's input).

Shared by the ROS nodes and the bag tools, so it must not import rclpy or any
message package: it works on the plain field values (``data``, ``height``,
``width``, ``encoding``, ``step``, ``is_bigendian``).

The codec is 8-bit, so decoding is deliberately lossy in two documented ways:

* alpha channels (rgba8, bgra8) are dropped;
* 16-bit mono (mono16, 16UC1) is reduced to its top byte.

Colour encodings decode to uint8 RGB ``(H, W, 3)``, mono encodings to uint8
``(H, W)``.  ``image_to_msg_fields`` goes the other way so a decoder node can
republish exactly the source's encoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import cv2
import numpy as np

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "SUPPORTED_ENCODINGS",
    "ImageEncodingError",
    "bytes_per_pixel",
    "channels_for_encoding",
    "image_from_msg_fields",
    "image_to_msg_fields",
]

DEFAULT_MAX_PIXELS = 8192 * 8192

BufferLike = Union[bytes, bytearray, memoryview, np.ndarray]


@dataclass(frozen=True)
class _Layout:
    bytes_per_pixel: int
    channels: int  # channels of the codec input: 1 (mono) or 3 (RGB)


_LAYOUTS: dict[str, _Layout] = {
    "rgb8": _Layout(3, 3),
    "bgr8": _Layout(3, 3),
    "rgba8": _Layout(4, 3),
    "bgra8": _Layout(4, 3),
    "mono8": _Layout(1, 1),
    "8UC1": _Layout(1, 1),
    "8UC3": _Layout(3, 3),
    "mono16": _Layout(2, 1),
    "16UC1": _Layout(2, 1),
    "yuv422": _Layout(2, 3),
    "uyvy": _Layout(2, 3),
    "yuv422_yuy2": _Layout(2, 3),
    "yuyv": _Layout(2, 3),
    "bayer_rggb8": _Layout(1, 3),
    "bayer_bggr8": _Layout(1, 3),
    "bayer_gbrg8": _Layout(1, 3),
    "bayer_grbg8": _Layout(1, 3),
}

SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_LAYOUTS)

_MONO8 = frozenset({"mono8", "8UC1"})
_MONO16 = frozenset({"mono16", "16UC1"})
_UYVY = frozenset({"yuv422", "uyvy"})  # ROS "yuv422" is UYVY byte order
_YUYV = frozenset({"yuv422_yuy2", "yuyv"})

# OpenCV names Bayer patterns after the 2x2 block starting at the second row and
# second column, so each ROS pattern maps to the OpenCV pattern "one step
# diagonally in".  Verified by mosaic -> demosaic round trips in the tests.
_BAYER_TO_CV2 = {
    "bayer_rggb8": cv2.COLOR_BayerBG2RGB_EA,
    "bayer_bggr8": cv2.COLOR_BayerRG2RGB_EA,
    "bayer_gbrg8": cv2.COLOR_BayerGR2RGB_EA,
    "bayer_grbg8": cv2.COLOR_BayerGB2RGB_EA,
}
# Colour channel (0=R, 1=G, 2=B) at (row % 2, col % 2) for each ROS pattern.
_BAYER_CHANNELS = {
    "bayer_rggb8": ((0, 1), (1, 2)),
    "bayer_bggr8": ((2, 1), (1, 0)),
    "bayer_gbrg8": ((1, 2), (0, 1)),
    "bayer_grbg8": ((1, 0), (2, 1)),
}

# OpenCV's YUV 4:2:2 -> RGB conversion is BT.601 *limited range* (Y in 16..235),
# using these fixed-point (2**20) coefficients.  cv2.COLOR_RGB2YUV is full range
# and would not round-trip, so the encode direction uses the exact inverse of
# the matrix OpenCV decodes with.
_CV_YUV2RGB = np.array(
    [
        [1220542, 0, 1673527],
        [1220542, -409993, -852492],
        [1220542, 2116026, 0],
    ],
    dtype=np.float64,
) / (1 << 20)
_RGB2YUV = np.linalg.inv(_CV_YUV2RGB).astype(np.float32)
_YUV_OFFSET = np.array([16.0, 128.0, 128.0], dtype=np.float32)


class ImageEncodingError(ValueError):
    """Raised for unsupported encodings and malformed image fields or arrays."""


def _unsupported(encoding: object) -> ImageEncodingError:
    return ImageEncodingError(
        f"unsupported image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}"
    )


def _layout(encoding: object) -> _Layout:
    if not isinstance(encoding, str) or encoding not in _LAYOUTS:
        raise _unsupported(encoding)
    return _LAYOUTS[encoding]


def channels_for_encoding(encoding: str) -> int:
    """Channels of the codec input for ``encoding``: 1 (mono) or 3 (RGB)."""
    return _layout(encoding).channels


def bytes_per_pixel(encoding: str) -> int:
    """Bytes one pixel occupies in a ``sensor_msgs/Image`` of ``encoding``."""
    return _layout(encoding).bytes_per_pixel


# --------------------------------------------------------------------------- decode


def _as_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ImageEncodingError(f"{name} must be an integer, got {type(value).__name__}")
    return int(value)


def _as_bytes(data: object) -> np.ndarray:
    """Flat uint8 view of ``data`` (no copy for contiguous buffers)."""
    try:
        if isinstance(data, np.ndarray):
            return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        return np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    except (TypeError, ValueError) as exc:
        raise ImageEncodingError(
            f"image data must be a contiguous bytes-like object or numpy array, "
            f"got {type(data).__name__}"
        ) from exc


def _validated_rows(
    data: object, height: object, width: object, encoding: object, step: object, max_pixels: int
) -> tuple[np.ndarray, str]:
    """Check every field and return the pixel bytes as ``(height, width * bpp)``."""
    layout = _layout(encoding)
    h, w, s = _as_int("height", height), _as_int("width", width), _as_int("step", step)
    if h <= 0 or w <= 0:
        raise ImageEncodingError(f"image size must be positive, got {w}x{h} (width x height)")
    if h * w > max_pixels:
        raise ImageEncodingError(
            f"image {w}x{h} has {h * w} pixels, more than the limit of {max_pixels}"
        )
    if layout.bytes_per_pixel == 2 and layout.channels == 3 and w % 2:
        raise ImageEncodingError(f"{encoding} (YUV 4:2:2) needs an even width, got {w}")
    row_bytes = w * layout.bytes_per_pixel
    if s < row_bytes:
        raise ImageEncodingError(
            f"step {s} is smaller than width * bytes_per_pixel = {w} * "
            f"{layout.bytes_per_pixel} = {row_bytes} for {encoding}"
        )
    buf = _as_bytes(data)
    if buf.size < s * h:
        raise ImageEncodingError(
            f"image data too short for {w}x{h} {encoding} with step {s}: "
            f"expected {s * h} bytes, got {buf.size}"
        )
    rows = buf[: s * h].reshape(h, s)[:, :row_bytes]
    return rows, str(encoding)


def _owned(pixels: np.ndarray) -> np.ndarray:
    # Always copy: a view of ``bytes`` would be read-only and would pin the message buffer.
    return np.array(pixels, dtype=np.uint8, order="C", copy=True)


def image_from_msg_fields(
    data: BufferLike,
    height: int,
    width: int,
    encoding: str,
    step: int,
    is_bigendian: int,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Decode ``sensor_msgs/Image`` fields into the codec input.

    Returns a new C-contiguous, writable uint8 array (never a view of ``data``):
    ``(H, W, 3)`` RGB for colour encodings (alpha dropped, Bayer demosaiced, YUV
    converted with BT.601 limited range) or ``(H, W)`` for mono encodings
    (16-bit reduced to the top byte).  Row padding
    (``step`` larger than the pixel bytes) and trailing bytes are ignored.
    Any invalid input raises :class:`ImageEncodingError`.
    """
    rows, encoding = _validated_rows(data, height, width, encoding, step, max_pixels)
    h = rows.shape[0]
    w = rows.shape[1] // _LAYOUTS[encoding].bytes_per_pixel

    if encoding in _MONO8:
        return _owned(rows)
    if encoding in _MONO16:
        top_byte = 0 if is_bigendian else 1
        return _owned(rows.reshape(h, w, 2)[:, :, top_byte])
    if encoding == "rgb8":
        return _owned(rows.reshape(h, w, 3))
    if encoding in ("bgr8", "8UC3"):
        return _owned(rows.reshape(h, w, 3)[:, :, ::-1])
    if encoding == "rgba8":
        return _owned(rows.reshape(h, w, 4)[:, :, :3])
    if encoding == "bgra8":
        return _owned(rows.reshape(h, w, 4)[:, :, 2::-1])
    if encoding in _UYVY or encoding in _YUYV:
        code = cv2.COLOR_YUV2RGB_UYVY if encoding in _UYVY else cv2.COLOR_YUV2RGB_YUY2
        return cv2.cvtColor(np.ascontiguousarray(rows.reshape(h, w, 2)), code)
    # Only Bayer is left (_layout rejected everything unsupported).
    return cv2.cvtColor(np.ascontiguousarray(rows), _BAYER_TO_CV2[encoding])


# --------------------------------------------------------------------------- encode


def _validated_image(image: object) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise ImageEncodingError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ImageEncodingError(f"image must be uint8, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ImageEncodingError(
            f"image must be (H, W) mono or (H, W, 3) RGB, got shape {image.shape}"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageEncodingError(f"image must not be empty, got shape {image.shape}")
    return np.ascontiguousarray(image)


def _to_rgb(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image


def _to_mono(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def _rgb_to_yuv422(rgb: np.ndarray, uyvy: bool) -> np.ndarray:
    """Pack RGB as UYVY or YUYV ``(H, W, 2)``; chroma is the mean of each pixel pair."""
    yuv = rgb.astype(np.float32) @ _RGB2YUV.T + _YUV_OFFSET
    chroma = 0.5 * (yuv[:, 0::2, 1:] + yuv[:, 1::2, 1:])  # (H, W/2, [U, V])
    packed = np.empty(rgb.shape[:2] + (2,), dtype=np.float32)
    luma_idx, chroma_idx = (1, 0) if uyvy else (0, 1)
    packed[:, :, luma_idx] = yuv[:, :, 0]
    packed[:, 0::2, chroma_idx] = chroma[:, :, 0]
    packed[:, 1::2, chroma_idx] = chroma[:, :, 1]
    return np.clip(np.rint(packed), 0, 255).astype(np.uint8)


def _mosaic(rgb: np.ndarray, encoding: str) -> np.ndarray:
    raw = np.empty(rgb.shape[:2], dtype=np.uint8)
    for dy, row in enumerate(_BAYER_CHANNELS[encoding]):
        for dx, channel in enumerate(row):
            raw[dy::2, dx::2] = rgb[dy::2, dx::2, channel]
    return raw


def _encode_pixels(image: np.ndarray, encoding: str) -> np.ndarray:
    """Pixel array in ``encoding``'s byte layout (uint8, or little-endian uint16)."""
    if encoding in _MONO8:
        return _to_mono(image)
    if encoding in _MONO16:
        return (_to_mono(image).astype(np.uint16) * 257).astype("<u2")  # v << 8 | v
    rgb = _to_rgb(image)
    if encoding == "rgb8":
        return rgb
    if encoding in ("bgr8", "8UC3"):
        return rgb[:, :, ::-1]
    if encoding in ("rgba8", "bgra8"):
        colour = rgb if encoding == "rgba8" else rgb[:, :, ::-1]
        alpha = np.full(rgb.shape[:2] + (1,), 255, dtype=np.uint8)
        return np.concatenate([colour, alpha], axis=2)
    if encoding in _UYVY or encoding in _YUYV:
        return _rgb_to_yuv422(rgb, uyvy=encoding in _UYVY)
    return _mosaic(rgb, encoding)


def image_to_msg_fields(image: np.ndarray, encoding: str) -> tuple[bytes, int, int, str, int]:
    """Encode a decoded uint8 image back into ``sensor_msgs/Image`` fields.

    ``image`` is ``(H, W, 3)`` RGB or ``(H, W)`` mono; it is converted to grey or
    replicated to colour as ``encoding`` needs.  16-bit output is little-endian
    (``is_bigendian = 0``) with each value expanded as ``v << 8 | v``.

    Returns ``(data, height, width, encoding, step)`` with ``step`` minimal.
    """
    layout = _layout(encoding)
    image = _validated_image(image)
    height, width = image.shape[:2]
    if layout.bytes_per_pixel == 2 and layout.channels == 3 and width % 2:
        raise ImageEncodingError(f"{encoding} (YUV 4:2:2) needs an even width, got {width}")
    pixels = np.ascontiguousarray(_encode_pixels(image, encoding))
    return pixels.tobytes(), height, width, encoding, width * layout.bytes_per_pixel
