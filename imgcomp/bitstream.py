"""The imgcomp bitstream container: versioned, self-describing, checksummed.

Layout (all integers big-endian)::

    magic      4 bytes  b"IMGC"
    version    u8       FORMAT_VERSION
    header_len u16      length of the header block that follows
    header:
      model name      u8 length + UTF-8
      weights hash    8 bytes (the first 16 hex digits of the weights' sha256)
      height, width   u32, u32   source image size
      channels        u8         1 (mono) or 3 (colour) at the codec input
      encoding        u8 length + ASCII (sensor_msgs/Image encoding of the source)
      quality         u8         quality level, 1 = fewest bits
      frame_type      u8         0 = key frame; 1 = predicted (imgcomp.temporal: needs a StreamDecoder)
      frame_number    u32        frame counter of the stream
      reference       u32        frame_number of the reference frame (== frame_number for key frames)
      stream id       u32        (version 3) changes whenever an encoder restarts; a predicted frame
                                 applies only to a reference of the same stream id
      latent h, w     u16, u16   spatial shape handed to the entropy decoder
      n_streams       u8
      stream lengths  u32 each
    streams    concatenated entropy-coded strings
    crc32      u32 over everything before it

The CRC catches accidental damage only: a sender can recompute it. What keeps forged strings
from doing harm is `imgcomp.models.entropy_coding` (every decode provably inside its input) and
the size limits checked from this header before anything is allocated. Any deviation (truncation, extra bytes, flipped bits, unknown version) raises
`BitstreamError` with a message that says what is wrong.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

MAGIC = b"IMGC"
FORMAT_VERSION = 3  # 3: stream id (temporal mode); 2: closed rANS tables (imgcomp.models.entropy_coding); 1 could carry escapes
FRAME_KEY = 0
FRAME_PREDICTED = 1
MAX_SIDE = 16384
MAX_PIXELS = 8192 * 8192
_PREFIX = struct.Struct(">4sBH")
_CRC = struct.Struct(">I")


class BitstreamError(ValueError):
    """The payload is not a valid imgcomp bitstream."""


class TooLargeError(BitstreamError):
    """The payload claims an image larger than the decoder accepts (`max_output_pixels`)."""


def check_output_size(height: int, width: int, max_output_pixels: int) -> None:
    """Raise TooLargeError when a claimed image has more pixels than `max_output_pixels`."""
    if height * width > max_output_pixels:
        raise TooLargeError(
            f"payload claims a {width}x{height} image ({height * width} px), more than max_output_pixels={max_output_pixels}"
        )


class ModelMismatchError(BitstreamError):
    """The payload was made by other weights than the decoder's."""

    def __init__(self, stream_model: str, stream_hash: str, decoder_model: str, decoder_hash: str) -> None:
        super().__init__(
            f"payload was encoded with model {stream_model!r} weights {stream_hash}, "
            f"but this decoder has {decoder_model!r} weights {decoder_hash}"
        )
        self.stream_hash, self.decoder_hash = stream_hash, decoder_hash


@dataclass(frozen=True)
class FrameHeader:
    model: str
    model_hash: str  # 16 lowercase hex digits
    height: int
    width: int
    channels: int
    encoding: str
    quality: int
    frame_type: int
    frame_number: int
    reference_frame_number: int
    latent_shape: tuple[int, int]
    stream_id: int = 0  # u32; see imgcomp.temporal


@dataclass(frozen=True)
class Frame:
    header: FrameHeader
    streams: tuple[bytes, ...]


def validate_image_size(height: int, width: int) -> None:
    if height <= 0 or width <= 0:
        raise BitstreamError(f"image size {width}x{height} is empty")
    if height > MAX_SIDE or width > MAX_SIDE or height * width > MAX_PIXELS:
        raise BitstreamError(f"image size {width}x{height} exceeds the limit ({MAX_SIDE} px a side, {MAX_PIXELS} px)")


def _short_string(value: str, what: str, encoding: str) -> bytes:
    raw = value.encode(encoding)
    if len(raw) > 255:
        raise BitstreamError(f"{what} is longer than 255 bytes")
    return bytes([len(raw)]) + raw


def pack(frame: Frame) -> bytes:
    h = frame.header
    validate_image_size(h.height, h.width)
    if h.channels not in (1, 3):
        raise BitstreamError(f"channels must be 1 or 3, got {h.channels}")
    return pack_fields(frame)


