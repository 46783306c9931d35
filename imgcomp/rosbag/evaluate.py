"""`imgcomp bag eval`: PSNR / MS-SSIM of a compressed bag's frames against the raw bag they
came from, matched by topic and header stamp, decoded through the decoder node's `DecoderCore`.

Every compressed frame is decoded when it is read, in bag order, whether or not it has a raw
partner (one without is entropy-decoded only): a P-frame needs the frame before it of its stream,
so the decoding order is the stream's, and the matching waits on decoded images."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter, defaultdict, deque
from dataclasses import dataclass
from heapq import merge
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
from tqdm import tqdm

from imgcomp.image import ImageEncodingError, image_from_msg_fields
from imgcomp.rosbag.common import (
    FEATURES_SUFFIX,
    IMAGE_TYPES,
    MALFORMED_MESSAGE,
    Skip,
    SkipLog,
    default_codec_factory,
    features_topic_for,
    image_fields,
    mean_or_none,
)
from imgcomp.rosbag.decompress import CACHED_MODELS
from imgcomp.rosbag.io import BagReader, open_reader
from imgcomp.rosbag.messages import MSG_TYPE, deserialize, stamp_to_ns

if TYPE_CHECKING:
    from imgcomp.codec import Codec
    from imgcomp.stream.decoder_core import DecoderCore

_MS_SSIM_MIN_SIDE = 161  # pytorch_msssim"s 5 scales with an 11x11 window need a short side > 160

__all__ = ["evaluate"]


@dataclass
class _Item:
    timestamp: int
    side: int  # 0: compressed, 1: raw
    key: tuple[str, int]  # (features topic, header stamp ns)
    msgtype: str
    raw: bytes | memoryview  # a view into the reader's buffer until `held()` copies it

    def held(self) -> _Item:
        return dataclasses.replace(self, raw=bytes(self.raw))


@dataclass
class _Decoded:
    """A compressed frame decoded on arrival: the message and its image, or why it has none."""

    timestamp: int
    msg: Any
    image: np.ndarray | None
    skip: Skip | None


def _keyed(reader: BagReader, connections: list[Any], side: int, topic_of: Callable[[Any], str]) -> Iterator[_Item]:
    """(bag time, key, raw) of every message of `connections`; unparsable ones get stamp -1
    (never matched: they count as unmatched)."""
    for connection, timestamp, raw in reader.messages(connections=connections):
        try:
            stamp = stamp_to_ns(deserialize(raw, connection.msgtype).header)
        except Exception:  # noqa: BLE001 - evaluated (and counted) as a failure below
            stamp = -1
        yield _Item(timestamp, side, (topic_of(connection), stamp), connection.msgtype, raw)


def _metrics(reference: np.ndarray, decoded: np.ndarray, with_ms_ssim: bool) -> tuple[float, float | None]:
    from imgcomp.metrics import ms_ssim_index, psnr

    value = psnr(reference, decoded)
    if not with_ms_ssim or min(reference.shape[:2]) < _MS_SSIM_MIN_SIDE:
        return value, None
    return value, ms_ssim_index(reference, decoded)


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def evaluate(
    compressed: str | Path,
    raw: str | Path,
    *,
    device: str = "cpu",
    codec_factory: Callable[[str], Codec] | None = None,
    ms_ssim: bool = True,
    per_frame: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Quality of a compressed bag's frames against the raw bag they were made from.

    A CompressedFeatures message on `T` is matched with the raw bag's Image (or JPEG/PNG
    CompressedImage) message on the topic whose `features_topic_for` is `T` and whose header
    stamp is equal. The reference is the raw frame as the codec saw it (`imgcomp.image`'s
    RGB or mono array; alpha dropped, 16 bit reduced to 8), the test image the codec's
    decoding of the payload. MS-SSIM needs a short side of at least 161 px; it is None below.
    PSNR is None (JSON null) for a frame decoded identical to the raw one (infinite PSNR).

    Returns a JSON-ready dict: "mean" (psnr_db, ms_ssim, bpp over matched frames), "topics"
    (the same per topic), "frames", "unmatched" (compressed / raw frames without a partner),
    "failed" (by cause) and, with `per_frame`, "per_frame" (topic, stamp_ns, frame_id, bpp,
    psnr_db, ms_ssim). Memory: both bags are streamed side by side in bag-time order; only
    frames whose partner has not arrived yet are held.
    """
    compressed, raw = Path(compressed), Path(raw)
    failed = SkipLog("eval")
    with open_reader(compressed, "compressed bag") as creader, open_reader(raw, "raw bag") as rreader:
        ctopics = {c.topic for c in creader.connections if c.msgtype == MSG_TYPE}
        if not ctopics:
            raise ValueError(f"{compressed} has no {MSG_TYPE} topic")
        rconns = [
            c for c in rreader.connections
            if c.msgtype in IMAGE_TYPES and features_topic_for(c.topic, c.msgtype) in ctopics
        ]
        if not rconns:
            raise ValueError(
                f"{raw} has no image topic for {', '.join(sorted(ctopics))} "
                f"(expected <topic> for <topic>{FEATURES_SUFFIX})"
            )
        cconns = [c for c in creader.connections if c.msgtype == MSG_TYPE]
        from imgcomp.stream.decoder_core import DecoderCore  # torch: after the input checks

        core = DecoderCore(codec_factory or default_codec_factory(device), model=None, max_cached_models=CACHED_MODELS)

        def features_topic(c: Any) -> str:
            return c.topic

        def raw_topic(c: Any) -> str:
            return features_topic_for(c.topic, c.msgtype)

        # Pass 1: which keys both bags have (metadata only), so that frames without a partner
        # are dropped at once in pass 2 instead of waiting in memory for one.
        counts = [Counter(i.key for i in _keyed(creader, cconns, 0, features_topic)),
                  Counter(i.key for i in _keyed(rreader, rconns, 1, raw_topic))]
        both = Counter({k: n for k, n in (counts[0] & counts[1]).items() if k[1] >= 0})
        unmatched = {
            "compressed": sum((counts[0] - both).values()),
            "raw": sum((counts[1] - both).values()),
        }
        total = sum(both.values())
        pending: list[dict[tuple[str, int], deque[_Item]]] = [defaultdict(deque), defaultdict(deque)]
        held: list[Counter[tuple[str, int]]] = [Counter(), Counter()]  # per key: taken so far
        frames: list[dict[str, Any]] = []
        stream = merge(
            _keyed(creader, cconns, 0, features_topic),
            _keyed(rreader, rconns, 1, raw_topic),
            key=lambda i: i.timestamp,
        )
        bar = tqdm(total=total, desc="eval", unit="frame", disable=not progress, dynamic_ncols=True)
        for item in stream:
            if item.side == 0 and held[0][item.key] >= both[item.key]:
                _catch_up(core, item)  # no raw partner: its latent still feeds its stream
                continue
            entry: Any = _decode(core, item) if item.side == 0 else item
            waiting = pending[1 - item.side].get(item.key)
            if waiting:
                partner = waiting.popleft()
                if not waiting:
                    del pending[1 - item.side][item.key]
                pair = (entry, partner) if item.side == 0 else (partner, entry)
                row = _evaluate_pair(*pair, failed, ms_ssim)
                if row is not None:
                    frames.append(row)
                bar.update(1)
            elif held[item.side][item.key] < both[item.key]:  # else it has no partner: drop it
                pending[item.side][item.key].append(entry if item.side == 0 else item.held())
            held[item.side][item.key] += 1
        bar.close()

    def means(rows: list[dict[str, Any]]) -> dict[str, Any]:
        psnrs = [r["psnr_db"] for r in rows]
        finite = [p for p in psnrs if math.isfinite(p)]
        return {
            "frames": len(rows),
            "psnr_db": mean_or_none(finite) if finite or not psnrs else math.inf,
            "ms_ssim": mean_or_none([r["ms_ssim"] for r in rows if r["ms_ssim"] is not None]),
            "bpp": mean_or_none([r["bpp"] for r in rows]),
        }

    by_topic: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in frames:
        by_topic[row["topic"]].append(row)
    result: dict[str, Any] = {
        "compressed": str(compressed),
        "raw": str(raw),
        "frames": len(frames),
        "mean": means(frames),
        "topics": {t: means(rows) for t, rows in sorted(by_topic.items())},
        "unmatched": unmatched,
        "failed": dict(failed.counts),
    }
    for part in [result["mean"], *result["topics"].values()]:
        part["psnr_db"] = _finite(part["psnr_db"])
    if per_frame:
        result["per_frame"] = [{**r, "psnr_db": _finite(r["psnr_db"])} for r in frames]
    return result



