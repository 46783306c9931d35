"""`StreamEncoder` / `StreamDecoder`: latent P-frames for one camera stream, one frame of latency.

Each call to `StreamEncoder.encode` returns the payload of that frame right away (no reordering,
no look-ahead). A frame is a key frame (the intra codec's payload, `FRAME_KEY`) or a P-frame
(`FRAME_PREDICTED`) whose latent is coded against the decoded latent of the previous frame.

Key frames are sent: on the first frame; every `keyframe_interval` frames (0 = intra only, 1 =
every frame); when the quality level, the image size or the source encoding changes; on request
(`request_keyframe`, e.g. after a receiver reported loss); and on a scene change, i.e. when the
P-frame's rate-distortion cost (bits + lambda * distortion) would exceed a key frame's (its bits
estimated by the previous key frame of that level, its distortion computed exactly).

A P-frame names its reference by frame number and by the encoder's *stream id* (random, new
whenever an encoder is created or `restart`ed), and the tables it was coded with (the first 8
bytes of its one stream; the rANS string follows). `StreamDecoder` applies a P-frame only to exactly that reference; otherwise it drops the
frame (`missing_reference`) and every later P-frame until the next key frame, so a lost or
reordered message never produces a wrong image.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch

from imgcomp.bitstream import FRAME_KEY, FRAME_PREDICTED, BitstreamError, Frame, FrameHeader, pack
from imgcomp.codec import Codec
from imgcomp.temporal.pcoding import History, decode_pframe, encode_pframe
from imgcomp.temporal.tables import TemporalTables, load_tables

P_STREAMS = 1  # the 8-byte tables id, then the rANS string (flags and residuals)
TABLES_ID_BYTES = 8
MAX_EVENTS = 100  # drop descriptions kept by a StreamDecoder (a long-running decoder must not grow)


def new_stream_id() -> int:
    return int.from_bytes(os.urandom(4), "big")


def rd_lambda(codec: Codec, quality: int, multiplier: float = 1.0) -> float:
    """Bits per unit of pixel SSE (0..1 units, summed over RGB) at `quality`: the model's training
    trade-off lambda * 255^2 * MSE + bpp, multiplied out by the pixel count."""
    lambdas = tuple(getattr(codec.net.arch, "lambdas", ()))
    lam = lambdas[quality - 1] if len(lambdas) >= quality else 0.01
    return multiplier * lam * 255.0**2 / 3.0


@dataclass
class EncodedFrame:
    payload: bytes
    keyframe: bool
    reason: str  # "first", "interval", "level", "size", "request", "scene", "intra" or "" (P-frame)
    y_hat: np.ndarray  # int64 (M, H, W): the latent every decoder will hold after this frame
    coded: int = 0  # P-frames: residual elements coded
    frame_number: int = 0  # this frame's number in its stream (the header's)
    reference: int = 0  # the frame number of its reference (its own for a key frame)
    quality: int = 0  # the level it was coded at


@dataclass
class _Reference:
    stream_id: int
    frame_number: int
    quality: int
    height: int
    width: int
    channels: int
    encoding: str
    y_hat: np.ndarray
    history: History | None  # the P-frame contexts' memory (None after a key frame)


class StreamEncoder:
    """Stateful encoder of one stream. Not thread-safe (one stream, one caller)."""

    def __init__(
        self,
        codec: Codec,
        keyframe_interval: int = 10,
        tables: TemporalTables | None = None,
        rd: bool = True,
        rd_multiplier: float = 0.5,
        scene_change: bool = True,
        stream_id: int | None = None,
    ) -> None:
        self.codec = codec
        self.tables = tables if tables is not None else load_tables(codec.model_name)
        if self.tables.model_hash != codec.model_hash:
            raise ValueError(f"temporal tables are for weights {self.tables.model_hash}, the codec has {codec.model_hash}")
        self.set_keyframe_interval(keyframe_interval)
        self.rd, self.rd_multiplier, self.scene_change = rd, rd_multiplier, scene_change
        self.restart(stream_id)

    def restart(self, stream_id: int | None = None) -> None:
        """Forget the reference and take a new stream id: the next frame is a key frame that no
        decoder can confuse with the old stream."""
        self.stream_id = new_stream_id() if stream_id is None else int(stream_id) & 0xFFFFFFFF
        self.frame_number = 0
        self._ref: _Reference | None = None
        self._since_key = 0
        self._key_bits: dict[int, int] = {}
        self._request = False

    def set_keyframe_interval(self, keyframe_interval: int) -> None:
        """Frames from one key frame to the next (0 = intra only); takes effect with the next frame
        (a group already longer than the new interval ends there)."""
        if isinstance(keyframe_interval, bool) or not isinstance(keyframe_interval, int) or keyframe_interval < 0:
            raise ValueError(f"keyframe_interval must be an integer >= 0, got {keyframe_interval!r}")
        self.keyframe_interval = keyframe_interval

    def request_keyframe(self) -> None:
        self._request = True

    @property
    def reference_quality(self) -> int | None:
        """The level of the frame the next P-frame would predict from (None before the first)."""
        return None if self._ref is None else self._ref.quality

    def keyframe_due(self) -> bool:
        """Whether the next frame is a key frame whatever its level and size: the first frame,
        intra mode, a request or the interval (a level or size change, or a scene change, makes
        one too)."""
        return self._key_reason(self._ref.quality if self._ref else 0, *self._ref_shape()) != ""

    def _ref_shape(self) -> tuple[int, int, int, str]:
        ref = self._ref
        return (0, 0, 0, "") if ref is None else (ref.height, ref.width, ref.channels, ref.encoding)

    def _key_reason(self, quality: int, height: int, width: int, channels: int, encoding: str) -> str:
        ref = self._ref
        if self.keyframe_interval == 0:
            return "intra"
        if ref is None:
            return "first"
        if self._request:
            return "request"
        if self._since_key >= self.keyframe_interval:
            return "interval"
        if quality != ref.quality:
            return "level"
        if (height, width, channels, encoding) != (ref.height, ref.width, ref.channels, ref.encoding):
            return "size"
        return ""

    def _header(self, frame_type: int, quality: int, h: int, w: int, channels: int, encoding: str,
                shape: tuple[int, int], reference: int) -> FrameHeader:
        c = self.codec
        return FrameHeader(c.model_name, c.model_hash, h, w, channels, encoding, quality, frame_type,
                           self.frame_number, reference, shape, self.stream_id)

    @torch.no_grad()
    def encode(self, image: np.ndarray, quality: int | None = None, encoding: str | None = None) -> EncodedFrame:
        a = self.codec.analyse_image(image, quality, encoding)
        return self.encode_analysed(a.y, a.z, a.quality, a.height, a.width, a.channels, a.encoding)

    def encode_analysed(self, y, z, level: int, height: int, width: int, channels: int, encoding: str) -> EncodedFrame:
        """`encode` from the analysis output (y, z) of the padded image at `level`."""
        reason = self._key_reason(level, height, width, channels, encoding)
        if not reason:
            out = self._encode_p(y, level, height, width, channels, encoding)
            if out is not None:
                return out
            reason = "scene"
        return self._encode_key(y, z, level, height, width, channels, encoding, reason)

    def _encode_key(self, y, z, level, height, width, channels, encoding, reason) -> EncodedFrame:
        out = self.codec.compress_analysed(y, z)
        streams = tuple(s[0] for s in out["strings"])
        header = self._header(FRAME_KEY, level, height, width, channels, encoding,
                              tuple(int(v) for v in out["shape"]), self.frame_number)
        payload = pack(Frame(header, streams))
        y_hat = out["y_hat"][0].detach().cpu().to(torch.float64).numpy().astype(np.int64)
        self._ref = _Reference(self.stream_id, self.frame_number, level, height, width, channels, encoding, y_hat, None)
        self._key_bits[level] = 8 * len(payload)
        self._since_key = 1
        self._request = False
        number = self.frame_number
        self.frame_number = (self.frame_number + 1) & 0xFFFFFFFF
        return EncodedFrame(payload, True, reason, y_hat, 0, number, number, level)

    def _encode_p(self, y, level, height, width, channels, encoding) -> EncodedFrame | None:
        ref = self._ref
        lt = self.tables.level(level)
        y_np = y[0].detach().cpu().to(torch.float64).numpy()
        lam = rd_lambda(self.codec, level, self.rd_multiplier)
        p = encode_pframe(y_np, ref.y_hat, ref.history, lt, lam, self.rd)
        latent_shape = self.codec.expected_latent_shape(height, width)
        header = self._header(FRAME_PREDICTED, level, height, width, channels, encoding, latent_shape, ref.frame_number)
        payload = pack(Frame(header, (self.tables.tables_id + p.string,)))
        if self.scene_change and level in self._key_bits:
            key_distortion = float(((lam * lt.weights)[:, None, None] * (y_np - np.round(y_np)) ** 2).sum())
            if self._key_bits[level] + key_distortion < 8 * len(payload) + p.distortion:
                return None
        self._ref = _Reference(self.stream_id, self.frame_number, level, height, width, channels, encoding, p.y_hat, p.history)
        self._since_key += 1
        number = self.frame_number
        self.frame_number = (self.frame_number + 1) & 0xFFFFFFFF
        return EncodedFrame(payload, False, "", p.y_hat, p.coded, number, ref.frame_number, level)


@dataclass
class DecoderStats:
    decoded_key: int = 0
    decoded_predicted: int = 0
    missing_reference: int = 0  # P-frames dropped: their reference was never decoded (loss, restart, reorder)
    errors: int = 0  # payloads that raised BitstreamError
    events: deque[str] = field(default_factory=lambda: deque(maxlen=MAX_EVENTS))  # the latest drops, for logs


class StreamDecoder:
    """Stateful decoder of one stream: key frames always decode; a P-frame decodes only against
    the exact reference it names (stream id and frame number), else it is dropped (None)."""

    def __init__(self, codec: Codec, tables: TemporalTables | None = None, max_output_pixels: int | None = None) -> None:
        self.codec = codec
        self._tables = tables
        self.max_output_pixels = max_output_pixels
        self.stats = DecoderStats()
        self._ref: _Reference | None = None

    @property
    def tables(self) -> TemporalTables:
        if self._tables is None:
            self._tables = load_tables(self.codec.model_name)
        return self._tables

    def reset(self) -> None:
        self._ref = None

    def decode_latent(self, data: bytes) -> tuple[FrameHeader, np.ndarray] | None:
        """Advance the stream by one payload: (header, int latent), or None when the frame is
        dropped for want of its reference. Raises BitstreamError for a malformed payload (the
        stream state is then unchanged)."""
        try:
            frame = self.codec.parse(data, self.max_output_pixels, predicted_ok=True)
            h = frame.header
            if h.frame_type == FRAME_KEY:
                y_hat = self.codec.decode_y_hat(frame)[0].to(torch.float64).cpu().numpy().astype(np.int64)
                self._ref = _Reference(h.stream_id, h.frame_number, h.quality, h.height, h.width, h.channels, h.encoding, y_hat, None)
                self.stats.decoded_key += 1
                return h, y_hat
            return self._decode_p(frame)
        except BitstreamError:
            self.stats.errors += 1
            raise

    def _decode_p(self, frame: Frame) -> tuple[FrameHeader, np.ndarray] | None:
        h = frame.header
        if len(frame.streams) != P_STREAMS:
            raise BitstreamError(f"a predicted frame has {P_STREAMS} streams, got {len(frame.streams)}")
        tables_id = frame.streams[0][:TABLES_ID_BYTES]
        if tables_id != self.tables.tables_id:
            raise BitstreamError(
                f"predicted frame coded with temporal tables {tables_id.hex()}, this decoder has {self.tables.tables_id.hex()}"
            )
        if h.frame_number == h.reference_frame_number:
            raise BitstreamError(f"predicted frame {h.frame_number} names itself as its reference")
        ref = self._ref
        if ref is None or ref.stream_id != h.stream_id or ref.frame_number != h.reference_frame_number:
            self.stats.missing_reference += 1
            have = "none" if ref is None else f"frame {ref.frame_number} of stream {ref.stream_id:08x}"
            self.stats.events.append(
                f"dropped frame {h.frame_number} of stream {h.stream_id:08x}: needs frame {h.reference_frame_number}, have {have}"
            )
            return None
        if (h.quality, h.height, h.width, h.channels, h.encoding) != (ref.quality, ref.height, ref.width, ref.channels, ref.encoding):
            raise BitstreamError(
                f"predicted frame {h.frame_number} (quality {h.quality}, {h.width}x{h.height}, {h.encoding}) does not match "
                f"its reference (quality {ref.quality}, {ref.width}x{ref.height}, {ref.encoding})"
            )
        y_hat, history = decode_pframe(frame.streams[0][TABLES_ID_BYTES:], ref.y_hat, ref.history, self.tables.level(h.quality))
        self._ref = _Reference(h.stream_id, h.frame_number, h.quality, h.height, h.width, h.channels, h.encoding, y_hat, history)
        self.stats.decoded_predicted += 1
        return h, y_hat

    @torch.no_grad()
    def decode(self, data: bytes) -> np.ndarray | None:
        """Payload -> uint8 image (like `Codec.decode`), or None when the frame is dropped."""
        out = self.decode_latent(data)
        if out is None:
            return None
        return synthesise(self.codec, out[1], out[0])


def synthesise(codec: Codec, y_hat: np.ndarray, h: FrameHeader) -> np.ndarray:
    """Integer latent (M, H, W) -> uint8 image, exactly as `Codec.decode` renders it."""
    return codec.render(codec.latent_tensor(y_hat), h)