def pack_fields(frame: Frame) -> bytes:
    """`pack` without the value checks (field widths still apply): what a forger can send, for
    the fuzzer and the tests that must get such payloads past the encoder side."""
    h = frame.header
    try:
        hash_bytes = bytes.fromhex(h.model_hash)
    except ValueError:
        raise BitstreamError(f"model hash {h.model_hash!r} is not hex") from None
    if len(hash_bytes) != 8:
        raise BitstreamError(f"model hash must be 16 hex digits, got {h.model_hash!r}")
    header = b"".join(
        [
            _short_string(h.model, "model name", "utf-8"),
            hash_bytes,
            struct.pack(">IIB", h.height, h.width, h.channels),
            _short_string(h.encoding, "encoding", "ascii"),
            struct.pack(">BBII", h.quality, h.frame_type, h.frame_number & 0xFFFFFFFF, h.reference_frame_number & 0xFFFFFFFF),
            struct.pack(">I", h.stream_id & 0xFFFFFFFF),
            struct.pack(">HHB", *h.latent_shape, len(frame.streams)),
            b"".join(struct.pack(">I", len(s)) for s in frame.streams),
        ]
    )
    body = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header)) + header + b"".join(frame.streams)
    return body + _CRC.pack(zlib.crc32(body))


class _Reader:
    def __init__(self, data: bytes, start: int, end: int) -> None:
        self.data, self.pos, self.end = data, start, end

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > self.end:
            raise BitstreamError(f"header truncated while reading {what}")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str, what: str) -> tuple:
        s = struct.Struct(fmt)
        return s.unpack(self.take(s.size, what))

    def short_string(self, what: str, encoding: str) -> str:
        (n,) = self.unpack(">B", what)
        try:
            return self.take(n, what).decode(encoding)
        except UnicodeDecodeError:
            raise BitstreamError(f"{what} is not valid {encoding}") from None


def unpack(data: bytes | bytearray | memoryview) -> Frame:
    """Parse and verify a payload. Raises BitstreamError on anything malformed."""
    data = bytes(data)
    if len(data) == 0:
        raise BitstreamError("payload is empty")
    if len(data) < _PREFIX.size + _CRC.size:
        raise BitstreamError(f"payload of {len(data)} bytes is too short for an imgcomp bitstream")
    magic, version, header_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise BitstreamError(f"not an imgcomp bitstream (magic {magic!r}, expected {MAGIC!r})")
    if version != FORMAT_VERSION:
        raise BitstreamError(f"unsupported bitstream version {version} (this build reads {FORMAT_VERSION})")
    body_end = len(data) - _CRC.size
    (stored_crc,) = _CRC.unpack_from(data, body_end)
    if zlib.crc32(data[:body_end]) != stored_crc:
        raise BitstreamError("checksum mismatch: payload is truncated or corrupted")
    header_end = _PREFIX.size + header_len
    if header_end > body_end:
        raise BitstreamError("header length runs past the end of the payload")
    r = _Reader(data, _PREFIX.size, header_end)
    model = r.short_string("model name", "utf-8")
    model_hash = r.take(8, "weights hash").hex()
    height, width, channels = r.unpack(">IIB", "image size")
    encoding = r.short_string("encoding", "ascii")
    quality, frame_type, frame_number, reference = r.unpack(">BBII", "frame fields")
    (stream_id,) = r.unpack(">I", "stream id")
    latent_h, latent_w, n_streams = r.unpack(">HHB", "latent shape")
    lengths = [r.unpack(">I", "stream length")[0] for _ in range(n_streams)]
    if r.pos != header_end:
        raise BitstreamError(f"header has {header_end - r.pos} unexpected trailing bytes")
    validate_image_size(height, width)
    if channels not in (1, 3):
        raise BitstreamError(f"channels must be 1 or 3, got {channels}")
    if frame_type not in (FRAME_KEY, FRAME_PREDICTED):
        raise BitstreamError(f"unknown frame type {frame_type}")
    if sum(lengths) != body_end - header_end:
        raise BitstreamError(f"stream lengths add up to {sum(lengths)} bytes but {body_end - header_end} follow the header")
    streams, pos = [], header_end
    for n in lengths:
        streams.append(data[pos : pos + n])
        pos += n
    header = FrameHeader(
        model, model_hash, height, width, channels, encoding, quality, frame_type, frame_number, reference, (latent_h, latent_w),
        stream_id,
    )
    return Frame(header, tuple(streams))
