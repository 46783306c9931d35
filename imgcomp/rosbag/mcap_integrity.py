"""MCAP chunk and summary CRCs, read and written from the MCAP spec's record layout.

rosbags checks a chunk's CRC while it reads the chunk, but writes every chunk with CRC 0
("not computed"), so damage in a bag it wrote goes unnoticed. Here:

* `verify(path)` walks an MCAP file's records before anything is converted: a truncated
  file, a record running past the end, a chunk whose CRC (or decompressed size) does not
  match and a summary section whose CRC does not match all raise `McapDamage`, naming every
  damaged chunk; chunks without a CRC are counted, since damage in them cannot be seen.
* `add_crcs(path)` fills in the CRCs of a file that was written without them (our own
  output, right after rosbags closed it), so that every bag imgcomp writes can be checked.

Layout (https://mcap.dev/spec): magic, then records of opcode (uint8), length (uint64) and
body; a chunk body is message start and end time, uncompressed size (uint64 each), the CRC32
of the uncompressed records (uint32), compression (uint32-prefixed string), records length
(uint64) and the records; the footer body is summary start, summary offset start (uint64
each) and the CRC32 of everything from the summary start up to the footer's CRC field.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["McapCheck", "McapDamage", "add_crcs", "verify"]

MAGIC = b"\x89MCAP0\r\n"
_OP_FOOTER, _OP_CHUNK = 0x02, 0x06
_HEAD = struct.Struct("<BQ")  # opcode, body length
_CHUNK_HEAD = struct.Struct("<QQQII")  # start, end, uncompressed size, CRC, compression length
_FOOTER = struct.Struct("<QQI")  # summary start, summary offset start, summary CRC
_CRC_AT = _HEAD.size + 24  # a chunk's CRC field, from the record's opcode byte
_SUMMARY_CRC_AT = _HEAD.size + 16  # the footer's CRC field, from its opcode byte
_MAX_CHUNK = 2**30  # no real recorder writes 1 GiB chunks; a larger size is damage, not data
_BLOCK = 4 << 20


class McapDamage(ValueError):
    """An MCAP file that is truncated or fails a CRC; the message is one line."""


@dataclass(frozen=True)
class _Chunk:
    index: int
    offset: int  # of its opcode byte
    uncompressed_size: int
    crc: int
    compression: str
    data_offset: int
    data_size: int


@dataclass(frozen=True)
class _Layout:
    chunks: list[_Chunk]
    footer_offset: int
    summary_start: int
    summary_crc: int


@dataclass(frozen=True)
class McapCheck:
    chunks: int
    without_crc: int  # chunks whose CRC field is 0: not verifiable


def _read_at(f: BinaryIO, offset: int, size: int) -> bytes:
    f.seek(offset)
    return f.read(size)


def _chunk(f: BinaryIO, index: int, offset: int, end: int) -> _Chunk:
    body = offset + _HEAD.size
    head = _read_at(f, body, _CHUNK_HEAD.size)
    if len(head) < _CHUNK_HEAD.size or body + _CHUNK_HEAD.size > end:
        raise McapDamage(f"damaged: chunk {index} at byte {offset:,} is cut short")
    _, _, size, crc, name_len = _CHUNK_HEAD.unpack(head)
    name_at = body + _CHUNK_HEAD.size
    if name_at + name_len + 8 > end:
        raise McapDamage(f"damaged: chunk {index} at byte {offset:,} has a malformed header")
    name = _read_at(f, name_at, name_len)
    (data_size,) = struct.unpack("<Q", _read_at(f, name_at + name_len, 8))
    data_offset = name_at + name_len + 8
    if data_offset + data_size > end:
        raise McapDamage(f"damaged: chunk {index} at byte {offset:,} claims more data than its record holds")
    return _Chunk(index, offset, size, crc, name.decode("utf-8", "replace"), data_offset, data_size)


def _layout(f: BinaryIO, size: int) -> _Layout:
    """Every chunk and the footer, walking the records from the start (a truncated file or a
    damaged length shows as a record that does not fit)."""
    if _read_at(f, 0, len(MAGIC)) != MAGIC:
        raise McapDamage("not an MCAP file (no MCAP magic at the start)")
    if size < 2 * len(MAGIC) + _HEAD.size or _read_at(f, size - len(MAGIC), len(MAGIC)) != MAGIC:
        raise McapDamage(
            f"truncated: no MCAP end magic in its {size:,} bytes (a copy or recording that never finished?)"
        )
    chunks: list[_Chunk] = []
    offset = len(MAGIC)
    while True:
        head = _read_at(f, offset, _HEAD.size)
        if len(head) < _HEAD.size:
            raise McapDamage(f"truncated: a record at byte {offset:,} runs past the end")
        opcode, length = _HEAD.unpack(head)
        end = offset + _HEAD.size + length
        if end > size - len(MAGIC):
            raise McapDamage(f"damaged or truncated: the record at byte {offset:,} runs past the end of the file")
        if opcode == _OP_CHUNK:
            chunks.append(_chunk(f, len(chunks) + 1, offset, end))
        elif opcode == _OP_FOOTER:
            if length < _FOOTER.size or end != size - len(MAGIC):
                raise McapDamage(f"damaged: malformed footer at byte {offset:,}")
            summary_start, _, summary_crc = _FOOTER.unpack(_read_at(f, offset + _HEAD.size, _FOOTER.size))
            if summary_start > offset:
                raise McapDamage(f"damaged: the footer points past itself ({summary_start:,} > {offset:,})")
            return _Layout(chunks, offset, summary_start, summary_crc)
        offset = end


def _crc_of_range(f: BinaryIO, start: int, stop: int) -> int:
    f.seek(start)
    crc = 0
    while start < stop:
        block = f.read(min(_BLOCK, stop - start))
        if not block:
            break
        crc = zlib.crc32(block, crc)
        start += len(block)
    return crc


def _chunk_crc(f: BinaryIO, chunk: _Chunk) -> int | None:
    """CRC32 of the chunk's uncompressed records; None if they do not decompress to the
    size the chunk states."""
    if chunk.uncompressed_size > _MAX_CHUNK:
        return None
    if chunk.compression == "":
        if chunk.data_size != chunk.uncompressed_size:
            return None
        return _crc_of_range(f, chunk.data_offset, chunk.data_offset + chunk.data_size)
    from rosbags.rosbag2.storage_mcap import DECOMPRESSORS  # the decompressors rosbags reads with

    decompress = DECOMPRESSORS.get(chunk.compression)
    if decompress is None:
        return None
    try:
        raw = decompress(_read_at(f, chunk.data_offset, chunk.data_size), chunk.uncompressed_size)
    except Exception:  # noqa: BLE001 - any decompressor error is a damaged chunk
        return None
    return zlib.crc32(raw) if len(raw) == chunk.uncompressed_size else None


def _summary_crc(f: BinaryIO, layout: _Layout) -> int:
    return _crc_of_range(f, layout.summary_start, layout.footer_offset + _SUMMARY_CRC_AT)


def _damaged_list(chunks: list[_Chunk], total: int) -> str:
    if len(chunks) == 1:
        return f"chunk {chunks[0].index} of {total} (at byte {chunks[0].offset:,}) fails its CRC"
    shown = ", ".join(f"{c.index} (byte {c.offset:,})" for c in chunks[:4])
    more = f" and {len(chunks) - 4} more" if len(chunks) > 4 else ""
    return f"{len(chunks)} of {total} chunks fail their CRC: {shown}{more}"


def verify(path: Path) -> McapCheck:
    """Check the structure and every CRC of an MCAP file; `McapDamage` if anything is off."""
    path = Path(path)
    with path.open("rb") as f:
        layout = _layout(f, os.fstat(f.fileno()).st_size)
        damaged = [c for c in layout.chunks if c.crc and _chunk_crc(f, c) != c.crc]
        if damaged:
            raise McapDamage(f"damaged: MCAP {_damaged_list(damaged, len(layout.chunks))}")
        if layout.summary_start and layout.summary_crc and _summary_crc(f, layout) != layout.summary_crc:
            raise McapDamage("damaged: its summary section (the chunk index) fails its CRC")
    return McapCheck(len(layout.chunks), sum(1 for c in layout.chunks if not c.crc))


def _patches(f: BinaryIO, layout: _Layout) -> Iterator[tuple[int, int]]:
    for chunk in layout.chunks:
        if not chunk.crc:
            crc = _chunk_crc(f, chunk)
            if crc is not None:
                yield chunk.offset + _CRC_AT, crc


def add_crcs(path: Path) -> int:
    """Write the CRC of every chunk that has none, and of the summary section if it has none.
    Returns the number of chunks given a CRC."""
    with Path(path).open("r+b") as f:
        layout = _layout(f, os.fstat(f.fileno()).st_size)
        patches = list(_patches(f, layout))
        for at, crc in patches:
            f.seek(at)
            f.write(struct.pack("<I", crc))
        if layout.summary_start and not layout.summary_crc:
            crc = _summary_crc(f, layout)
            f.seek(layout.footer_offset + _SUMMARY_CRC_AT)
            f.write(struct.pack("<I", crc))
    return len(patches)
