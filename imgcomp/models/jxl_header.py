"""The image size a JPEG XL codestream declares, read from its SizeHeader without decoding.

The fixed-rate models' feature streams are JPEG XL; a forged 27 KB stream can declare 16384x16384, so
the size is checked against what the payload's header implies before libjxl allocates anything.
Layout: ISO/IEC 18181-1, the codestream signature 0xFF 0x0A, then SizeHeader (bits LSB first).
Only bare codestreams are accepted (the encoder writes nothing else); the ISOBMFF container is not.
"""

from __future__ import annotations

from imgcomp.bitstream import BitstreamError

_SIGNATURE = b"\xff\x0a"
_RATIOS = {1: (1, 1), 2: (12, 10), 3: (4, 3), 4: (3, 2), 5: (16, 9), 6: (5, 4), 7: (2, 1)}


class _Bits:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def read(self, n: int) -> int:
        value = 0
        for i in range(n):
            byte = self.pos >> 3
            if byte >= len(self.data):
                raise BitstreamError("JPEG XL stream ends inside its size header")
            value |= ((self.data[byte] >> (self.pos & 7)) & 1) << i
            self.pos += 1
        return value

    def size_u32(self) -> int:
        return 1 + self.read((9, 13, 18, 30)[self.read(2)])


def _size_header(bits: _Bits) -> tuple[int, int]:
    small = bits.read(1)
    height = (bits.read(5) + 1) * 8 if small else bits.size_u32()
    ratio = bits.read(3)
    if ratio:
        num, den = _RATIOS[ratio]
        width = height * num // den
    else:
        width = (bits.read(5) + 1) * 8 if small else bits.size_u32()
    return height, width


def jxl_size(data: bytes) -> tuple[int, int]:
    """(height, width) declared by a bare JPEG XL codestream."""
    if data[:2] != _SIGNATURE:
        raise BitstreamError("feature stream is not a bare JPEG XL codestream")
    return _size_header(_Bits(data[2:34]))


def jxl_still_size(data: bytes) -> tuple[int, int]:
    """`jxl_size` of a codestream whose ImageMetadata declares one still image in its stored
    orientation: no animation (whose every frame the decoder would return), no preview."""
    if data[:2] != _SIGNATURE:
        raise BitstreamError("stream is not a bare JPEG XL codestream")
    bits = _Bits(data[2:96])
    size = _size_header(bits)
    if not bits.read(1) and bits.read(1):  # not all_default, extra_fields
        orientation = bits.read(3)
        if bits.read(1):  # have_intr_size
            _size_header(bits)
        have_preview, have_animation = bits.read(1), bits.read(1)
        if orientation or have_preview or have_animation:
            raise BitstreamError("JPEG XL stream is not one still image (animation, preview or orientation set)")
    return size
