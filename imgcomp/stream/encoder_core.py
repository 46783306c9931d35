"""The encoder node's work without ROS: Image fields in, CompressedFeatures fields out.

`EncoderCore.process()` converts the image with `imgcomp.image`, picks the quality level
(fixed, or per frame by `RateController` when a target bitrate is set), runs `Codec.encode`
and returns the fields of the message to publish; the header (stamp, frame_id) passes through
unchanged. It never raises for a bad frame: it returns a `Rejection` whose `cause` is one of

* ``unsupported_encoding`` - the encoding is not one `imgcomp.image` converts;
* ``too_large`` - more pixels than `max_pixels`, or a side beyond the bitstream's limit;
* ``bad_image`` - zero size, a step shorter than a row, truncated data, odd width for YUV;
* ``encode_failed`` - the codec itself failed;

and counts it in `stats`. `effort` > 0 (offline transcoding, e.g. `imgcomp bag compress
--effort N`) refines each frame's latents at encode time (`Codec.encode`), far too slow for a
live camera. The model, quality, target bitrate and pixel limit can be changed
while another thread is encoding: a frame in flight finishes with the settings it started
with, the next one uses the new ones.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import numpy as np

from imgcomp.bitstream import MAX_SIDE
from imgcomp.codec import DEFAULT_MODEL, Codec
from imgcomp.defaults import check_effort
from imgcomp.image import (
    DEFAULT_MAX_PIXELS,
    SUPPORTED_ENCODINGS,
    ImageEncodingError,
    image_from_msg_fields,
)
from imgcomp.stream.fields import FeaturesFields, ImageFields
from imgcomp.stream.rate_control import RateController
from imgcomp.stream.rejections import (
    BAD_IMAGE,
    ENCODE_FAILED,
    TOO_LARGE,
    UNSUPPORTED_ENCODING,
    Rejection,
)
from imgcomp.stream.stats import WARN, StreamStats

__all__ = ["EncoderCore"]

_UINT32 = 0xFFFFFFFF


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


class EncoderCore:
    """See the module docstring. `codec_factory(model_name)` returns a loaded `Codec`."""

    def __init__(
        self,
        codec_factory: Callable[[str], Codec] = Codec,
        *,
        model: str = DEFAULT_MODEL,
        quality: int | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        target_kbps: float = 0.0,
        fps_hint: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        stats: StreamStats | None = None,
        effort: int = 0,
    ) -> None:
        self._effort = check_effort(effort)
        self._factory = codec_factory
        self._clock = clock
        self._lock = threading.Lock()  # guards the (codec, rate) pair and the frame counter
        self._model_lock = threading.Lock()  # one model load at a time
        self._max_pixels = self._check_max_pixels(max_pixels)
        self._fps_hint = fps_hint
        codec = codec_factory(model)
        self._codec = codec
        self._rate = RateController(
            codec.levels, target_kbps, fps_hint, quality=codec.quality if quality is None else quality
        )
        self._frame_number = 0
        self.stats = stats if stats is not None else StreamStats("encode", clock=clock)

    # --------------------------------------------------------------------------- settings
    @staticmethod
    def _check_max_pixels(value: int) -> int:
        if not _is_int(value) or value < 1:
            raise ValueError(f"max_pixels must be a positive int, got {value!r}")
        return int(value)

    @property
    def codec(self) -> Codec:
        return self._codec

    @property
    def effort(self) -> int:
        return self._effort

    @property
    def model_name(self) -> str:
        return self._codec.model_name

    @property
    def levels(self) -> int:
        return self._codec.levels

    @property
    def quality(self) -> int:
        """The fixed quality (used while rate control is off)."""
        return self._rate.quality

    @property
    def target_kbps(self) -> float:
        return self._rate.target_kbps

    @property
    def max_pixels(self) -> int:
        return self._max_pixels

    def set_quality(self, quality: int) -> None:
        """Fixed quality level 1..levels; raises ValueError outside that range."""
        with self._lock:
            rate = self._rate
        rate.set_quality(int(quality) if _is_int(quality) else quality)

    def set_target_kbps(self, target_kbps: float) -> None:
        """Target bitrate in kbit/s (0 = off: fixed quality); raises ValueError if negative."""
        with self._lock:
            rate = self._rate
        rate.set_target_kbps(target_kbps)

    def set_max_pixels(self, max_pixels: int) -> None:
        self._max_pixels = self._check_max_pixels(max_pixels)

    def set_model(self, model: str) -> None:
        """Load `model` (slow: seconds) and switch to it for the next frame.

        The quality is kept, clamped to the new model's levels. Raises whatever the factory
        raises (e.g. `imgcomp.models.registry.WeightsError` for an unknown model); the old
        model then stays in use.
        """
        with self._model_lock:
            codec = self._factory(model)  # outside self._lock: frames keep flowing meanwhile
            with self._lock:
                old = self._rate
                self._rate = RateController(
                    codec.levels,
                    old.target_kbps,
                    old.fps,
                    quality=min(old.quality, codec.levels),
                )
                self._codec = codec

    # ---------------------------------------------------------------------------- frames
    def _precheck(self, image: ImageFields) -> Rejection | None:
        encoding = image.encoding
        if not isinstance(encoding, str) or encoding not in SUPPORTED_ENCODINGS:
            return Rejection(
                UNSUPPORTED_ENCODING,
                f"unsupported image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}",
            )
        h, w = image.height, image.width
        if _is_int(h) and _is_int(w) and h > 0 and w > 0:
            if h * w > self._max_pixels:
                return Rejection(
                    TOO_LARGE, f"image {w}x{h} has {h * w} pixels, more than max_input_pixels={self._max_pixels}"
                )
            if h > MAX_SIDE or w > MAX_SIDE:
                return Rejection(TOO_LARGE, f"image {w}x{h} has a side over the codec's limit of {MAX_SIDE} px")
        return None

    def _reject(self, rejection: Rejection) -> Rejection:
        self.stats.record_rejected(rejection.cause)
        return rejection

    def process(self, image: ImageFields, now: float | None = None) -> FeaturesFields | Rejection:
        """Encode one frame; `now` (seconds) times it for rate control (default: the clock)."""
        started = self._clock()
        now = started if now is None else now
        rejection = self._precheck(image)
        if rejection is not None:
            return self._reject(rejection)
        try:
            array = image_from_msg_fields(
                image.data,
                image.height,
                image.width,
                image.encoding,
                image.step,
                image.is_bigendian,
                max_pixels=self._max_pixels,
            )
        except ImageEncodingError as exc:
            return self._reject(Rejection(BAD_IMAGE, str(exc)))
        with self._lock:
            codec, rate, number = self._codec, self._rate, self._frame_number
        level = rate.next_quality(now)
        try:
            payload = codec.encode(array, quality=level, encoding=image.encoding, frame_number=number, effort=self._effort)
        except Exception as exc:  # noqa: BLE001 - one bad frame must not stop the stream
            return self._reject(Rejection(ENCODE_FAILED, f"{type(exc).__name__}: {exc}"))
        rate.update(level, len(payload), now)
        with self._lock:
            self._frame_number += 1
        height, width = int(image.height), int(image.width)
        self.stats.record_output(len(payload), height * width, self._clock() - started)
        return FeaturesFields(
            data=payload,
            codec=codec.model_name,
            model_hash=codec.model_hash,
            quality=level,
            height=height,
            width=width,
            encoding=image.encoding,
            frame_type=0,
            frame_number=number & _UINT32,
            reference_frame_number=number & _UINT32,
            stamp=image.stamp,
            frame_id=image.frame_id,
        )

    # ------------------------------------------------------------------------ diagnostics
    def diagnostics(self) -> dict[str, str]:
        """Stream statistics plus the model and rate-control state, as strings."""
        with self._lock:
            codec, rate = self._codec, self._rate
        out = self.stats.snapshot()
        out.update(
            {
                "model": codec.model_name,
                "model_hash": codec.model_hash,
                "levels": str(codec.levels),
                "quality": str(rate.quality),
                "max_input_pixels": str(self._max_pixels),
            }
        )
        out.update(rate.diagnostics())
        return out

    def status(self) -> tuple[int, str]:
        """Level and message: the stream's, raised to WARN when the target is out of range."""
        level, message = self.stats.status()
        with self._lock:
            rate = self._rate
        range_status = rate.range_status()
        if range_status in ("below_range", "above_range") and level < WARN:
            note = rate.diagnostics().get("rate_note", range_status)
            return WARN, f"{message}; {note}"
        return level, message
