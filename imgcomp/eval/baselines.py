"""Classical codecs measured beside ours: JPEG (libjpeg-turbo via OpenCV, 4:2:0), WebP, AVIF (libavif
with libaom, 4:4:4 and 4:2:0), JPEG XL."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import imagecodecs
import numpy as np


@dataclass(frozen=True)
class ClassicalCodec:
    name: str
    qualities: Sequence[int]
    encode: Callable[[np.ndarray, int], bytes]  # RGB uint8, quality -> bytes
    decode: Callable[[bytes], np.ndarray]  # bytes -> RGB uint8


def jpeg_encode(rgb: np.ndarray, quality: int) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality), cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420]
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise RuntimeError("OpenCV JPEG encoding failed")
    return buf.tobytes()


def jpeg_decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("not a decodable JPEG")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _drop_alpha(image: np.ndarray) -> np.ndarray:
    return image[..., :3] if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)


JPEG = ClassicalCodec("JPEG (OpenCV 4:2:0)", (10, 20, 30, 40, 50, 60, 70, 80, 90, 95), jpeg_encode, jpeg_decode)
WEBP = ClassicalCodec(
    "WebP",
    (5, 15, 30, 45, 60, 75, 85, 95),
    lambda im, q: imagecodecs.webp_encode(im, level=q, lossless=False, method=4),
    lambda b: _drop_alpha(imagecodecs.webp_decode(b)),
)
AVIF_QUALITIES = (20, 35, 50, 60, 70, 80, 90)
AVIF = ClassicalCodec(  # imagecodecs' default for RGB input is 4:4:4
    "AVIF 4:4:4",
    AVIF_QUALITIES,
    lambda im, q: imagecodecs.avif_encode(im, level=q, speed=6, pixelformat=imagecodecs.AVIF.PIXEL_FORMAT.YUV444),
    lambda b: _drop_alpha(imagecodecs.avif_decode(b)),
)
AVIF420 = ClassicalCodec(
    "AVIF 4:2:0",
    AVIF_QUALITIES,
    lambda im, q: imagecodecs.avif_encode(im, level=q, speed=6, pixelformat=imagecodecs.AVIF.PIXEL_FORMAT.YUV420),
    lambda b: _drop_alpha(imagecodecs.avif_decode(b)),
)
JPEGXL = ClassicalCodec(
    "JPEG XL",
    (20, 40, 55, 70, 80, 90, 95),
    lambda im, q: imagecodecs.jpegxl_encode(im, level=q, effort=5),
    lambda b: _drop_alpha(imagecodecs.jpegxl_decode(b)),
)
CLASSICAL = {"jpeg": JPEG, "webp": WEBP, "avif": AVIF, "avif420": AVIF420, "jpegxl": JPEGXL}
