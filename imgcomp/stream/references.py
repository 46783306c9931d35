"""The references of the temporal mode on the receiving side: one `imgcomp.temporal.StreamDecoder`
per stream, shared by the decoder and the multi-task cores.

A stream is (model, weights hash, stream id): the encoder takes a new stream id whenever it
starts or switches models, so two encoders on one topic, or an encoder and its restarted self,
are different streams and never share a reference. `latent()` advances the payload's stream by
one frame and returns the integer latent it reconstructs (a key frame's, or a P-frame's against
its reference); a P-frame whose reference this side does not hold (a lost, dropped or reordered
message, a receiver that joined mid-stream, a restarted encoder, an evicted stream) is refused
with a `missing_reference` rejection, and so is every later P-frame of that stream up to its next
key frame: no P-frame is ever applied to another reference, so no wrong image comes out.

At most `max_streams` streams are kept (least recently used go first; a stream holds its latest
latent, int64, about 6 bytes per pixel for hyperprior-mse, plus one flag per 32x32 block). Only
key frames open a stream, so P-frames of unknown streams cannot push known ones out. Thread-safe
(one lock; a payload is decoded under it, as its stream is a sequence anyway).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from imgcomp.bitstream import FRAME_KEY, Frame, FrameHeader
from imgcomp.stream.rejections import MALFORMED_PAYLOAD, MISSING_REFERENCE, Rejection
from imgcomp.temporal.stream import StreamDecoder
from imgcomp.temporal.tables import TemporalTables, load_tables

__all__ = ["DEFAULT_MAX_STREAMS", "StreamReferences"]

DEFAULT_MAX_STREAMS = 8

StreamKey = tuple[str, str, int]  # model, weights hash, stream id


def _tables_of(codec: Any) -> TemporalTables | None:
    """The codec's verified temporal tables, or None (no tables, other weights, not a Codec)."""
    try:
        tables = load_tables(codec.model_name)
    except Exception:  # noqa: BLE001 - no tables (TemporalTablesError), damaged file, a test double
        return None
    return tables if tables.model_hash == getattr(codec, "model_hash", None) else None


class StreamReferences:
    """See the module docstring."""

    def __init__(self, max_streams: int = DEFAULT_MAX_STREAMS, max_output_pixels: int | None = None) -> None:
        if isinstance(max_streams, bool) or not isinstance(max_streams, int) or max_streams < 1:
            raise ValueError(f"max_streams must be a positive int, got {max_streams!r}")
        self.max_streams = max_streams
        self.max_output_pixels = max_output_pixels
        self._lock = threading.Lock()
        self._streams: OrderedDict[StreamKey, StreamDecoder] = OrderedDict()
        self._tables: dict[tuple[str, str], TemporalTables | None] = {}
        self.decoded_key = 0
        self.decoded_predicted = 0
        self.missing_reference = 0
        self.evicted = 0

    def tables(self, codec: Any) -> TemporalTables | None:
        """The codec's temporal tables (None: it sends key frames only), looked up once."""
        key = (getattr(codec, "model_name", ""), getattr(codec, "model_hash", ""))
        with self._lock:
            if key not in self._tables:
                self._tables[key] = _tables_of(codec)
            return self._tables[key]

    @property
    def streams(self) -> int:
        with self._lock:
            return len(self._streams)

    def forget_model(self, model: str) -> None:
        """Drop the streams of `model` (its codec was unloaded)."""
        with self._lock:
            for key in [k for k in self._streams if k[0] == model]:
                del self._streams[key]

    def latent(self, codec: Any, frame: Frame) -> tuple[FrameHeader, np.ndarray] | Rejection:
        """(header, int64 latent M x h x w) of a parsed payload of `codec`, advancing its stream;
        a (not yet counted) Rejection for a P-frame without its reference or a P-frame of a
        model without temporal tables. Raises what the codec raises for a malformed payload
        (BitstreamError, ModelMismatchError, TooLargeError); the stream is then unchanged."""
        h = frame.header
        tables = self.tables(codec)
        if tables is None:
            if h.frame_type != FRAME_KEY:
                return Rejection(
                    MALFORMED_PAYLOAD,
                    f"predicted frame {h.frame_number} of model {h.model!r}, which has no temporal tables: "
                    "only key frames of this model can be decoded",
                )
            raise ValueError(f"model {h.model!r} has no temporal tables: decode its key frames with the codec")
        key = (h.model, h.model_hash, h.stream_id)
        with self._lock:
            known = key in self._streams
            # an unknown stream's P-frame still gets every check (streams, tables, reference) from a
            # decoder of its own, which is then dropped: only a decoded key frame opens a stream
            decoder = self._streams[key] if known else StreamDecoder(codec, tables, self.max_output_pixels)
            out = decoder.decode_latent(frame)
            if out is None:
                self.missing_reference += 1
                if known:
                    self._streams.move_to_end(key)
                    why = "which was not decoded (a lost or dropped message)"
                else:
                    why = (
                        "but no key frame of this stream was decoded (joined mid-stream, its key frame was lost, or the "
                        f"stream was evicted: more than {self.max_streams} streams)"
                    )
                return Rejection(
                    MISSING_REFERENCE,
                    f"predicted frame {h.frame_number} of stream {h.stream_id:08x} needs frame {h.reference_frame_number}, "
                    f"{why}; waiting for the stream's next key frame",
                )
            self._streams[key] = decoder
            self._streams.move_to_end(key)
            while len(self._streams) > self.max_streams:
                self._streams.popitem(last=False)
                self.evicted += 1
            if h.frame_type == FRAME_KEY:
                self.decoded_key += 1
            else:
                self.decoded_predicted += 1
            return out

    def catch_up(self, frames: list[tuple[Frame, Any]]) -> int:
        """Advance the streams over parsed frames nobody will look at (a worker skipped them),
        oldest first: latents only, and none before a later key frame of the same stream. A frame
        that fails is passed over (its stream then waits for a key frame, which the frames shown
        later report). Returns how many latents were decoded."""
        usable = [(frame, codec) for frame, codec in frames if self.tables(codec) is not None]
        last_key: dict[StreamKey, int] = {}
        for i, (frame, _) in enumerate(usable):
            h = frame.header
            if h.frame_type == FRAME_KEY:
                last_key[(h.model, h.model_hash, h.stream_id)] = i
        decoded = 0
        for i, (frame, codec) in enumerate(usable):
            h = frame.header
            if i < last_key.get((h.model, h.model_hash, h.stream_id), -1):
                continue
            try:
                decoded += not isinstance(self.latent(codec, frame), Rejection)
            except Exception:  # noqa: BLE001 - a bad skipped frame: its stream waits for a key frame
                continue
        return decoded

    def count_key_frame(self) -> None:
        """A key frame decoded without a reference (a model without temporal tables, a classical
        codec): counted with the others, so `keyframes_decoded` covers every model."""
        with self._lock:
            self.decoded_key += 1

    def diagnostics(self) -> dict[str, str]:
        with self._lock:
            return {
                "streams": str(len(self._streams)),
                "keyframes_decoded": str(self.decoded_key),
                "pframes_decoded": str(self.decoded_predicted),
                "missing_reference_total": str(self.missing_reference),
            }
