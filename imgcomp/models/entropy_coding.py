"""CompressAI's rANS coder, fed so that no input can make it read out of bounds.

CompressAI's `RansDecoder.decode_with_indexes` (C++, ryg_rans' 64-bit rANS, 16-bit precision)
does no bounds checking: its asserts are compiled out and it reads its input through a raw
pointer. What it reads is fully determined by its code, though (compressai 1.2.8,
`cpp_exts/rans/rans_interface.cpp`):

* `Rans64DecInit` reads two 32-bit words;
* each decoded symbol does one `Rans64DecAdvance`, whose renormalisation is a single `if`, so at
  most one more word;
* a symbol equal to the table's last slot (`cdf_length - 2`, the *escape* for values outside the
  table) enters bypass mode, which reads a data-dependent, unbounded number of 4-bit chunks.

So this module codes with *closed* tables: CompressAI's own integer CDFs with the escape slot's
probability mass moved to its neighbour, so the escape slot has frequency zero. The decoder's
symbol search (`first cdf entry > cum_freq`, with cum_freq < 2^16 = cdf[escape]) can then never
return the escape slot, bypass mode never runs, and decoding N symbols reads at most 2 + N words
whatever the bytes are. The string handed to the native decoder is zero-padded to that length,
so every read is inside the buffer. Table indexes are checked before the call as well (the
decoder trusts them to index its vector of CDFs).

The price: a value outside a table's range cannot be coded, so the encoder clamps it to the
range (CompressAI's tables already cover all but a 1e-9 tail of each distribution), and the
encoder's own reconstruction uses the clamped value, so encoder and decoder still agree exactly.
"""

from __future__ import annotations

import array
from dataclasses import dataclass

import numpy as np
import torch
from compressai.ans import RansDecoder, RansEncoder

from imgcomp.bitstream import BitstreamError

PRECISION_BITS = 16  # CompressAI's rANS precision: the cheapest symbol costs at most 16 bits
_WORD = 4


@dataclass(frozen=True)
class ClosedTables:
    """Integer CDF tables (one per index) whose escape slot has zero probability."""

    cdfs: list[list[int]]
    sizes: list[int]
    offsets: list[int]
    lowest: np.ndarray  # per table: the smallest codable value
    highest: np.ndarray  # per table: the largest codable value

    @property
    def count(self) -> int:
        return len(self.sizes)

    @classmethod
    def from_entropy_model(cls, model: torch.nn.Module) -> "ClosedTables":
        """From a CompressAI `EntropyModel` whose tables were built by `update()`."""
        quantized = model._quantized_cdf.detach().cpu().to(torch.int64).numpy()
        sizes = model._cdf_length.detach().cpu().reshape(-1).to(torch.int64).numpy()
        offsets = model._offset.detach().cpu().reshape(-1).to(torch.int64).numpy()
        if quantized.ndim != 2 or quantized.shape[0] == 0:
            raise ValueError("the entropy model has no tables; run update() first")
        cdfs = []
        for row, size in zip(quantized, sizes):
            cdf = row[:size].copy()
            escape = size - 2
            if escape < 2 or cdf[escape - 1] >= cdf[-1]:
                # one codable value would get frequency 2^16, which the coder's uint16 cannot hold
                raise ValueError("a CDF table needs at least two codable values besides its escape slot")
            cdf[escape] = cdf[-1]  # the escape's mass goes to the symbol before it
            cdfs.append(cdf.tolist())
        return cls(
            cdfs=cdfs,
            sizes=sizes.tolist(),
            offsets=offsets.tolist(),
            lowest=offsets.copy(),
            highest=offsets + sizes - 3,
        )


_CACHE_ATTR = "_imgcomp_closed_tables"


def closed_tables(model: torch.nn.Module) -> ClosedTables:
    """`ClosedTables` of `model`, rebuilt whenever its tables change (training, load)."""
    key = (model._quantized_cdf.data_ptr(), model._quantized_cdf._version, tuple(model._quantized_cdf.shape))
    cached = getattr(model, _CACHE_ATTR, None)
    if cached is not None and cached[0] == key:
        return cached[1]
    tables = ClosedTables.from_entropy_model(model)
    object.__setattr__(model, _CACHE_ATTR, (key, tables))
    return tables


def clamp_to_tables(values: np.ndarray, indexes: np.ndarray, tables: ClosedTables) -> np.ndarray:
    """Integer values clamped into the codable range of their table (see the module docstring)."""
    return np.clip(values, tables.lowest[indexes], tables.highest[indexes])


def _checked_indexes(indexes: np.ndarray, tables: ClosedTables) -> np.ndarray:
    flat = np.ascontiguousarray(indexes, dtype=np.int64).reshape(-1)
    if flat.size and (int(flat.min()) < 0 or int(flat.max()) >= tables.count):
        raise BitstreamError(f"table index outside 0..{tables.count - 1}")
    return flat


