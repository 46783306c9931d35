"""Classical codecs measured beside ours as reference sweeps: JPEG (libjpeg-turbo via OpenCV,
4:2:0), WebP, AVIF, JPEG XL at many quality settings and their libraries' slower, denser presets.

The library calls are `imgcomp.classical.formats`' (the ones `Codec("avif")` and the others use
at their six levels and real-time presets); only the settings differ here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import imagecodecs
import numpy as np

from imgcomp.classical.formats import (
    avif_decode,
    jpeg_decode,
    jpeg_encode,
    jpegxl_decode,
    jpegxl_encode,
    webp_decode,
    webp_encode,
)

__all__ = ["AVIF", "AVIF420", "CLASSICAL", "JPEG", "JPEGXL", "WEBP", "Baseline", "jpeg_decode", "jpeg_encode"]


@dataclass(frozen=True)
class Baseline:
    name: str
    qualities: Sequence[int]
    encode: Callable[[np.ndarray, int], bytes]  # RGB uint8, quality -> bytes
    decode: Callable[[bytes], np.ndarray]  # bytes -> RGB uint8


def _drop_alpha(image: np.ndarray) -> np.ndarray:
    return image[..., :3] if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)


JPEG = Baseline("JPEG (OpenCV 4:2:0)", (10, 20, 30, 40, 50, 60, 70, 80, 90, 95), jpeg_encode, jpeg_decode)
WEBP = Baseline("WebP", (5, 15, 30, 45, 60, 75, 85, 95), lambda im, q: webp_encode(im, q, method=4), lambda b: _drop_alpha(webp_decode(b)))
AVIF_QUALITIES = (20, 35, 50, 60, 70, 80, 90)
AVIF = Baseline(  # imagecodecs' default for RGB input is 4:4:4; named explicitly for the comparison
    "AVIF 4:4:4",
    AVIF_QUALITIES,
    lambda im, q: bytes(imagecodecs.avif_encode(im, level=q, speed=6, pixelformat=imagecodecs.AVIF.PIXEL_FORMAT.YUV444)),
    lambda b: _drop_alpha(avif_decode(b)),
)
AVIF420 = Baseline(
    "AVIF 4:2:0",
    AVIF_QUALITIES,
    lambda im, q: bytes(imagecodecs.avif_encode(im, level=q, speed=6, pixelformat=imagecodecs.AVIF.PIXEL_FORMAT.YUV420)),
    lambda b: _drop_alpha(avif_decode(b)),
)
JPEGXL = Baseline(
    "JPEG XL", (20, 40, 55, 70, 80, 90, 95), lambda im, q: jpegxl_encode(im, q, effort=5), lambda b: _drop_alpha(jpegxl_decode(b))
)
CLASSICAL = {"jpeg": JPEG, "webp": WEBP, "avif": AVIF, "avif420": AVIF420, "jpegxl": JPEGXL}
