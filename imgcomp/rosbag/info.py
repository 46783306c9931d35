"""`imgcomp bag info`: what a bag holds, and per CompressedFeatures topic its frames, models,
quality levels, bits per pixel and bitrate, and for the temporal mode its key frames, P-frames,
streams and group sizes (frames from a key frame up to the next one of the same stream). Needs
no model (no torch)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from imgcomp.bitstream import FRAME_KEY, BitstreamError, unpack
from imgcomp.rosbag.io import bag_size_bytes, open_reader
from imgcomp.rosbag.messages import MSG_TYPE, deserialize

__all__ = ["format_info", "info"]


def info(bag: str | Path) -> dict[str, Any]:
    """What a bag holds, and for each CompressedFeatures topic: frames, models, quality levels,
    source sizes and encodings, mean bits per pixel, and the bitrate.

    The bitrate is the mean payload bits per frame times the frame rate, the frame rate being
    (frames - 1) / (last - first bag timestamp); None with fewer than two frames.
    """
    bag = Path(bag)
    with open_reader(bag) as reader:
        features = [c for c in reader.connections if c.msgtype == MSG_TYPE]
        stats: dict[str, dict[str, Any]] = {}
        for c in features:
            stats.setdefault(
                c.topic,
                {"frames": 0, "models": Counter(), "qualities": Counter(), "encodings": Counter(),
                 "sizes": Counter(), "payload_bytes": 0, "bpp_sum": 0.0, "first": None, "last": None,
                 "malformed": 0, "keyframes": 0, "pframes": 0, "key_bytes": 0, "p_bytes": 0,
                 "open_groups": {}, "groups": Counter()},
            )
        for connection, timestamp, raw in reader.messages(connections=features):
            s = stats[connection.topic]
            try:
                msg = deserialize(raw, MSG_TYPE)
            except Exception:  # noqa: BLE001 - counted, reported
                s["malformed"] += 1
                continue
            try:
                header = unpack(bytes(msg.data)).header
            except BitstreamError:
                s["malformed"] += 1
                continue
            s["frames"] += 1
            _count_group(s, header, len(msg.data))
            s["models"][f"{msg.codec} ({msg.model_hash})"] += 1
            s["qualities"][int(msg.quality)] += 1
            s["encodings"][msg.encoding] += 1
            s["sizes"][f"{msg.width}x{msg.height}"] += 1
            s["payload_bytes"] += len(msg.data)
            if msg.width and msg.height:
                s["bpp_sum"] += 8.0 * len(msg.data) / (int(msg.width) * int(msg.height))
            s["first"] = timestamp if s["first"] is None else min(s["first"], timestamp)
            s["last"] = timestamp if s["last"] is None else max(s["last"], timestamp)
        compressed: dict[str, Any] = {}
        for topic, s in sorted(stats.items()):
            n = s["frames"]
            span_s = (s["last"] - s["first"]) / 1e9 if n else 0.0
            fps = (n - 1) / span_s if n > 1 and span_s > 0 else None
            compressed[topic] = {
                "frames": n,
                "malformed": s["malformed"],
                "models": dict(s["models"]),
                "qualities": dict(sorted(s["qualities"].items())),
                "encodings": dict(s["encodings"]),
                "sizes": dict(s["sizes"]),
                "payload_bytes": s["payload_bytes"],
                "mean_bpp": s["bpp_sum"] / n if n else None,
                "duration_s": span_s,
                "fps": fps,
                "kbps": s["payload_bytes"] * 8 / n * fps / 1000 if fps else None,
                "keyframes": s["keyframes"],
                "pframes": s["pframes"],
                "mean_key_bytes": s["key_bytes"] / s["keyframes"] if s["keyframes"] else None,
                "mean_p_bytes": s["p_bytes"] / s["pframes"] if s["pframes"] else None,
                "streams": len(s["open_groups"]),
                "group_sizes": _group_sizes(s),
            }
        return {
            "bag": str(bag),
            "storage": reader.check.storage,
            "size_bytes": bag_size_bytes(bag),
            "mcap_chunks": reader.check.chunks,
            "unverified_chunks": reader.check.unverified_chunks,
            "messages": reader.message_count,
            "duration_s": reader.duration / 1e9,
            "topics": {t: {"type": i.msgtype, "messages": i.msgcount} for t, i in sorted(reader.topics.items())},
            "compressed": compressed,
        }


def _count_group(s: dict[str, Any], header: Any, size: int) -> None:
    stream = (header.model, header.model_hash, header.stream_id)
    groups = s["open_groups"]
    if header.frame_type == FRAME_KEY:
        s["keyframes"] += 1
        s["key_bytes"] += size
        if groups.get(stream):
            s["groups"][groups[stream]] += 1
        groups[stream] = 1
    else:
        s["pframes"] += 1
        s["p_bytes"] += size
        groups[stream] = groups.get(stream, 0) + 1  # P-frames before a stream's first key count as a group too


def _group_sizes(s: dict[str, Any]) -> dict[int, int]:
    """Frames per group -> number of groups (the last group of each stream included)."""
    sizes = Counter(s["groups"])
    for length in s["open_groups"].values():
        sizes[length] += 1
    return dict(sorted(sizes.items()))


def format_info(report: dict[str, Any]) -> str:
    """`info()`'s report as text."""
    lines = [
        f"{report['bag']}: {report['storage'] or '?'}, {report['size_bytes']:,} B, "
        f"{report['messages']} messages, {report['duration_s']:.2f} s",
    ]
    if report["mcap_chunks"]:
        unverified = report["unverified_chunks"]
        lines.append(
            f"MCAP chunks: {report['mcap_chunks']}, "
            + (f"{unverified} without a CRC (damage in them cannot be detected)" if unverified else "all CRC-checked")
        )
    lines.append("topics:")
    lines += [f"  {t}  {i['type']}  {i['messages']}" for t, i in report["topics"].items()]
    if not report["compressed"]:
        lines.append(f"no {MSG_TYPE} topics")

    def fmt(value: float | None, spec: str) -> str:
        return "n/a" if value is None else format(value, spec)

    for topic, s in report["compressed"].items():
        lines += [
            f"{topic}:",
            f"  frames     {s['frames']}" + (f" ({s['malformed']} malformed)" if s["malformed"] else ""),
            "  models     " + ", ".join(f"{m} x{n}" for m, n in s["models"].items()),
            "  qualities  " + ", ".join(f"q{q} x{n}" for q, n in s["qualities"].items()),
            "  sources    " + ", ".join(f"{k} x{n}" for k, n in {**s["sizes"], **s["encodings"]}.items()),
            f"  mean bpp   {fmt(s['mean_bpp'], '.4f')}",
            f"  frames     {s['keyframes']} key, {s['pframes']} P (mean {fmt(s['mean_key_bytes'], ',.0f')} B / "
            f"{fmt(s['mean_p_bytes'], ',.0f')} B) in {s['streams']} stream(s)",
            "  groups     " + (", ".join(f"{n} x{k}" for n, k in s["group_sizes"].items()) or "none")
            + " (frames per group x number of groups)",
            f"  bitrate    {fmt(s['kbps'], '.1f')} kbit/s at {fmt(s['fps'], '.2f')} fps "
            f"({s['payload_bytes']:,} B over {s['duration_s']:.2f} s)",
        ]
    return "\n".join(lines)
