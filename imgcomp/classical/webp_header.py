"""The size a lossy WebP declares, read from its RIFF and VP8 headers without decoding.

Only what `imagecodecs.webp_encode(lossless=False)` writes for an opaque image is accepted: the
simple format, one RIFF chunk 'VP8 ' holding one VP8 key frame (RFC 9649 and RFC 6386 section
9.1). Extended files (VP8X: animation, alpha, metadata) and lossless VP8L are refused, so the
decoder sees one frame of exactly the declared size.
"""

from __future__ import annotations

import struct

from imgcomp.bitstream import BitstreamError

_VP8_START_CODE = b"\x9d\x01\x2a"


def webp_size(data: bytes) -> tuple[int, int]:
    """(height, width) of a simple-format lossy WebP; BitstreamError otherwise."""
    if len(data) < 30 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise BitstreamError("stream is not a WebP file")
    (riff_size,) = struct.unpack_from("<I", data, 4)
    if riff_size + 8 != len(data):
        raise BitstreamError(f"WebP RIFF size {riff_size} does not match the {len(data)}-byte stream")
    chunk, chunk_size = data[12:16], struct.unpack_from("<I", data, 16)[0]
    if chunk != b"VP8 ":
        raise BitstreamError(f"WebP chunk {chunk!r} is not a simple lossy 'VP8 ' image")
    if 20 + chunk_size + (chunk_size & 1) != len(data):
        raise BitstreamError("WebP holds more (or less) than its one VP8 chunk")
    frame_tag = int.from_bytes(data[20:23], "little")
    if frame_tag & 1:
        raise BitstreamError("WebP's VP8 frame is not a key frame")
    if data[23:26] != _VP8_START_CODE:
        raise BitstreamError("WebP's VP8 frame has no start code")
    width_field, height_field = struct.unpack_from("<HH", data, 26)
    if width_field >> 14 or height_field >> 14:
        raise BitstreamError("WebP's VP8 frame asks for upscaling, which the encoder never writes")
    height, width = height_field & 0x3FFF, width_field & 0x3FFF
    if height == 0 or width == 0:
        raise BitstreamError("WebP declares an empty image")
    return height, width
