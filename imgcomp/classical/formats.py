"""The four classical formats behind `ClassicalCodec`: how each encodes, declares its size, decodes.

One place calls OpenCV's JPEG and imagecodecs' WebP, AVIF and JPEG XL; `imgcomp.eval.baselines`
sweeps the same functions at its own settings. `LEVELS` maps quality levels 1..6 (1 = fewest
bits) to each library's quality setting, measured on the validation photos: level 1 costs about
what `hyperprior-mse` level 1 costs there (WebP cannot go as low), and each level about 1.28x the
one below, that model's mean step, so every codec spans the range of rates it spans
(`scripts/classical_levels.py`, results in benchmarks/results/classical/levels.md).

The speed presets favour a CPU-only robot's frame rate over the last bits (measured with
`scripts/classical_levels.py --presets`, benchmarks/results/classical/presets.md): libaom's
fastest (speed 10: about 25 % more bits than speed 6 at equal PSNR, several times faster), libjxl
effort 3 and libwebp method 2 (each about 13 % more bits than their slowest presets, and 3-20x
faster in those runs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from imgcomp.classical.avif_header import avif_size
from imgcomp.classical.jpeg_header import jpeg_size
from imgcomp.classical.webp_header import webp_size
from imgcomp.models.jxl_header import jxl_still_size

__all__ = ["FORMATS", "LEVELS", "Format", "set_threads", "threads"]

AVIF_SPEED = 10  # libaom's fastest preset
JPEGXL_EFFORT = 3
WEBP_METHOD = 2
_THREADS = {"n": 1}


def set_threads(threads: int) -> None:
    """Threads libavif and libjxl may use per encode and decode (process-wide, like torch's)."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    _THREADS["n"] = threads


def threads() -> int:
    return _THREADS["n"]


def _threaded(function: Callable[..., object], *args: object, **kwargs: object) -> object:
    """`function(..., numthreads=n)`, or without it where this imagecodecs lacks the keyword
    (the robot's Python 3.10 pins an older release)."""
    try:
        return function(*args, numthreads=_THREADS["n"], **kwargs)
    except TypeError as exc:
        if "numthreads" not in str(exc):
            raise
        return function(*args, **kwargs)


def _rgb(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(image[:, :, None], 3, axis=2)) if image.ndim == 2 else image


# ------------------------------------------------------------------------------------ encoders
def jpeg_encode(image: np.ndarray, quality: int) -> bytes:
    """RGB (4:2:0) or mono (one component) uint8 -> baseline JPEG."""
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality), cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420]
    ok, buf = cv2.imencode(".jpg", image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise RuntimeError("OpenCV JPEG encoding failed")
    return buf.tobytes()


def webp_encode(image: np.ndarray, quality: int, method: int = WEBP_METHOD) -> bytes:
    import imagecodecs

    return bytes(imagecodecs.webp_encode(_rgb(image), level=quality, lossless=False, method=method))


def avif_encode(image: np.ndarray, quality: int, speed: int = AVIF_SPEED) -> bytes:
    import imagecodecs

    # imagecodecs codes a 2-D (mono) array losslessly whatever the level: send it as grey RGB,
    # whose flat chroma costs almost nothing.
    return bytes(_threaded(imagecodecs.avif_encode, _rgb(image), level=quality, speed=speed))


def jpegxl_encode(image: np.ndarray, quality: int, effort: int = JPEGXL_EFFORT) -> bytes:
    import imagecodecs

    return bytes(_threaded(imagecodecs.jpegxl_encode, image, level=quality, effort=effort))


# ------------------------------------------------------------------------------------ decoders
def jpeg_decode(data: bytes, channels: int = 3) -> np.ndarray:
    flags = (cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR) | cv2.IMREAD_IGNORE_ORIENTATION
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None:
        raise ValueError("not a decodable JPEG")
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def webp_decode(data: bytes, channels: int = 3) -> np.ndarray:
    import imagecodecs

    return np.asarray(imagecodecs.webp_decode(data, index=0))


def avif_decode(data: bytes, channels: int = 3) -> np.ndarray:
    import imagecodecs

    return np.asarray(_threaded(imagecodecs.avif_decode, data, index=0))


def jpegxl_decode(data: bytes, channels: int = 3) -> np.ndarray:
    import imagecodecs

    return np.asarray(_threaded(imagecodecs.jpegxl_decode, data, index=0))


# --------------------------------------------------------------------------------- the formats
def _jpeg_hw(data: bytes) -> tuple[int, int]:
    return jpeg_size(data)[:2]


def _opencv_version() -> str:
    return f"OpenCV {cv2.__version__} (libjpeg-turbo)"


def _imagecodecs_version(library: str) -> Callable[[], str]:
    def version() -> str:
        import imagecodecs

        return f"{getattr(imagecodecs, f'{library}_version')()} via imagecodecs {imagecodecs.__version__}"

    return version


@dataclass(frozen=True)
class Format:
    name: str  # the model name, e.g. "avif"
    title: str
    encode: Callable[[np.ndarray, int], bytes]  # HxW mono or HxWx3 RGB uint8, library quality -> file
    declared_size: Callable[[bytes], tuple[int, int]]  # (height, width) from the file's own header
    decode: Callable[[bytes, int], np.ndarray]  # file, channels wanted -> uint8 array
    library: Callable[[], str]


FORMATS: dict[str, Format] = {
    "jpeg": Format("jpeg", "JPEG (OpenCV, 4:2:0, baseline)", jpeg_encode, _jpeg_hw, jpeg_decode, _opencv_version),
    "webp": Format("webp", f"WebP (libwebp, lossy, method {WEBP_METHOD})", webp_encode, webp_size, webp_decode,
                   _imagecodecs_version("webp")),
    "avif": Format("avif", f"AVIF (libavif + libaom, speed {AVIF_SPEED})", avif_encode, avif_size, avif_decode,
                   _imagecodecs_version("avif")),
    "jxl": Format("jxl", f"JPEG XL (libjxl, effort {JPEGXL_EFFORT})", jpegxl_encode, jxl_still_size, jpegxl_decode,
                  _imagecodecs_version("jpegxl")),
}

# Library quality setting per level 1..6 (see the module docstring for where they come from).
LEVELS: dict[str, tuple[int, ...]] = {
    "jpeg": (5, 10, 15, 20, 25, 40),
    "webp": (5, 10, 20, 30, 45, 65),
    "avif": (20, 25, 30, 35, 40, 45),
    "jxl": (10, 15, 20, 30, 45, 60),
}
