"""`ClassicalCodec`: JPEG, WebP, AVIF or JPEG XL behind the interface of `imgcomp.codec.Codec`.

`Codec("avif")` returns one of these, so the nodes, rate control, the bag tools and the CLI take
a classical codec by its name like any shipped model. The payload is the usual container
(`imgcomp.bitstream`): the codec's name as its model, `classical_hash(name)` in place of the
weights hash, the source size, encoding and quality level, and the codec's file as its one
stream. Every frame is a key frame.

The hash is derived from the codec's name alone, not from the library's version: any build of
libavif decodes any AVIF, so a host with another imagecodecs still decodes, while a payload of
another codec is refused as a model mismatch. Before the library sees a file, its own header's
size is checked against the container's (which `max_output_pixels` has already bounded), so a
forged file cannot make the library allocate more than the container admits.
"""

from __future__ import annotations

import hashlib
from typing import Any

import cv2
import numpy as np

from imgcomp.bitstream import (
    FRAME_KEY,
    BitstreamError,
    Frame,
    FrameHeader,
    ModelMismatchError,
    check_output_size,
    pack,
    unpack,
    validate_image_size,
)
from imgcomp.classical.formats import FORMATS, LEVELS, set_threads
from imgcomp.defaults import CLASSICAL_LEVELS, CLASSICAL_MODELS, DEFAULT_MAX_OUTPUT_PIXELS, check_effort

__all__ = ["ClassicalCodec", "classical_hash"]


def classical_hash(name: str) -> str:
    """The fixed 16-hex identifier a classical codec's payloads carry as their model hash."""
    return hashlib.sha256(f"imgcomp classical codec {name}".encode()).hexdigest()[:16]


