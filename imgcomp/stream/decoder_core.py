"""The decoder node's work without ROS: CompressedFeatures fields in, Image fields out.

`DecoderCore.process()` parses the payload (strictly: magic, version, checksum, lengths),
checks the message fields against the payload's own header, picks the codec the payload names,
decodes, and converts the image back to the source's size and encoding with
`imgcomp.image.image_to_msg_fields`; stamp and frame_id pass through. A payload that names
another shipped model than the one loaded is decoded with that model, loaded from the registry
on first use and kept in a small LRU cache. It never raises for a bad message; it returns a
`Rejection` whose `cause` is one of

* ``malformed_payload`` - empty, truncated, corrupted (checksum), unknown version, a latent
  shape that does not fit the image, or message fields that disagree with the payload;
* ``too_large`` - the header claims more pixels than `max_output_pixels` (checked before any
  model is loaded or memory allocated);
* ``unknown_model`` - the payload names a model this installation does not ship;
* ``model_unavailable`` - a shipped model whose weights could not be loaded;
* ``model_mismatch`` - same model name, other weights: the message names both hashes;
* ``unsupported_encoding`` - the recorded source encoding cannot be produced;
* ``decode_failed`` - the codec failed on a payload that parsed;
* ``missing_reference`` - a P-frame (temporal mode) whose reference was not decoded here: a lost,
  dropped or reordered message, a decoder that joined mid-stream, an encoder restart; every later
  P-frame of that stream is refused too, up to its next key frame (`imgcomp.stream.references`);

and counts it in `stats`. The next valid frame decodes as usual.

Temporal mode: every payload of a model with temporal tables goes through its stream's
`imgcomp.temporal.StreamDecoder` (one per model, weights and stream id, at most `max_streams`),
so a P-frame is only ever applied to the very reference it names. When the node's worker is
behind and skips older messages, `catch_up()` still entropy-decodes the skipped frames' latents
(no synthesis, no conversion), so the references stay whole and only the display skips.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable

import numpy as np

from imgcomp.bitstream import FRAME_KEY, Frame, FrameHeader
from imgcomp.codec import DEFAULT_MAX_OUTPUT_PIXELS, DEFAULT_MODEL, Codec
from imgcomp.image import ImageEncodingError, image_to_msg_fields
from imgcomp.models.registry import available_models
from imgcomp.stream.fields import FeaturesFields, ImageFields
from imgcomp.stream.payload import checked_frame, codec_failure
from imgcomp.stream.references import DEFAULT_MAX_STREAMS, StreamReferences
from imgcomp.stream.rejections import (
    MODEL_UNAVAILABLE,
    UNKNOWN_MODEL,
    UNSUPPORTED_ENCODING,
    Rejection,
)
from imgcomp.stream.stats import StreamStats

__all__ = ["DecoderCore"]


class DecoderCore:
    """See the module docstring. `codec_factory(model_name)` returns a loaded `Codec`.

    `model` is loaded at construction (None: load lazily, from the first payload);
    `shipped_models` is the set of names that may be loaded (default: the registry's).
    """

    def __init__(
        self,
        codec_factory: Callable[[str], Codec] = Codec,
        *,
        model: str | None = DEFAULT_MODEL,
        max_cached_models: int = 3,
        max_output_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS,
        max_streams: int = DEFAULT_MAX_STREAMS,
        shipped_models: Callable[[], list[str]] = available_models,
        clock: Callable[[], float] = time.monotonic,
        stats: StreamStats | None = None,
    ) -> None:
        if max_cached_models < 1:
            raise ValueError("max_cached_models must be at least 1")
        if isinstance(max_output_pixels, bool) or not isinstance(max_output_pixels, int) or max_output_pixels < 1:
            raise ValueError(f"max_output_pixels must be a positive int, got {max_output_pixels!r}")
        self.max_output_pixels = max_output_pixels
        self._factory = codec_factory
        self._shipped = shipped_models
        self._clock = clock
        self._max_cached = max_cached_models
        self._lock = threading.Lock()
        self._codecs: OrderedDict[str, Codec] = OrderedDict()
        self.references = StreamReferences(max_streams, max_output_pixels)
        self.caught_up = 0  # skipped frames whose latents were decoded to keep their stream's reference
        self.stats = stats if stats is not None else StreamStats("decode", clock=clock)
        self.last_model: str | None = None
        if model:
            self._codecs[model] = codec_factory(model)
            self.last_model = model

    @property
    def loaded_models(self) -> list[str]:
        with self._lock:
            return list(self._codecs)

    def preload(self, model: str) -> None:
        """Load a shipped model now (slow) so its first payload decodes without the wait.

        Raises ValueError for a model the registry does not ship, or whatever loading raises.
        """
        if model not in self._shipped():
            raise ValueError(f"unknown model {model!r}; shipped: {', '.join(self._shipped()) or 'none'}")
        with self._lock:
            if model in self._codecs:
                self._codecs.move_to_end(model)
                return
        codec = self._factory(model)
        self._store(model, codec)

    def _store(self, model: str, codec: Codec) -> None:
        with self._lock:
            self._codecs[model] = codec
            self._codecs.move_to_end(model)
            while len(self._codecs) > self._max_cached:
                evicted, _ = self._codecs.popitem(last=False)
                self.references.forget_model(evicted)

    def _reject(self, cause: str, message: str) -> Rejection:
        return self._count(Rejection(cause, message))

    def _count(self, rejection: Rejection) -> Rejection:
        self.stats.record_rejected(rejection.cause)
        return rejection

    def _codec_for(self, model: str, count: bool = True) -> Codec | Rejection:
        with self._lock:
            codec = self._codecs.get(model)
            if codec is not None:
                self._codecs.move_to_end(model)
                return codec
        shipped = self._shipped()
        rejected = self._count if count else (lambda rejection: rejection)
        if model not in shipped:
            return rejected(Rejection(
                UNKNOWN_MODEL,
                f"payload names model {model!r}, which this installation does not ship "
                f"(shipped: {', '.join(shipped) or 'none'})",
            ))
        try:
            codec = self._factory(model)  # slow (seconds); only the worker thread gets here
        except Exception as exc:  # noqa: BLE001 - weights missing or corrupt: reject the frame
            return rejected(Rejection(MODEL_UNAVAILABLE, f"cannot load model {model!r}: {exc}"))
        self._store(model, codec)
        return codec

    def decode(self, fields: FeaturesFields) -> tuple[np.ndarray, FrameHeader] | Rejection:
        """The decoded uint8 array (HxWx3 RGB or HxW mono, before the source encoding is
        restored) and the payload's header, or a counted Rejection. The payload is parsed once:
        the codec receives the parsed frame."""
        frame = checked_frame(fields, self.max_output_pixels)
        if isinstance(frame, Rejection):
            return self._count(frame)
        codec = self._codec_for(frame.header.model)
        if isinstance(codec, Rejection):
            return codec
        try:
            if frame.header.frame_type == FRAME_KEY and self.references.tables(codec) is None:
                image = codec.decode(frame, self.max_output_pixels)  # a model without temporal mode
                self.references.count_key_frame()
            else:
                out = self.references.latent(codec, frame)
                if isinstance(out, Rejection):
                    return self._count(out)
                header, y_hat = out
                image = codec.render(codec.latent_tensor(y_hat), header)
        except Exception as exc:  # noqa: BLE001 - one bad frame must not stop the stream
            return self._count(codec_failure(exc))
        return image, frame.header

    def catch_up(self, skipped: list[FeaturesFields]) -> int:
        """Keep the references of frames the caller will not show (a node's worker skipped them
        to stay at the newest): their latents are entropy-decoded in order, oldest first, without
        synthesis; frames before a later key frame of the same stream are not even that. Nothing
        is counted as rejected (the node counted them as dropped); a frame that fails leaves its
        stream waiting for a key frame, which the frames shown later report. Returns how many
        latents were decoded."""
        parsed: list[tuple[Frame, Codec]] = []
        for fields in skipped:
            frame = checked_frame(fields, self.max_output_pixels)
            if isinstance(frame, Rejection):
                continue
            codec = self._codec_for(frame.header.model, count=False)
            if not isinstance(codec, Rejection):
                parsed.append((frame, codec))
        decoded = self.references.catch_up(parsed)
        self.caught_up += decoded
        return decoded

    def process(self, fields: FeaturesFields) -> ImageFields | Rejection:
        started = self._clock()
        decoded = self.decode(fields)
        if isinstance(decoded, Rejection):
            return decoded
        image, header = decoded
        try:
            data, height, width, encoding, step = image_to_msg_fields(image, header.encoding)
        except ImageEncodingError as exc:
            return self._reject(UNSUPPORTED_ENCODING, str(exc))
        self.last_model = header.model
        self.stats.record_output(len(fields.data), height * width, self._clock() - started)
        return ImageFields(
            data=data,
            height=height,
            width=width,
            encoding=encoding,
            step=step,
            is_bigendian=0,
            stamp=fields.stamp,
            frame_id=fields.frame_id,
        )

    def diagnostics(self) -> dict[str, str]:
        out = self.stats.snapshot()
        out["loaded_models"] = ", ".join(self.loaded_models) or "none"
        out["last_model"] = self.last_model or "none"
        out.update(self.references.diagnostics())
        out["skipped_frames_caught_up"] = str(self.caught_up)
        return out

    def status(self) -> tuple[int, str]:
        return self.stats.status()
