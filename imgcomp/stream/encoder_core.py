"""The encoder node's work without ROS: Image fields in, CompressedFeatures fields out.

`EncoderCore.process()` converts the image with `imgcomp.image`, picks the quality level
(fixed, or per frame by `RateController` when a target bitrate is set), encodes the frame and
returns the fields of the message to publish; the header (stamp, frame_id) passes through
unchanged.

Temporal mode: for a model with temporal tables (imgcomp.temporal) and `keyframe_interval` N > 0
the frames go through one `imgcomp.temporal.StreamEncoder`: a key frame every N frames (and on
the first frame, a level, size or encoding change, a scene change, `request_keyframe()`), latent
P-frames in between. A model switch starts a new stream (new stream id, key frame first), and so
does every new `EncoderCore` (a restarted node): no decoder can apply a P-frame of the new stream
to a reference of the old one. Models without temporal tables, and N = 0, send key frames only
(`diagnostics()["temporal"]` says which and why). With rate control on, the level changes only
at key frames and P-frames are steered by the encoder's rate-distortion multiplier (see
`imgcomp.stream.rate_control`).

It never raises for a bad frame: it returns a `Rejection` whose `cause` is one of

* ``unsupported_encoding`` - the encoding is not one `imgcomp.image` converts;
* ``too_large`` - more pixels than `max_pixels`, or a side beyond the bitstream's limit;
* ``bad_image`` - zero size, a step shorter than a row, truncated data, odd width for YUV;
* ``encode_failed`` - the codec itself failed;

and counts it in `stats`. The model, quality, target bitrate, keyframe interval and pixel limit
can be changed while another thread is encoding: a frame in flight finishes with the settings it
started with, the next one uses the new ones. `process` itself is called from one thread (the
node's worker): a stream is a sequence. `effort` > 0 (offline transcoding, e.g. `imgcomp bag
compress --effort N --keyframe-interval 0`) refines each frame's latents at encode time
(`Codec.encode`), far too slow for a live camera; it applies to intra-only streams.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from imgcomp.bitstream import FRAME_KEY, FRAME_PREDICTED, MAX_SIDE
from imgcomp.codec import DEFAULT_MODEL, Codec
from imgcomp.defaults import DEFAULT_KEYFRAME_INTERVAL, check_effort
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
from imgcomp.temporal.stream import StreamEncoder, new_stream_id
from imgcomp.temporal.tables import TemporalTablesError

__all__ = ["EncoderCore"]

_UINT32 = 0xFFFFFFFF


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_interval(value: int) -> int:
    if not _is_int(value) or value < 0:
        raise ValueError(f"keyframe_interval must be an int >= 0, got {value!r}")
    return int(value)


@dataclass
class _Stream:
    """One model's stream: swapped as a whole on a model change."""

    codec: Codec
    rate: RateController
    encoder: StreamEncoder | None  # None: the model has no temporal tables (key frames only)
    intra_note: str  # why there are no P-frames with this model ("" when it has tables)
    stream_id: int  # the stream id of the key-frame-only path (the StreamEncoder has its own)
    first_reason: str  # what the first key frame of this stream is reported as
    frame_number: int = 0  # key-frame-only path


