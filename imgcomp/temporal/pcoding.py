"""Coding one latent P-frame against its reference (see `imgcomp.temporal.tables`).

Encoder and decoder share the context functions below, all computed from integers; the
encoder's rate-distortion choices (which blocks to skip, which residuals to zero or shrink) use
floats but are invisible to the decoder, which only ever sees the integers they produced.

Symbol order in the one rANS string: the block flags (raster order), then for each channel group
the residuals of the changed blocks, channel by channel (ascending), each in raster order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imgcomp.models import entropy_coding
from imgcomp.temporal.tables import (
    ACTIVITIES,
    ACTIVITY_EDGES,
    BUCKETS,
    HISTORIES,
    HISTORY_EDGES,
    LATENT_LIMIT,
    NEIGHBOUR_EDGES,
    NEIGHBOURS,
    Layout,
    LevelTables,
    bucket,
)


@dataclass(frozen=True)
class History:
    """What a P-frame leaves to the next one's contexts (encoder and decoder alike)."""

    flags: np.ndarray  # int64 (Hb * Wb,): the changed flags
    nonzero: np.ndarray  # int64 (H, W): nonzero residuals per position, all channels


def block_grid(height: int, width: int, block: int) -> tuple[int, int]:
    return -(-height // block), -(-width // block)


def block_of(shape: tuple[int, int, int], block: int) -> np.ndarray:
    """(M, H, W) -> (H, W): flat block number of every latent position."""
    _, h, w = shape
    _, wb = block_grid(h, w, block)
    return (np.arange(h)[:, None] // block) * wb + (np.arange(w)[None, :] // block)


def _block_sum(values: np.ndarray, block: int) -> np.ndarray:
    """(H, W) -> (Hb * Wb,) sums over each block."""
    h, w = values.shape
    hb, wb = block_grid(h, w, block)
    padded = np.zeros((hb * block, wb * block), dtype=values.dtype)
    padded[:h, :w] = values
    return padded.reshape(hb, block, wb, block).sum(axis=(1, 3)).reshape(-1)


def _edges(values: np.ndarray, edges: tuple[int, ...]) -> np.ndarray:
    return np.searchsorted(np.asarray(edges), values, side="right").astype(np.int64)


def flag_contexts(history: History | None, shape: tuple[int, int, int], layout: Layout) -> np.ndarray:
    """Table index of each block flag: previous co-located flag (2 after a key frame) x how many
    of its 8 neighbours changed in the previous frame."""
    hb, wb = block_grid(shape[1], shape[2], layout.block)
    if history is None:
        return np.full(hb * wb, 2 * NEIGHBOURS, dtype=np.int64)
    flags = history.flags.reshape(hb, wb)
    if not layout.neighbours:
        return flags.reshape(-1) * NEIGHBOURS
    padded = np.pad(flags, 1)
    around = sum(padded[1 + dy : 1 + dy + hb, 1 + dx : 1 + dx + wb] for dy in (-1, 0, 1) for dx in (-1, 0, 1)) - flags
    return (flags * NEIGHBOURS + _edges(around, NEIGHBOUR_EDGES)).reshape(-1)


def history_contexts(history: History | None, shape: tuple[int, int, int], layout: Layout) -> np.ndarray:
    """(H, W) history value of each position: the previous P-frame's nonzero count, bucketed."""
    if not layout.history:
        return np.zeros(shape[1:], dtype=np.int64)
    if history is None:
        return np.full(shape[1:], HISTORIES - 1, dtype=np.int64)
    return _edges(history.nonzero, HISTORY_EDGES)


def residual_contexts(reference: np.ndarray, channels: np.ndarray, group: int, histories: np.ndarray,
                      earlier: np.ndarray) -> np.ndarray:
    """Context ids (len(channels), H, W) of the residuals of one channel group; `earlier` (H, W)
    counts the nonzero residuals of the groups before it at each position."""
    activity = _edges(earlier // group, ACTIVITY_EDGES) if group else np.zeros_like(earlier)
    b = bucket(reference[channels])
    return ((channels[:, None, None] * BUCKETS + b) * HISTORIES + histories) * ACTIVITIES + activity


def _signs(reference: np.ndarray, layout: Layout) -> np.ndarray | int:
    return np.where(reference < 0, -1, 1) if layout.sign_flip else 1


@dataclass
class PFrame:
    string: bytes  # the one rANS string: flags, then the residuals group by group
    y_hat: np.ndarray  # int64 (M, H, W): the decoder's reconstruction
    history: History  # what the next P-frame's contexts use
    distortion: float  # sum of lambda * w_c * (y - y_hat)^2, in bits (the RD cost's distortion term)
    coded: int  # residual elements coded
    flag_contexts: np.ndarray  # the flags' table indexes (for the trainer's counts)
    residual_contexts: np.ndarray  # context id of every coded residual, in string order
    residual_symbols: np.ndarray  # its symbol (sign-flipped residual), in string order


def encode_pframe(
    y: np.ndarray,
    reference: np.ndarray,
    history: History | None,
    tables: LevelTables,
    lam: float,
    rd: bool = True,
) -> PFrame:
    """y: float latent (M, H, W); reference: decoded int latent of the previous frame.

    `lam` converts the distortion proxy (pixel SSE, 0..1 units) to bits. With `rd`, each element's
    residual is the cheapest of {round, round shrunk by one, 0} in bits + lam * distortion (group
    by group, so each sees the contexts the earlier groups' choices give it); a block is skipped
    when that is cheaper than coding it.
    Without `rd`, every nonzero rounded residual is coded and only all-zero blocks are skipped."""
    layout = tables.layout
    y = np.asarray(y, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.int64)
    r = tables.radius
    diff = y - reference
    target = np.clip(np.round(y), -LATENT_LIMIT, LATENT_LIMIT) - reference
    rounded = np.clip(target, -r, r).astype(np.int64)
    sign = _signs(reference, layout)
    weight = (lam * tables.weights)[:, None, None]
    fctx = flag_contexts(history, y.shape, layout)
    hist = history_contexts(history, y.shape, layout)
    keep_cost = weight * diff**2  # the distortion of a zero residual
    values = np.zeros_like(rounded)
    contexts = np.zeros_like(rounded)
    cost = np.zeros(y.shape, dtype=np.float64)
    earlier = np.zeros(y.shape[1:], dtype=np.int64)
    for group, channels in enumerate(tables.groups):
        ctx = residual_contexts(reference, channels, group, hist, earlier)
        table = tables.context_map[ctx]
        s = sign if np.isscalar(sign) else sign[channels]
        if rd:
            best, best_cost = None, None
            cand0 = rounded[channels]
            for cand in (cand0, cand0 - np.sign(cand0), np.zeros_like(cand0)):
                c = tables.residual_bits[table, cand * s + r] + weight[channels] * (diff[channels] - cand) ** 2
                if best is None:
                    best, best_cost = cand.copy(), c
                else:
                    better = c < best_cost
                    best[better], best_cost[better] = cand[better], c[better]
        else:
            best = rounded[channels]
            best_cost = tables.residual_bits[table, best * s + r]
        values[channels], contexts[channels], cost[channels] = best, ctx, best_cost
        earlier = earlier + (best != 0).sum(0)
    if rd:
        code = _block_sum(cost.sum(0), layout.block) + tables.flag_bits[fctx, 1]
        skip = _block_sum(keep_cost.sum(0), layout.block) + tables.flag_bits[fctx, 0]
        flags = (code < skip).astype(np.int64)
    else:
        flags = (_block_sum(np.abs(values).sum(0), layout.block) > 0).astype(np.int64)
    changed = flags[block_of(y.shape, layout.block)]
    values = np.where(changed[None].astype(bool), values, 0)
    y_hat = reference + values
    symbols = values * sign
    ordered = _in_string_order(changed.astype(bool), tables)
    res_ctx = np.concatenate([contexts[m] for m in ordered]) if ordered else np.zeros(0, np.int64)
    res_sym = np.concatenate([symbols[m] for m in ordered]) if ordered else np.zeros(0, np.int64)
    all_values = np.concatenate([flags, res_sym])
    all_indexes = np.concatenate([fctx, tables.flags.count + tables.context_map[res_ctx]])
    if all_values.size < 2:  # a rANS string needs two symbols: pad with a flag the decoder never reads
        all_values, all_indexes = np.append(all_values, 0), np.append(all_indexes, 0)
    string = entropy_coding.encode(all_values, all_indexes, tables.both)
    distortion = float((weight * (diff - values) ** 2).sum())
    nonzero = (values != 0).sum(0).astype(np.int64)
    return PFrame(string, y_hat, History(flags, nonzero), distortion, int(res_ctx.size), fctx, res_ctx, res_sym)




def _in_string_order(changed: np.ndarray, tables: LevelTables) -> list[np.ndarray]:
    """Per channel group, the (M, H, W) mask of its coded residuals (numpy's boolean indexing
    walks it channel by channel, each in raster order: the string order)."""
    masks = []
    for channels in tables.groups:
        mask = np.zeros((tables.channels,) + changed.shape, dtype=bool)
        mask[channels] = changed
        masks.append(mask)
    return masks


def decode_pframe(string: bytes, reference: np.ndarray, history: History | None, tables: LevelTables) -> tuple[np.ndarray, History]:
    """The decoder's side of `encode_pframe`: (y_hat, history), integers only. Any bytes decode to
    values within the tables' ranges (or raise BitstreamError); the result is clamped like the
    encoder's, so no forged string can grow the latent without bound."""
    layout = tables.layout
    reference = np.asarray(reference, dtype=np.int64)
    fctx = flag_contexts(history, reference.shape, layout)
    decoder = entropy_coding.PhasedDecoder(string, max(2, fctx.size + reference.size))
    flags = decoder.decode(fctx, tables.flags).astype(np.int64)
    changed = flags[block_of(reference.shape, layout.block)].astype(bool)
    hist = history_contexts(history, reference.shape, layout)
    sign = _signs(reference, layout)
    values = np.zeros(reference.shape, dtype=np.int64)
    earlier = np.zeros(reference.shape[1:], dtype=np.int64)
    for group, (channels, mask) in enumerate(zip(tables.groups, _in_string_order(changed, tables))):
        ctx = residual_contexts(reference, channels, group, hist, earlier)
        full = np.zeros(reference.shape, dtype=np.int64)
        full[channels] = ctx
        values[mask] = decoder.decode(tables.context_map[full[mask]], tables.residuals)
        if not np.isscalar(sign):
            values[mask] *= sign[mask]
        earlier = earlier + (values[channels] != 0).sum(0)
    y_hat = np.clip(reference + values, -LATENT_LIMIT, LATENT_LIMIT)
    return y_hat, History(flags, (values != 0).sum(0).astype(np.int64))
