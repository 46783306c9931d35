"""The size an AVIF still image declares, read from its boxes and its AV1 sequence header.

Only the layout `imagecodecs.avif_encode` (libavif) writes for one opaque image is accepted:
top-level boxes ftyp (brand 'avif', never the image-sequence brand 'avis'), meta, mdat; in meta
exactly one item, of type 'av01', stored as one extent inside mdat; exactly one 'ispe' (image
spatial extents) property. Then the AV1 data of that extent is walked OBU by OBU and every
sequence header's maximum frame size must equal the 'ispe' size: the AV1 decoder allocates
from the sequence header, not from the box, so a small file that declares 64x48 in its box and
16384x16384 in its sequence header is refused here (AV1 spec, section 5.5; ISO/IEC 23008-12).
"""

from __future__ import annotations

import struct

from imgcomp.bitstream import BitstreamError

_OBU_SEQUENCE_HEADER = 1
_META_CHILDREN = {b"hdlr", b"pitm", b"iloc", b"iinf", b"iprp"}


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of the boxes in data[start:end]."""
    out, pos = [], start
    while pos < end:
        if pos + 8 > end:
            raise BitstreamError("AVIF box header is truncated")
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                raise BitstreamError("AVIF box header is truncated")
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise BitstreamError(f"AVIF box {kind!r} at byte {pos} runs past its parent")
        out.append((kind, pos + header, pos + size))
        pos += size
    return out


def _unique(boxes: list[tuple[bytes, int, int]], where: str) -> dict[bytes, tuple[int, int]]:
    found: dict[bytes, tuple[int, int]] = {}
    for kind, start, end in boxes:
        if kind in found:
            raise BitstreamError(f"AVIF {where} holds two {kind.decode('latin-1')!r} boxes")
        found[kind] = (start, end)
    return found


def avif_size(data: bytes) -> tuple[int, int]:
    """(height, width) of a single-item AVIF still image; BitstreamError otherwise."""
    try:
        return _avif_size(data)
    except (IndexError, struct.error):
        raise BitstreamError("AVIF boxes are truncated") from None


def _avif_size(data: bytes) -> tuple[int, int]:
    top = _boxes(data, 0, len(data))
    if [kind for kind, _, _ in top] != [b"ftyp", b"meta", b"mdat"]:
        raise BitstreamError("stream is not an AVIF still image (boxes ftyp, meta, mdat)")
    (_, f0, f1), (_, m0, m1), (_, d0, d1) = top
    brands = [data[i : i + 4] for i in range(f0, f1 - 3, 4) if i != f0 + 4]  # major, then compatible
    if f1 - f0 < 8 or brands[0] != b"avif" or b"avis" in brands:
        raise BitstreamError("AVIF file type is not a still image ('avif' brand, no 'avis')")
    meta = _unique(_boxes(data, m0 + 4, m1), "meta")  # meta is a full box: skip version and flags
    if set(meta) != _META_CHILDREN:
        raise BitstreamError(f"AVIF meta holds {sorted(k.decode('latin-1') for k in meta)}, expected one plain image item")
    item_id = _single_av01_item(data, *meta[b"iinf"])
    if _primary_item(data, *meta[b"pitm"]) != item_id:
        raise BitstreamError("AVIF primary item is not its one image item")
    start, length = _single_extent(data, *meta[b"iloc"], item_id)
    if start < d0 or start + length > d1 or length == 0:
        raise BitstreamError("AVIF image data lies outside the mdat box")
    height, width = _ispe(data, *meta[b"iprp"])
    for seq_height, seq_width in _sequence_header_sizes(data[start : start + length]):
        if (seq_height, seq_width) != (height, width):
            raise BitstreamError(
                f"AVIF declares {width}x{height} but its AV1 sequence header allows {seq_width}x{seq_height}"
            )
    return height, width


def _single_av01_item(data: bytes, start: int, end: int) -> int:
    version = data[start]
    count_size = 2 if version == 0 else 4
    count = int.from_bytes(data[start + 4 : start + 4 + count_size], "big")
    entries = _boxes(data, start + 4 + count_size, end)
    if count != 1 or len(entries) != 1 or entries[0][0] != b"infe":
        raise BitstreamError("AVIF must hold exactly one item")
    _, e0, e1 = entries[0]
    if data[e0] not in (2, 3) or e1 - e0 < 12:
        raise BitstreamError("AVIF item entry has an unknown version")
    id_size = 2 if data[e0] == 2 else 4
    item_id = int.from_bytes(data[e0 + 4 : e0 + 4 + id_size], "big")
    item_type = data[e0 + 6 + id_size : e0 + 10 + id_size]
    if item_type != b"av01":
        raise BitstreamError(f"AVIF item type {item_type!r} is not a plain AV1 image ('av01')")
    return item_id


def _primary_item(data: bytes, start: int, end: int) -> int:
    return int.from_bytes(data[start + 4 : end], "big") if end - start in (6, 8) else -1


def _single_extent(data: bytes, start: int, end: int, item_id: int) -> tuple[int, int]:
    """(file offset, length) of the item's data: one extent, stored in the file itself."""
    version = data[start]
    if version > 2 or end - start < 8:
        raise BitstreamError("AVIF item locations have an unknown version")
    offset_size, length_size = data[start + 4] >> 4, data[start + 4] & 15
    base_size, index_size = data[start + 5] >> 4, (data[start + 5] & 15 if version else 0)
    pos = start + 6
    fields: list[int] = []
    for size in [4 if version == 2 else 2, 4 if version == 2 else 2, 2 if version else 0, 2, base_size, 2,
                 index_size, offset_size, length_size]:
        if size not in (0, 2, 4, 8) or pos + size > end:
            raise BitstreamError("AVIF item locations are malformed")
        fields.append(int.from_bytes(data[pos : pos + size], "big") if size else 0)
        pos += size
    count, loc_id, method, reference, base, extents, _, offset, length = fields
    if pos != end or count != 1 or loc_id != item_id or method & 15 or reference or extents != 1:
        raise BitstreamError("AVIF item must be one extent of the file itself")
    return base + offset, length