def _stream_encoder(codec: Codec, interval: int) -> tuple[StreamEncoder | None, str]:
    try:
        return StreamEncoder(codec, keyframe_interval=interval), ""
    except TemporalTablesError as exc:
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001 - damaged or foreign tables: send key frames, say why
        return None, f"the temporal tables of {codec.model_name} cannot be used ({type(exc).__name__}: {exc})"


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
        keyframe_interval: int = DEFAULT_KEYFRAME_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        stats: StreamStats | None = None,
        effort: int = 0,
    ) -> None:
        self._effort = check_effort(effort)
        self._factory = codec_factory
        self._clock = clock
        self._lock = threading.Lock()  # guards the stream (codec, rate control, stream encoder)
        self._model_lock = threading.Lock()  # one model load at a time
        self._max_pixels = self._check_max_pixels(max_pixels)
        self._fps_hint = fps_hint
        self._keyframe_interval = _check_interval(keyframe_interval)
        codec = codec_factory(model)
        rate = RateController(
            codec.levels, target_kbps, fps_hint, quality=codec.quality if quality is None else quality,
            keyframe_interval=self._keyframe_interval,
        )
        self._stream = self._new_stream(codec, rate, "first")
        self.keyframes_sent = 0
        self.pframes_sent = 0
        self.key_reasons: Counter[str] = Counter()
        self.stats = stats if stats is not None else StreamStats("encode", clock=clock)

    def _new_stream(self, codec: Codec, rate: RateController, first_reason: str) -> _Stream:
        encoder, note = _stream_encoder(codec, self._keyframe_interval)
        rate.set_keyframe_interval(self._keyframe_interval if encoder is not None else 0)
        return _Stream(codec, rate, encoder, note, new_stream_id(), first_reason)

    # --------------------------------------------------------------------------- settings
    @staticmethod
    def _check_max_pixels(value: int) -> int:
        if not _is_int(value) or value < 1:
            raise ValueError(f"max_pixels must be a positive int, got {value!r}")
        return int(value)

    @property
    def codec(self) -> Codec:
        return self._stream.codec

    @property
    def effort(self) -> int:
        return self._effort

    @property
    def model_name(self) -> str:
        return self._stream.codec.model_name

    @property
    def levels(self) -> int:
        return self._stream.codec.levels

    @property
    def quality(self) -> int:
        """The fixed quality (used while rate control is off)."""
        return self._stream.rate.quality

    @property
    def target_kbps(self) -> float:
        return self._stream.rate.target_kbps

    @property
    def keyframe_interval(self) -> int:
        return self._keyframe_interval

    @property
    def temporal(self) -> bool:
        """Whether P-frames are sent (a model with temporal tables and keyframe_interval > 0)."""
        stream = self._stream
        return stream.encoder is not None and self._keyframe_interval > 0

    @property
    def stream_id(self) -> int:
        """The stream id the payloads carry (new on every model change and every new core)."""
        stream = self._stream
        return stream.encoder.stream_id if stream.encoder is not None else stream.stream_id

    @property
    def max_pixels(self) -> int:
        return self._max_pixels

    def set_quality(self, quality: int) -> None:
        """Fixed quality level 1..levels; raises ValueError outside that range. In temporal mode
        the next frame is a key frame at the new level."""
        with self._lock:
            rate = self._stream.rate
        rate.set_quality(int(quality) if _is_int(quality) else quality)

    def set_target_kbps(self, target_kbps: float) -> None:
        """Target bitrate in kbit/s (0 = off: fixed quality); raises ValueError if negative."""
        with self._lock:
            rate = self._stream.rate
        rate.set_target_kbps(target_kbps)

    def set_keyframe_interval(self, keyframe_interval: int) -> None:
        """A key frame every `keyframe_interval` frames from the next frame on (0 = key frames
        only); raises ValueError if negative. A group already longer ends at the next frame."""
        value = _check_interval(keyframe_interval)
        with self._lock:
            self._keyframe_interval = value
            stream = self._stream
            if stream.encoder is not None:
                stream.encoder.set_keyframe_interval(value)
            stream.rate.set_keyframe_interval(value if stream.encoder is not None else 0)

    def request_keyframe(self) -> None:
        """Make the next frame a key frame (e.g. after a receiver reported a loss)."""
        with self._lock:
            encoder = self._stream.encoder
        if encoder is not None:
            encoder.request_keyframe()

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
                old = self._stream.rate
                rate = RateController(codec.levels, old.target_kbps, old.fps, quality=min(old.quality, codec.levels))
                # a new stream: new stream id, and its first frame a key frame reported as "model"
                self._stream = self._new_stream(codec, rate, "model")

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
            stream = self._stream
        try:
            payload, level, keyframe, number, reference, reason = self._encode(stream, array, image.encoding, now, self._effort)
        except Exception as exc:  # noqa: BLE001 - one bad frame must not stop the stream
            return self._reject(Rejection(ENCODE_FAILED, f"{type(exc).__name__}: {exc}"))
        if keyframe:
            if reason == "first":
                reason, stream.first_reason = stream.first_reason, "first"
            self.keyframes_sent += 1
            self.key_reasons[reason] += 1
        else:
            self.pframes_sent += 1
        height, width = int(image.height), int(image.width)
        self.stats.record_output(len(payload), height * width, self._clock() - started)
        return FeaturesFields(
            data=payload,
            codec=stream.codec.model_name,
            model_hash=stream.codec.model_hash,
            quality=level,
            height=height,
            width=width,
            encoding=image.encoding,
            frame_type=FRAME_KEY if keyframe else FRAME_PREDICTED,
            frame_number=number & _UINT32,
            reference_frame_number=reference & _UINT32,
            stamp=image.stamp,
            frame_id=image.frame_id,
        )

    @staticmethod
    def _encode(stream: _Stream, array: np.ndarray, encoding: str, now: float, effort: int = 0) -> tuple[bytes, int, bool, int, int, str]:
        """(payload, level, key frame?, frame number, reference, key reason) of one frame."""
        rate, encoder = stream.rate, stream.encoder
        if encoder is None:
            level = rate.plan(now).level
            number = stream.frame_number
            payload = stream.codec.encode_with_latent(
                array, quality=level, encoding=encoding, frame_number=number & _UINT32, stream_id=stream.stream_id, effort=effort
            )[0]
            rate.update(level, len(payload), now)
            stream.frame_number += 1
            return payload, level, True, number, number, "first" if number == 0 else "intra"
        plan = rate.plan(now, keyframe=encoder.keyframe_due(), reference_level=encoder.reference_quality)
        encoder.rd_multiplier = plan.multiplier
        out = encoder.encode(array, quality=plan.level, encoding=encoding)
        rate.update(out.quality, len(out.payload), now, keyframe=out.keyframe, multiplier=plan.multiplier)
        return out.payload, out.quality, out.keyframe, out.frame_number, out.reference, out.reason

    # ------------------------------------------------------------------------ diagnostics
    def diagnostics(self) -> dict[str, str]:
        """Stream statistics plus the model and rate-control state, as strings."""
        with self._lock:
            stream = self._stream
        codec, rate = stream.codec, stream.rate
        out = self.stats.snapshot()
        out.update(
            {
                "model": codec.model_name,
                "model_hash": codec.model_hash,
                "levels": str(codec.levels),
                "quality": str(rate.quality),
                "max_input_pixels": str(self._max_pixels),
                "keyframe_interval": str(self._keyframe_interval),
                "temporal": self._temporal_note(stream),
                "stream_id": f"{self.stream_id:08x}",
                "keyframes_sent": str(self.keyframes_sent),
                "pframes_sent": str(self.pframes_sent),
                "key_reasons": ", ".join(f"{r} {n}" for r, n in sorted(self.key_reasons.items())) or "none",
            }
        )
        out.update(rate.diagnostics())
        return out

    def _temporal_note(self, stream: _Stream) -> str:
        if stream.encoder is None:
            return f"off: {stream.intra_note}; every frame is a key frame"
        if self._keyframe_interval == 0:
            return "off: keyframe_interval is 0; every frame is a key frame"
        return f"on: a key frame every {self._keyframe_interval} frames, P-frames in between"

    def status(self) -> tuple[int, str]:
        """Level and message: the stream's, raised to WARN when the target is out of range."""
        level, message = self.stats.status()
        with self._lock:
            rate = self._stream.rate
        range_status = rate.range_status()
        if range_status in ("below_range", "above_range") and level < WARN:
            note = rate.diagnostics().get("rate_note", range_status)
            return WARN, f"{message}; {note}"
        return level, message