class ClassicalCodec:
    """One classical format with quality levels 1..6; see the module docstring.

    The constructor takes `Codec`'s arguments; `device`, `backend` and `graphs_dir` name where
    neural transforms run and are ignored here (a classical codec has none: it runs on the CPU);
    `threads` (0: unchanged) sets the libavif/libjxl threads, process-wide.
    """

    def __init__(
        self,
        model: str,
        device: str = "cpu",
        quality: int | None = None,
        backend: str = "torch",
        graphs_dir: Any = None,
        max_output_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS,
        threads: int = 0,
    ) -> None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            raise ValueError(f"threads must be a non-negative integer, got {threads!r}")
        if model not in CLASSICAL_MODELS:
            raise ValueError(f"unknown classical codec {model!r}; known: {', '.join(CLASSICAL_MODELS)}")
        if isinstance(max_output_pixels, bool) or not isinstance(max_output_pixels, int) or max_output_pixels < 1:
            raise ValueError(f"max_output_pixels must be a positive integer, got {max_output_pixels!r}")
        self.model_name = model
        self.format = FORMATS[model]
        self.settings = LEVELS[model]
        self.model_hash = classical_hash(model)
        self.levels = CLASSICAL_LEVELS
        self.max_output_pixels = max_output_pixels
        self.device = "cpu"
        self.backend = "none"
        self.entry = {"family": "classical", "levels": self.levels, "library": self.format.library()}
        self.quality = self._check_quality(quality if quality is not None else (self.levels + 1) // 2)
        if threads:
            set_threads(threads)  # libavif/libjxl threads are process-wide, like torch's

    # ----------------------------------------------------------------------------------- helpers
    def _check_quality(self, quality: int) -> int:
        if isinstance(quality, (bool, np.bool_)) or not isinstance(quality, (int, np.integer)) or not 1 <= int(quality) <= self.levels:
            raise ValueError(f"quality must be an integer in 1..{self.levels}, got {quality!r}")
        return int(quality)

    def set_quality(self, quality: int) -> None:
        self.quality = self._check_quality(quality)

    @staticmethod
    def _checked_image(image: np.ndarray) -> tuple[np.ndarray, int]:
        """(HxW mono or HxWx3 RGB, channels): the inputs `Codec` accepts, with its errors."""
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
            raise ValueError(f"image must be a uint8 numpy array, got {getattr(image, 'dtype', type(image))}")
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3):
            validate_image_size(*image.shape[:2])
            return np.ascontiguousarray(image), 1 if image.ndim == 2 else 3
        raise ValueError(f"image must be HxW (mono) or HxWx3 (RGB), got shape {image.shape}")

    # ------------------------------------------------------------------------------------ encode
    def check_effort(self, effort: int) -> int:
        """0, as `Codec.check_effort` takes it; a higher effort is a ValueError (no latents to refine)."""
        if check_effort(effort):
            raise ValueError(f"model {self.model_name!r} is a classical codec with no latents to refine: use effort 0")
        return 0

    def encode(
        self, image: np.ndarray, quality: int | None = None, encoding: str | None = None, frame_number: int = 0,
        effort: int = 0,
    ) -> bytes:
        """Compress one uint8 image (HxW mono or HxWx3 RGB) into a self-contained payload
        (`effort` is `Codec.encode`'s: only 0 here)."""
        return self.encode_with_latent(image, quality, encoding, frame_number, effort=effort)[0]

    def encode_with_latent(
        self, image: np.ndarray, quality: int | None = None, encoding: str | None = None, frame_number: int = 0,
        stream_id: int = 0, effort: int = 0,
    ) -> tuple[bytes, None]:
        """`Codec.encode_with_latent`'s interface: the payload, and no latent (a classical codec has none)."""
        self.check_effort(effort)
        pixels, channels = self._checked_image(image)
        level = self._check_quality(quality if quality is not None else self.quality)
        encoding = encoding or ("mono8" if channels == 1 else "rgb8")
        if not isinstance(encoding, str) or not encoding.isascii() or len(encoding) > 255:
            raise ValueError(f"encoding must be an ASCII string of at most 255 characters, got {encoding!r}")
        stream = self.format.encode(pixels, self.settings[level - 1])
        height, width = pixels.shape[:2]
        header = FrameHeader(
            model=self.model_name, model_hash=self.model_hash, height=height, width=width, channels=channels,
            encoding=encoding, quality=level, frame_type=FRAME_KEY, frame_number=frame_number,
            reference_frame_number=frame_number, latent_shape=(0, 0), stream_id=stream_id,
        )
        return pack(Frame(header, (stream,))), None

    # ------------------------------------------------------------------------------------ decode
    def parse(self, data: bytes | Frame, max_output_pixels: int | None = None, predicted_ok: bool = False) -> Frame:
        """Parse a payload, check it is this codec's and fits `max_output_pixels`, and check the
        file's own declared size against the container's, all before any decoder runs."""
        frame = data if isinstance(data, Frame) else unpack(data)
        h = frame.header
        check_output_size(h.height, h.width, max_output_pixels or self.max_output_pixels)
        if h.model_hash != self.model_hash or h.model != self.model_name:
            raise ModelMismatchError(h.model, h.model_hash, self.model_name, self.model_hash)
        if h.frame_type != FRAME_KEY:
            raise BitstreamError(f"frame {h.frame_number} is a predicted frame: {self.model_name} codes key frames only")
        if not 1 <= h.quality <= self.levels:
            raise BitstreamError(f"quality {h.quality} is outside this codec's 1..{self.levels}")
        if len(frame.streams) != 1 or h.latent_shape != (0, 0):
            raise BitstreamError(f"a {self.model_name} payload carries one file and no latent shape")
        declared = self.format.declared_size(bytes(frame.streams[0]))
        if declared != (h.height, h.width):
            raise BitstreamError(
                f"{self.model_name} file declares {declared[1]}x{declared[0]}, the payload {h.width}x{h.height}"
            )
        return frame

    def decode(self, data: bytes | Frame, max_output_pixels: int | None = None) -> np.ndarray:
        """Payload -> uint8 image of the original size (HxWx3, or HxW for mono sources)."""
        frame = self.parse(data, max_output_pixels)
        h = frame.header
        try:
            image = self.format.decode(bytes(frame.streams[0]), h.channels)
        except Exception as exc:  # noqa: BLE001 - each library raises its own error types
            raise BitstreamError(f"{self.model_name} file does not decode: {type(exc).__name__}: {exc}") from None
        return _as_channels(image, h.channels, (h.height, h.width), self.model_name)

    def decode_latent(self, data: bytes | Frame, max_output_pixels: int | None = None) -> Any:
        raise ValueError(f"{self.model_name} is a classical codec: its payloads carry no latent for a multi-task head")


def _as_channels(image: np.ndarray, channels: int, size: tuple[int, int], name: str) -> np.ndarray:
    if image.dtype != np.uint8 or image.shape[:2] != size or image.ndim not in (2, 3):
        raise BitstreamError(f"{name} file decoded to {image.dtype} {image.shape}, expected uint8 {size}")
    if image.ndim == 3:
        if image.shape[2] not in (3, 4):
            raise BitstreamError(f"{name} file decoded to {image.shape[2]} channels")
        image = image[:, :, :3]
        if channels == 1:
            return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    elif channels == 3:
        return np.ascontiguousarray(np.repeat(image[:, :, None], 3, axis=2))
    return np.ascontiguousarray(image)