def clamp_and_encode(values: np.ndarray, indexes: np.ndarray, tables: ClosedTables) -> tuple[bytes, np.ndarray]:
    """`clamp_to_tables` then `encode` (without re-checking the range the clamp just ensured):
    one rANS string and the clamped values it codes (shape of `values`)."""
    flat_indexes = _checked_indexes(indexes, tables)
    flat_values = np.ascontiguousarray(values, dtype=np.int64).reshape(-1)
    if flat_values.shape != flat_indexes.shape:
        raise ValueError(f"{flat_values.size} values but {flat_indexes.size} table indexes")
    if flat_values.size < 2:
        raise ValueError("a rANS string needs at least two symbols")
    clamped = np.clip(flat_values, tables.lowest[flat_indexes], tables.highest[flat_indexes])
    data = RansEncoder().encode_with_indexes(
        clamped.astype(np.int32).tolist(), flat_indexes.astype(np.int32).tolist(), tables.cdfs, tables.sizes, tables.offsets
    )
    return data, clamped.reshape(np.shape(values))


def encode(values: np.ndarray, indexes: np.ndarray, tables: ClosedTables) -> bytes:
    """Integer values (clamped first with `clamp_to_tables`) -> one rANS string."""
    flat_indexes = _checked_indexes(indexes, tables)
    flat_values = np.ascontiguousarray(values, dtype=np.int64).reshape(-1)
    if flat_values.shape != flat_indexes.shape:
        raise ValueError(f"{flat_values.size} values but {flat_indexes.size} table indexes")
    if flat_values.size < 2:
        # CompressAI's encoder sizes its output buffer by the symbol count and flushes two words
        raise ValueError("a rANS string needs at least two symbols")
    if flat_values.size and (
        bool((flat_values < tables.lowest[flat_indexes]).any()) or bool((flat_values > tables.highest[flat_indexes]).any())
    ):
        raise ValueError("values outside their table's range: clamp them with clamp_to_tables first")
    return RansEncoder().encode_with_indexes(
        flat_values.astype(np.int32).tolist(), flat_indexes.astype(np.int32).tolist(), tables.cdfs, tables.sizes, tables.offsets
    )


def max_string_bytes(symbols: int) -> int:
    """An upper bound on the length of a valid string for `symbols` symbols.

    Each symbol costs at most PRECISION_BITS bits (its frequency is at least 1 of 2^16); rANS
    emits whole 32-bit words and flushes its 64-bit state at the end."""
    return _WORD * (-(-symbols * PRECISION_BITS // 32) + 4)


def decode(data: bytes, indexes: np.ndarray, tables: ClosedTables) -> np.ndarray:
    """One rANS string -> int32 values (shape of `indexes`), each within its table's range.

    Raises BitstreamError for a string no encoder could have written (bad length); any other
    bytes decode to *some* values without reading outside the padded copy."""
    flat_indexes = _checked_indexes(indexes, tables)
    n = flat_indexes.size
    if len(data) < 2 * _WORD or len(data) % _WORD:
        raise BitstreamError(f"entropy-coded string of {len(data)} bytes is not a whole number of rANS words (at least 2)")
    if len(data) > max_string_bytes(n):
        raise BitstreamError(f"entropy-coded string of {len(data)} bytes is longer than {n} symbols can need")
    # At most 2 + n words are read (module docstring); one more word of slack.
    readable = _WORD * (n + 3)
    padded = bytes(data) + bytes(max(0, readable - len(data)))
    values = RansDecoder().decode_with_indexes(padded, flat_indexes.astype(np.int32).tolist(), tables.cdfs, tables.sizes, tables.offsets)
    # array.array reads a list of ints faster than np.asarray does
    return np.frombuffer(array.array("i", values), dtype=np.int32).reshape(np.shape(indexes))


class PhasedDecoder:
    """One rANS string decoded in successive calls, each with tables and indexes that may depend on
    the values decoded before (context modelling), for strings written by one `encode` call over
    all the phases' symbols in order.

    `max_symbols` bounds the symbols of all calls together: the string is zero-padded for that many
    (the read bound of the module docstring, summed over the calls), and a call that would decode
    more raises BitstreamError, so no bytes can make the native decoder read outside its copy."""

    def __init__(self, data: bytes, max_symbols: int) -> None:
        if len(data) < 2 * _WORD or len(data) % _WORD:
            raise BitstreamError(f"entropy-coded string of {len(data)} bytes is not a whole number of rANS words (at least 2)")
        if len(data) > max_string_bytes(max_symbols):
            raise BitstreamError(f"entropy-coded string of {len(data)} bytes is longer than {max_symbols} symbols can need")
        readable = _WORD * (max_symbols + 3)
        self._left = max_symbols
        self._decoder = RansDecoder()
        self._decoder.set_stream(bytes(data) + bytes(max(0, readable - len(data))))

    def decode(self, indexes: np.ndarray, tables: ClosedTables) -> np.ndarray:
        """The next `indexes.size` values (int32, shape of `indexes`), each within its table's range."""
        flat_indexes = _checked_indexes(indexes, tables)
        if flat_indexes.size > self._left:
            raise BitstreamError(f"{flat_indexes.size} more symbols asked of a string sized for {self._left} more")
        self._left -= flat_indexes.size
        if flat_indexes.size == 0:
            return np.zeros(np.shape(indexes), dtype=np.int32)
        values = self._decoder.decode_stream(flat_indexes.astype(np.int32).tolist(), tables.cdfs, tables.sizes, tables.offsets)
        return np.asarray(values, dtype=np.int32).reshape(np.shape(indexes))
