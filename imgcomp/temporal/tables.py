"""The temporal entropy model: closed integer CDF tables for latent P-frames, and its weights file.

A predicted frame codes the integer residual ``r = y_t - y_hat_{t-1}`` of the gained latent
against the decoded latent of the previous frame, in two rANS strings (both through
`imgcomp.models.entropy_coding`, so every decode stays inside its input):

* one *changed* flag per block of BLOCK x BLOCK latent positions (all M channels), with the
  table chosen by the co-located flag of the previous frame (0, 1, or 2 = "after a key frame");
* in changed blocks, every residual element, with the table chosen by an integer context
  computed from the reference latent only: ``channel * BUCKETS + bucket(|y_hat_{t-1}|)``.

Every table index is a function of integers the decoder already holds (the reference latent and
the previous flags), so encoder and decoder agree bit for bit on every device, thread count,
dtype and backend: no float enters the decoder's entropy model at all. Skipped blocks copy the
reference (like H.264 skip blocks).

The tables are trained by counting (`imgcomp.training.temporal`) and stored per quality level as
integer frequencies (16-bit precision, every symbol >= 1) in an ``.npz`` next to the codec's
weights; its sha256 is recorded in the manifest under the model's ``temporal`` entry and its
first 8 bytes travel in every P-frame, so a P-frame is never decoded with other tables.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from imgcomp.models import entropy_coding
from imgcomp.models.entropy_coding import ClosedTables

BLOCK = 2  # latent positions per block side (32 x 32 pixels)
BUCKET_EDGES = (1, 2, 3, 5, 9)  # |reference| < 1, < 2, < 3, < 5, < 9, >= 9 -> 6 buckets
BUCKETS = len(BUCKET_EDGES) + 1
FLAG_CONTEXTS = 3  # previous co-located flag: 0, 1, or 2 = none (after a key frame)
LATENT_LIMIT = 4096  # |y_hat| of a P-frame reconstruction is clamped here (encoder and decoder alike)
TOTAL = 1 << entropy_coding.PRECISION_BITS


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
    np.put_along_axis(freqs, pmf.argmax(-1)[..., None], np.take_along_axis(freqs, pmf.argmax(-1)[..., None], -1) + rest[..., None], -1)
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


def bucket(reference: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.asarray(BUCKET_EDGES), np.abs(reference), side="right").astype(np.int64)


@dataclass(frozen=True)
class LevelTables:
    """The temporal tables of one quality level."""

    radius: int  # residuals are coded in -radius..radius
    flag_freqs: np.ndarray  # (FLAG_CONTEXTS, 2)
    residual_freqs: np.ndarray  # (M * BUCKETS, 2 * radius + 1)
    weights: np.ndarray  # (M,) float64: pixel SSE per unit latent change (encoder-side RD only)

    def __post_init__(self) -> None:
        object.__setattr__(self, "flags", closed_from_freqs(self.flag_freqs, 0))
        object.__setattr__(self, "residuals", closed_from_freqs(self.residual_freqs, -self.radius))
        object.__setattr__(self, "flag_bits", -np.log2(self.flag_freqs / TOTAL))
        object.__setattr__(self, "residual_bits", -np.log2(self.residual_freqs / TOTAL))

    @property
    def channels(self) -> int:
        return self.residual_freqs.shape[0] // BUCKETS

    def contexts(self, reference: np.ndarray) -> np.ndarray:
        """Table index of each residual element from the reference latent (M, H, W), integers only."""
        channel = np.arange(reference.shape[0], dtype=np.int64)[:, None, None]
        return channel * BUCKETS + bucket(reference)


@dataclass(frozen=True)
class TemporalTables:
    model_hash: str
    levels: tuple[LevelTables, ...]
    digest: str  # sha256 of the file (or of the serialised tables)

    @property
    def tables_id(self) -> bytes:
        """8 bytes naming these tables: the first bytes of their sha256 (carried by every P-frame)."""
        return bytes.fromhex(self.digest[:16])

    def level(self, quality: int) -> LevelTables:
        return self.levels[quality - 1]

    def to_bytes(self) -> bytes:
        arrays = {"meta": np.frombuffer(json.dumps(
            {"model_hash": self.model_hash, "block": BLOCK, "bucket_edges": BUCKET_EDGES, "levels": len(self.levels)}
        ).encode(), dtype=np.uint8)}
        for i, lt in enumerate(self.levels):
            arrays[f"radius{i}"] = np.array([lt.radius], dtype=np.int64)
            arrays[f"flags{i}"] = lt.flag_freqs.astype(np.int32)
            arrays[f"residuals{i}"] = lt.residual_freqs.astype(np.int32)
            arrays[f"weights{i}"] = lt.weights.astype(np.float64)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "TemporalTables":
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            if meta["block"] != BLOCK or tuple(meta["bucket_edges"]) != BUCKET_EDGES:
                raise ValueError("temporal tables were built for another block size or context layout")
            levels = tuple(
                LevelTables(int(z[f"radius{i}"][0]), z[f"flags{i}"].astype(np.int64), z[f"residuals{i}"].astype(np.int64),
                            z[f"weights{i}"].astype(np.float64))
                for i in range(meta["levels"])
            )
        return cls(meta["model_hash"], levels, hashlib.sha256(data).hexdigest())


class TemporalTablesError(RuntimeError):
    """The model has no temporal tables, or the file is not the registered one."""


@lru_cache(maxsize=8)
def load_tables(model: str) -> TemporalTables:
    """The verified temporal tables of a shipped model (manifest entry ``temporal``)."""
    from imgcomp.models.registry import WEIGHTS_DIR, model_entry

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
    tables = TemporalTables.from_bytes(data)
    if tables.model_hash != model_entry(model)["sha256"][:16]:
        raise TemporalTablesError(f"temporal tables {path} were trained for weights {tables.model_hash}, not {model!r}'s")
    return tables
