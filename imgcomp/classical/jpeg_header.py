"""The size a baseline JPEG declares, read from its markers without decoding.

Only what `cv2.imencode(".jpg")` writes is accepted: SOI, then table and application segments,
exactly one baseline frame header (SOF0, 8-bit, 1 or 3 components), exactly one scan, EOI at the
very end. That refuses progressive and multi-scan files (a forged progressive JPEG of many tiny
scans makes libjpeg re-walk the whole coefficient buffer once per scan), a height left to a DNL
marker, and bytes after EOI.
"""

from __future__ import annotations

import struct

from imgcomp.bitstream import BitstreamError

_SOI, _EOI, _SOS, _SOF0 = 0xD8, 0xD9, 0xDA, 0xC0
_OTHER_FRAMES = frozenset(range(0xC1, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOF1..SOF15 (not DHT, JPG, DAC)
_TABLES = frozenset({0xC4, 0xDB, 0xDD, 0xFE}) | frozenset(range(0xE0, 0xF0))  # DHT, DQT, DRI, COM, APPn


def jpeg_size(data: bytes) -> tuple[int, int, int]:
    """(height, width, components) of a baseline single-scan JPEG; BitstreamError otherwise."""
    if data[:2] != b"\xff\xd8":
        raise BitstreamError("stream is not a JPEG (no SOI marker)")
    pos, frame = 2, None
    while True:
        if pos + 4 > len(data) or data[pos] != 0xFF:
            raise BitstreamError(f"JPEG marker expected at byte {pos}")
        marker = data[pos + 1]
        (length,) = struct.unpack_from(">H", data, pos + 2)
        end = pos + 2 + length
        if length < 2 or end > len(data):
            raise BitstreamError(f"JPEG segment 0x{marker:02X} at byte {pos} runs past the end")
        if marker == _SOF0:
            if frame is not None:
                raise BitstreamError("JPEG has more than one frame header")
            frame = _frame_header(data[pos + 4 : end])
        elif marker in _OTHER_FRAMES:
            raise BitstreamError(f"JPEG frame type 0x{marker:02X} is not baseline (SOF0)")
        elif marker == _SOS:
            if frame is None:
                raise BitstreamError("JPEG scan comes before its frame header")
            _check_single_scan(data, end)
            return frame
        elif marker not in _TABLES:
            raise BitstreamError(f"unexpected JPEG marker 0x{marker:02X} at byte {pos}")
        pos = end


def _frame_header(segment: bytes) -> tuple[int, int, int]:
    if len(segment) < 6:
        raise BitstreamError("JPEG frame header is truncated")
    precision, height, width, components = struct.unpack_from(">BHHB", segment)
    if precision != 8 or components not in (1, 3) or len(segment) != 6 + 3 * components:
        raise BitstreamError(f"JPEG frame header: {precision}-bit, {components} components (expected 8-bit, 1 or 3)")
    if height == 0 or width == 0:
        raise BitstreamError("JPEG frame header declares an empty image (or a DNL-defined height)")
    return height, width, components


def _check_single_scan(data: bytes, start: int) -> None:
    """Entropy-coded data up to a final EOI, with no marker but restarts (0xFF is stuffed as FF 00)."""
    if data[-2:] != b"\xff\xd9":
        raise BitstreamError("JPEG does not end with EOI")
    pos = data.find(b"\xff", start)
    while pos != -1 and pos < len(data) - 2:
        following = data[pos + 1]
        if following != 0x00 and not 0xD0 <= following <= 0xD7 and following != 0xFF:
            raise BitstreamError(f"JPEG has marker 0x{following:02X} after its scan: only one scan is accepted")
        pos = data.find(b"\xff", pos + 1)
