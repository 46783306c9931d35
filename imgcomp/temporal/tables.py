"""The temporal entropy model: closed integer CDF tables for latent P-frames, and its weights file.

A predicted frame codes the integer residual ``r = y_t - y_hat_{t-1}`` of the gained latent
against the decoded latent of the previous frame, in one rANS string (through
`imgcomp.models.entropy_coding`, so every decode stays inside its input), in phases:

1. one *changed* flag per block of `Layout.block` x `Layout.block` latent positions (all M
   channels); its table is chosen by the previous frame's co-located flag (0, 1, or "after a key
   frame") and by how many of the 8 neighbouring blocks changed in the previous frame;
2. in changed blocks, the residuals, channel group by channel group (`Layout.phases` groups of
   channels, the most active first). Each element's *context* is
   ``(channel, bucket(|y_hat_{t-1}|), history, activity)``:
   *history* is how many residuals were nonzero at that position in the previous P-frame (moving
   regions persist; a separate value right after a key frame), *activity* how many were nonzero
   at that position in the groups already decoded (motion touches all channels of a position),
   and the residual is coded with its sign flipped where the reference is negative (the latent's
   distribution is symmetric, so this makes "towards zero" one side of every table);
   a trained map sends each of these contexts to one of a few dozen shared tables (context
   quantisation: contexts with similar statistics share counts, unseen ones back off to their
   channel's).

Every table index is a function of integers the decoder already holds (the reference latent, the
previous P-frame's flags and nonzero counts, the residuals of the earlier groups), so encoder and
decoder agree bit for bit on every device, thread count, dtype and backend: no float enters the
decoder's entropy model at all. Skipped blocks copy the reference (like H.264 skip blocks).

The tables are trained by counting (`imgcomp.training.temporal`) and stored per quality level as
integer frequencies (16-bit precision, every symbol >= 1) in an ``.npz`` next to the codec's
weights; its sha256 is recorded in the manifest under the model's ``temporal`` entry and its
first 8 bytes travel in every P-frame, so a P-frame is never decoded with other tables.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from imgcomp.defaults import CLASSICAL_MODELS
from imgcomp.models import entropy_coding
from imgcomp.models.entropy_coding import ClosedTables

FORMAT = 2  # 2: one string, flag/history/activity contexts, shared tables; 1: per-(channel, bucket) tables, 3 strings
BUCKET_EDGES = (1, 2, 3, 5, 9)  # |reference| < 1, < 2, < 3, < 5, < 9, >= 9 -> 6 buckets
BUCKETS = len(BUCKET_EDGES) + 1
HISTORY_EDGES = (1, 3, 9)  # nonzero residuals at the position in the previous P-frame -> 0..3
HISTORIES = len(HISTORY_EDGES) + 2  # ... and 4 = the previous frame was a key frame
ACTIVITY_EDGES = (1, 2, 4, 8)  # nonzero residuals at the position per earlier group -> 0..4
ACTIVITIES = len(ACTIVITY_EDGES) + 1
NEIGHBOUR_EDGES = (1, 3)  # changed neighbour blocks (of 8) in the previous frame -> 0..2
NEIGHBOURS = len(NEIGHBOUR_EDGES) + 1
FLAG_CONTEXTS = 3 * NEIGHBOURS  # previous co-located flag (0, 1, 2 = after a key frame) x neighbours
LATENT_LIMIT = 4096  # |y_hat| of a P-frame reconstruction is clamped here (encoder and decoder alike)
TOTAL = 1 << entropy_coding.PRECISION_BITS


@dataclass(frozen=True)
class Layout:
    """Which contexts the tables were trained for (stored with them; the switches exist so that
    what each context buys can be measured, see `imgcomp.training.temporal --ablate`)."""

    block: int = 1  # latent positions per block side (1 = 16 x 16 pixels)
    phases: int = 1  # channel groups coded one after the other (1 = no activity context)
    history: bool = True  # context from the previous P-frame's nonzero residuals
    neighbours: bool = True  # flag context from the previous frame's neighbouring flags
    sign_flip: bool = True  # residual sign flipped where the reference is negative

    @property
    def contexts_per_channel(self) -> int:
        return BUCKETS * HISTORIES * ACTIVITIES


def quantize_pmf(counts: np.ndarray) -> np.ndarray:
    """Counts (..., n) -> integer frequencies summing to 2^16, each >= 1 (like CompressAI's
    pmf_to_quantized_cdf: no symbol becomes uncodable, the rounding remainder goes to the mode)."""
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.shape[-1]
    if n < 2 or n > TOTAL // 2:
        raise ValueError(f"a table needs 2..{TOTAL // 2} symbols, got {n}")
    pmf = (counts + 1e-3) / (counts + 1e-3).sum(-1, keepdims=True)
    freqs = np.floor(pmf * (TOTAL - n)).astype(np.int64) + 1
    rest = TOTAL - freqs.sum(-1)
    mode = pmf.argmax(-1)[..., None]
    np.put_along_axis(freqs, mode, np.take_along_axis(freqs, mode, -1) + rest[..., None], -1)
    assert (freqs >= 1).all() and (freqs.sum(-1) == TOTAL).all()
    return freqs


def closed_from_freqs(freqs: np.ndarray, offset: int) -> ClosedTables:
    """Frequencies (tables, n) -> `ClosedTables` with codable values offset .. offset + n - 1 and
    an escape slot of frequency zero (see imgcomp.models.entropy_coding)."""
    freqs = np.asarray(freqs, dtype=np.int64)
    if freqs.ndim != 2 or (freqs < 1).any() or (freqs.sum(1) != TOTAL).any() or (freqs >= TOTAL).any():
        raise ValueError("frequencies must be >= 1 and sum to 2^16 in every table")
    count, n = freqs.shape
    cdf = np.zeros((count, n + 2), dtype=np.int64)
    cdf[:, 1 : n + 1] = np.cumsum(freqs, 1)
    cdf[:, n + 1] = TOTAL  # the escape slot: zero frequency
    offsets = np.full(count, offset, dtype=np.int64)
    return ClosedTables(
        cdfs=cdf.tolist(), sizes=[n + 2] * count, offsets=offsets.tolist(), lowest=offsets.copy(), highest=offsets + n - 1
    )


def joined(first: ClosedTables, second: ClosedTables) -> ClosedTables:
    """The tables of `first` then those of `second` (indexes of `second` shift by first.count)."""
    return ClosedTables(first.cdfs + second.cdfs, first.sizes + second.sizes, first.offsets + second.offsets,
                        np.concatenate([first.lowest, second.lowest]), np.concatenate([first.highest, second.highest]))


def bucket(reference: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.asarray(BUCKET_EDGES), np.abs(reference), side="right").astype(np.int64)


@dataclass(frozen=True)
class LevelTables:
    """The temporal tables of one quality level."""

    radius: int  # residuals are coded in -radius..radius
    flag_freqs: np.ndarray  # (FLAG_CONTEXTS, 2)
    residual_freqs: np.ndarray  # (K, 2 * radius + 1): the shared residual tables
    context_map: np.ndarray  # (M * layout.contexts_per_channel,) int64: context -> residual table
    phase: np.ndarray  # (M,) int64: the channel group of each channel (0 = coded first)
    weights: np.ndarray  # (M,) float64: pixel SSE per unit latent change (encoder-side RD only)
    layout: Layout = Layout()

    def __post_init__(self) -> None:
        k = self.residual_freqs.shape[0]
        m = self.phase.size
        if self.context_map.shape != (m * self.layout.contexts_per_channel,) or self.context_map.min() < 0 or self.context_map.max() >= k:
            raise ValueError("temporal context map does not fit its tables")
        if self.phase.min() < 0 or self.phase.max() >= self.layout.phases or self.weights.shape != (m,):
            raise ValueError("temporal channel groups or weights do not fit the layout")
        object.__setattr__(self, "flags", closed_from_freqs(self.flag_freqs, 0))
        object.__setattr__(self, "residuals", closed_from_freqs(self.residual_freqs, -self.radius))
        object.__setattr__(self, "both", joined(self.flags, self.residuals))  # the encoder's: one string
        object.__setattr__(self, "flag_bits", -np.log2(self.flag_freqs / TOTAL))
        object.__setattr__(self, "residual_bits", -np.log2(self.residual_freqs / TOTAL))
        object.__setattr__(self, "groups", tuple(np.flatnonzero(self.phase == q) for q in range(self.layout.phases)))

    @property
    def channels(self) -> int:
        return self.phase.size


@dataclass(frozen=True)
class TemporalTables:
    model_hash: str
    levels: tuple[LevelTables, ...]
    digest: str  # sha256 of the file (or of the serialised tables)

    @property
    def tables_id(self) -> bytes:
        """8 bytes naming these tables: the first bytes of their sha256 (carried by every P-frame)."""
        return bytes.fromhex(self.digest[:16])

    @property
    def layout(self) -> Layout:
        return self.levels[0].layout

    def level(self, quality: int) -> LevelTables:
        return self.levels[quality - 1]

    def to_bytes(self) -> bytes:
        meta = {"format": FORMAT, "model_hash": self.model_hash, "layout": dataclasses.asdict(self.layout),
                "bucket_edges": BUCKET_EDGES, "history_edges": HISTORY_EDGES, "activity_edges": ACTIVITY_EDGES,
                "neighbour_edges": NEIGHBOUR_EDGES, "levels": len(self.levels)}
        arrays = {"meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)}
        for i, lt in enumerate(self.levels):
            arrays[f"radius{i}"] = np.array([lt.radius], dtype=np.int64)
            arrays[f"flags{i}"] = (lt.flag_freqs - 1).astype(np.uint16)  # frequencies 1..2^16 - 1
            arrays[f"residuals{i}"] = (lt.residual_freqs - 1).astype(np.uint16)
            arrays[f"map{i}"] = lt.context_map.astype(np.uint16)
            arrays[f"phase{i}"] = lt.phase.astype(np.uint8)
            arrays[f"weights{i}"] = lt.weights.astype(np.float64)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "TemporalTables":
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            edges = (tuple(meta.get("bucket_edges", ())), tuple(meta.get("history_edges", ())),
                     tuple(meta.get("activity_edges", ())), tuple(meta.get("neighbour_edges", ())))
            if meta.get("format") != FORMAT or edges != (BUCKET_EDGES, HISTORY_EDGES, ACTIVITY_EDGES, NEIGHBOUR_EDGES):
                raise ValueError(f"temporal tables of format {meta.get('format', 1)} or another context layout; "
                                 f"this decoder reads format {FORMAT} (retrain with python -m imgcomp.training.temporal)")
            layout = Layout(**meta["layout"])
            levels = tuple(
                LevelTables(int(z[f"radius{i}"][0]), z[f"flags{i}"].astype(np.int64) + 1, z[f"residuals{i}"].astype(np.int64) + 1,
                            z[f"map{i}"].astype(np.int64), z[f"phase{i}"].astype(np.int64), z[f"weights{i}"].astype(np.float64), layout)
                for i in range(meta["levels"])
            )
        return cls(meta["model_hash"], levels, hashlib.sha256(data).hexdigest())


class TemporalTablesError(RuntimeError):
    """The model has no temporal tables, or the file is not the registered one."""


@lru_cache(maxsize=8)
def load_tables(model: str) -> TemporalTables:
    """The verified temporal tables of a shipped model (manifest entry ``temporal``)."""
    from imgcomp.models.registry import WEIGHTS_DIR, model_entry

    if model in CLASSICAL_MODELS:
        raise TemporalTablesError(f"{model} is a classical still-image codec: every frame decodes alone")
    entry = model_entry(model).get("temporal")
    if not entry:
        raise TemporalTablesError(f"model {model!r} has no temporal tables (run python -m imgcomp.training.temporal)")
    path = Path(WEIGHTS_DIR) / entry["file"]
    if not path.exists():
        raise TemporalTablesError(f"temporal tables {path} of model {model!r} are missing")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry["sha256"]:
        raise TemporalTablesError(f"temporal tables {path} have sha256 {digest}, the manifest expects {entry['sha256']}")
    try:
        tables = TemporalTables.from_bytes(data)
    except ValueError as e:
        raise TemporalTablesError(f"temporal tables {path}: {e}") from None
    if tables.model_hash != model_entry(model)["sha256"][:16]:
        raise TemporalTablesError(f"temporal tables {path} were trained for weights {tables.model_hash}, not {model!r}'s")
    return tables
