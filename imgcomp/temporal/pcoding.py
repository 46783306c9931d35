"""Coding one latent P-frame against its reference (see `imgcomp.temporal.tables`).

Encoder and decoder share `_layout` and the table indexes, all computed from integers; the
encoder's rate-distortion choices (which blocks to skip, which residuals to zero or shrink) use
floats but are invisible to the decoder, which only ever sees the integers they produced.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imgcomp.bitstream import BitstreamError
from imgcomp.models import entropy_coding
from imgcomp.temporal.tables import BLOCK, FLAG_CONTEXTS, LATENT_LIMIT, LevelTables


def block_grid(height: int, width: int) -> tuple[int, int]:
    return -(-height // BLOCK), -(-width // BLOCK)


def block_of(shape: tuple[int, int, int]) -> np.ndarray:
    """(H, W) -> flat block number of every latent position."""
    _, h, w = shape
    _, wb = block_grid(h, w)
    return (np.arange(h)[:, None] // BLOCK) * wb + (np.arange(w)[None, :] // BLOCK)


def _block_sum(values: np.ndarray) -> np.ndarray:
    """(M, H, W) -> (Hb * Wb,) sums over each block and all channels."""
    m, h, w = values.shape
    hb, wb = block_grid(h, w)
    padded = np.zeros((m, hb * BLOCK, wb * BLOCK), dtype=values.dtype)
    padded[:, :h, :w] = values
    return padded.reshape(m, hb, BLOCK, wb, BLOCK).sum(axis=(0, 2, 4)).reshape(-1)


def _flag_contexts(previous_flags: np.ndarray | None, blocks: int) -> np.ndarray:
    if previous_flags is None:
        return np.full(blocks, FLAG_CONTEXTS - 1, dtype=np.int64)
    return previous_flags.astype(np.int64).reshape(-1)


def _encode(values: np.ndarray, indexes: np.ndarray, tables: entropy_coding.ClosedTables) -> bytes:
    if values.size == 0:
        return b""
    if values.size == 1:  # a rANS string needs two symbols: pad with the table's lowest value
        values = np.append(values, tables.lowest[0])
        indexes = np.append(indexes, 0)
    return entropy_coding.encode(values, indexes, tables)


def _decode(data: bytes, indexes: np.ndarray, tables: entropy_coding.ClosedTables, what: str) -> np.ndarray:
    if indexes.size == 0:
        if data:
            raise BitstreamError(f"{what}: {len(data)} bytes where nothing is coded")
        return np.zeros(0, dtype=np.int64)
    padded = np.append(indexes, 0) if indexes.size == 1 else indexes
    return entropy_coding.decode(data, padded, tables)[: indexes.size].astype(np.int64)


@dataclass
class PFrame:
    flags_string: bytes
    residual_string: bytes
    y_hat: np.ndarray  # int64 (M, H, W): the decoder's reconstruction
    flags: np.ndarray  # int64 (Hb * Wb,)
    distortion: float  # sum of lambda * w_c * (y - y_hat)^2, in bits (the RD cost's distortion term)
    coded: int  # residual elements coded


def encode_pframe(
    y: np.ndarray,
    reference: np.ndarray,
    previous_flags: np.ndarray | None,
    tables: LevelTables,
    lam: float,
    rd: bool = True,
) -> PFrame:
    """y: float latent (M, H, W); reference: decoded int latent of the previous frame.

    `lam` converts the distortion proxy (pixel SSE, 0..1 units) to bits. With `rd`, each element's
    residual is the cheapest of {round, round shrunk by one, 0} in bits + lam * distortion, and a
    block is skipped when that is cheaper than coding it; without, every nonzero rounded residual is
    coded and only all-zero blocks are skipped."""
    y = np.asarray(y, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.int64)
    r = tables.radius
    contexts = tables.contexts(reference)
    diff = y - reference
    target = np.clip(np.round(y), -LATENT_LIMIT, LATENT_LIMIT) - reference
    rounded = np.clip(target, -r, r).astype(np.int64)
    weight = (lam * tables.weights)[:, None, None]
    blocks = _block_sum(np.zeros_like(diff)).size
    flag_ctx = _flag_contexts(previous_flags, blocks)
    if rd:
        shrunk = rounded - np.sign(rounded)
        best, best_cost = None, None
        for cand in (rounded, shrunk, np.zeros_like(rounded)):
            cost = tables.residual_bits[contexts, cand + r] + weight * (diff - cand) ** 2
            if best is None:
                best, best_cost = cand.copy(), cost
            else:
                better = cost < best_cost
                best[better], best_cost[better] = cand[better], cost[better]
        code_cost = _block_sum(best_cost) + tables.flag_bits[flag_ctx, 1]
        skip_cost = _block_sum(weight * diff**2) + tables.flag_bits[flag_ctx, 0]
        flags = (code_cost < skip_cost).astype(np.int64)
        values = best
    else:
        values = rounded
        flags = (_block_sum(np.abs(rounded)) > 0).astype(np.int64)
    changed = flags[block_of(y.shape)][None].repeat(y.shape[0], 0).astype(bool)
    values = np.where(changed, values, 0)
    y_hat = reference + values
    flags_string = _encode(flags, flag_ctx, tables.flags)
    residual_string = _encode(values[changed], contexts[changed], tables.residuals)
    distortion = float((weight * (diff - values) ** 2).sum())
    return PFrame(flags_string, residual_string, y_hat, flags, distortion, int(changed.sum()))


def decode_pframe(
    flags_string: bytes,
    residual_string: bytes,
    reference: np.ndarray,
    previous_flags: np.ndarray | None,
    tables: LevelTables,
) -> tuple[np.ndarray, np.ndarray]:
    """The decoder's side of `encode_pframe`: (y_hat, flags), integers only. Any bytes decode to
    values within the tables' ranges (or raise BitstreamError); the result is clamped like the
    encoder's, so no forged string can grow the latent without bound."""
    reference = np.asarray(reference, dtype=np.int64)
    blocks = _block_sum(np.zeros(reference.shape, dtype=np.int8)).size
    flag_ctx = _flag_contexts(previous_flags, blocks)
    flags = _decode(flags_string, flag_ctx, tables.flags, "block flags")
    changed = flags[block_of(reference.shape)][None].repeat(reference.shape[0], 0).astype(bool)
    contexts = tables.contexts(reference)
    values = np.zeros(reference.shape, dtype=np.int64)
    values[changed] = _decode(residual_string, contexts[changed], tables.residuals, "residuals")
    return np.clip(reference + values, -LATENT_LIMIT, LATENT_LIMIT), flags