def _message(item: _Item) -> Any:
    try:
        return deserialize(item.raw, MSG_TYPE)
    except Exception as exc:  # noqa: BLE001 - rosbags raises several types for bad CDR
        raise Skip(MALFORMED_MESSAGE, f"{type(exc).__name__}: {exc}") from None


def _catch_up(core: DecoderCore, item: _Item) -> None:
    from imgcomp.stream.fields import FeaturesFields

    try:
        core.catch_up([FeaturesFields.from_msg(_message(item))])
    except Skip:
        pass


def _decode(core: DecoderCore, item: _Item) -> _Decoded:
    """Decode a compressed frame now (bag order: its stream's order), with the decoder node's own
    checks, model cache and rejection causes."""
    from imgcomp.stream.fields import FeaturesFields
    from imgcomp.stream.rejections import Rejection

    try:
        msg = _message(item)
        decoded = core.decode(FeaturesFields.from_msg(msg))
        if isinstance(decoded, Rejection):
            raise Skip(decoded.cause, decoded.message)
    except Skip as skip:
        return _Decoded(item.timestamp, None, None, skip)
    return _Decoded(item.timestamp, msg, decoded[0], None)


def _evaluate_pair(comp: _Decoded, ref: _Item, failed: SkipLog, with_ms_ssim: bool) -> dict[str, Any] | None:
    topic, stamp = ref.key
    try:
        if comp.skip is not None:
            raise comp.skip
        _, fields = image_fields(ref.msgtype, ref.raw)
        try:
            reference = image_from_msg_fields(
                fields.data, fields.height, fields.width, fields.encoding, fields.step, fields.is_bigendian
            )
        except ImageEncodingError as exc:
            raise Skip("bad_reference", str(exc)) from None
        decoded = comp.image
        if decoded.shape != reference.shape:
            raise Skip("shape_mismatch", f"decoded {decoded.shape} vs raw {reference.shape}")
        value, msssim = _metrics(reference, decoded, with_ms_ssim)
    except Skip as skip:
        failed.record(skip.cause, str(skip), topic, comp.timestamp)
        return None
    height, width = reference.shape[:2]
    msg = comp.msg
    return {
        "topic": topic,
        "stamp_ns": stamp,
        "frame_id": msg.header.frame_id,
        "bpp": 8.0 * len(msg.data) / (height * width),
        "psnr_db": value,
        "ms_ssim": msssim,
    }