def _ispe(data: bytes, start: int, end: int) -> tuple[int, int]:
    iprp = _unique(_boxes(data, start, end), "iprp")
    if b"ipco" not in iprp:
        raise BitstreamError("AVIF has no item properties")
    extents = [(s, e) for kind, s, e in _boxes(data, *iprp[b"ipco"]) if kind == b"ispe"]
    if len(extents) != 1 or extents[0][1] - extents[0][0] != 12:
        raise BitstreamError("AVIF must declare its size exactly once ('ispe')")
    width, height = struct.unpack_from(">II", data, extents[0][0] + 4)
    if height == 0 or width == 0:
        raise BitstreamError("AVIF declares an empty image")
    return height, width


class _Bits:
    """AV1's f(n): most significant bit first."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def f(self, n: int) -> int:
        value = 0
        for _ in range(n):
            byte = self.pos >> 3
            if byte >= len(self.data):
                raise BitstreamError("AV1 sequence header is truncated")
            value = (value << 1) | ((self.data[byte] >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return value

    def uvlc(self) -> int:
        zeros = 0
        while not self.f(1):
            zeros += 1
            if zeros >= 32:
                return (1 << 32) - 1
        return self.f(zeros) + (1 << zeros) - 1


def _leb128(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for i in range(8):
        if pos + i >= len(data):
            raise BitstreamError("AV1 OBU size is truncated")
        value |= (data[pos + i] & 0x7F) << (7 * i)
        if not data[pos + i] & 0x80:
            return value, pos + i + 1
    raise BitstreamError("AV1 OBU size is longer than 8 bytes")


def _sequence_header_sizes(av1: bytes) -> list[tuple[int, int]]:
    """(max height, max width) of every sequence header OBU; at least one must be present."""
    sizes, pos = [], 0
    while pos < len(av1):
        header = av1[pos]
        if header & 0x80:
            raise BitstreamError("AV1 OBU has its forbidden bit set")
        kind, extension, has_size = (header >> 3) & 15, (header >> 2) & 1, (header >> 1) & 1
        pos += 1 + extension
        size, pos = _leb128(av1, pos) if has_size else (len(av1) - pos, pos)
        if pos + size > len(av1):
            raise BitstreamError("AV1 OBU runs past the image data")
        if kind == _OBU_SEQUENCE_HEADER:
            sizes.append(_max_frame_size(av1[pos : pos + size]))
        pos += size
    if not sizes:
        raise BitstreamError("AVIF image data has no AV1 sequence header")
    return sizes


def _max_frame_size(payload: bytes) -> tuple[int, int]:
    bits = _Bits(payload)
    bits.f(3)  # seq_profile
    bits.f(1)  # still_picture
    if bits.f(1):  # reduced_still_picture_header
        bits.f(5)  # seq_level_idx
    else:
        decoder_model = False
        buffer_delay_bits = 0
        if bits.f(1):  # timing_info_present_flag
            bits.f(32), bits.f(32)  # num_units_in_display_tick, time_scale
            if bits.f(1):  # equal_picture_interval
                bits.uvlc()
            decoder_model = bool(bits.f(1))
            if decoder_model:
                buffer_delay_bits = bits.f(5) + 1
                bits.f(32), bits.f(5), bits.f(5)
        display_delay = bits.f(1)
        for _ in range(bits.f(5) + 1):  # operating points
            bits.f(12)  # operating_point_idc
            if bits.f(5) > 7:  # seq_level_idx
                bits.f(1)  # seq_tier
            if decoder_model and bits.f(1):
                bits.f(buffer_delay_bits), bits.f(buffer_delay_bits), bits.f(1)
            if display_delay and bits.f(1):
                bits.f(4)
    width_bits, height_bits = bits.f(4) + 1, bits.f(4) + 1
    width = bits.f(width_bits) + 1
    height = bits.f(height_bits) + 1
    return height, width
