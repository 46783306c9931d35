"""The image size a JPEG XL codestream declares, read from its SizeHeader without decoding.

The study models' feature streams are JPEG XL; a forged 27 KB stream can declare 16384x16384, so
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


def jxl_size(data: bytes) -> tuple[int, int]:
    """(height, width) declared by a bare JPEG XL codestream."""
    if data[:2] != _SIGNATURE:
        raise BitstreamError("feature stream is not a bare JPEG XL codestream")
    bits = _Bits(data[2:34])
    small = bits.read(1)
    height = (bits.read(5) + 1) * 8 if small else bits.size_u32()
    ratio = bits.read(3)
    if ratio:
        num, den = _RATIOS[ratio]
        width = height * num // den
    else:
        width = (bits.read(5) + 1) * 8 if small else bits.size_u32()
    return height, width
