"""`imgcomp bag decompress`: CompressedFeatures topics become sensor_msgs/Image again, through
the decoder node's own `DecoderCore` (see `imgcomp.rosbag`).

Temporal mode: the frames are decoded in bag order with one reference per stream, as in the node;
a P-frame whose reference is not in the bag is skipped and counted (`missing_reference`), and so
is every later P-frame of its stream up to its next key frame.

`start` (seconds after the bag's first message) writes only what comes from there on. To make the
first image of every stream correct, a first pass over the features topics before `start` finds
each stream's last key frame at or before it; the second pass begins there and entropy-decodes
the frames before `start` without writing them (no synthesis). A stream silent for more than
`STREAM_GAP_S` before `start` is taken as ended (an encoder that restarted has a new stream)."""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from imgcomp.rosbag.common import (
    DECODED_SUFFIX,
    FEATURES_SUFFIX,
    MALFORMED_MESSAGE,
    Skip,
    SkipLog,
    check_paths,
    default_codec_factory,
    progress_bar,
    topic_types,
    unverified_note,
)
from imgcomp.bitstream import FRAME_KEY, unpack
from imgcomp.rosbag.io import BagReader, bag_size_bytes, open_reader
from imgcomp.rosbag.output import check_output, open_output
from imgcomp.rosbag.messages import IMAGE_TYPE, MSG_TYPE, deserialize, serialize, typestore

if TYPE_CHECKING:
    from imgcomp.codec import Codec

# Codecs a bag's payloads may name, kept loaded at once (a bag rarely mixes more than one or two).
CACHED_MODELS = 8
STREAM_GAP_S = 5.0  # a stream with no frame in this long before `start` is not decoded into it

__all__ = ["CACHED_MODELS", "STREAM_GAP_S", "DecompressSummary", "catch_up_starts", "decompress"]


@dataclass
class DecompressSummary:
    input: str
    output: str
    topics: dict[str, str]  # features topic -> Image topic
    frames: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    copied: int = 0
    models: dict[str, int] = field(default_factory=dict)
    in_bytes: int = 0
    out_bytes: int = 0
    seconds: float = 0.0
    unverified_chunks: int = 0  # as in CompressSummary
    start_s: float | None = None  # `start`, seconds after the bag's first message
    caught_up: int = 0  # frames before `start` decoded (latent only) to rebuild their stream's reference

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        skipped = ", ".join(f"{n} {c}" for c, n in sorted(self.skipped.items())) or "none"
        lines = [f"{self.input} -> {self.output}"]
        lines += [f"  {src} -> {dst}" for src, dst in self.topics.items()]
        lines += [
            f"  {self.frames} frames decoded, skipped: {skipped}; models: "
            + (", ".join(f"{m} ({n})" for m, n in self.models.items()) or "none"),
            f"  {self.copied} other messages copied",
            *([f"  from {self.start_s:g} s on: {self.caught_up} earlier frames decoded (latents only) to start "
               "every stream at its key frame"] if self.start_s is not None else []),
            f"  bag {self.in_bytes:,} B -> {self.out_bytes:,} B; {self.seconds:.1f} s"
            + unverified_note(self.unverified_chunks),
        ]
        return "\n".join(lines)


def _decoded_topics(types: dict[str, set[str]]) -> dict[str, str]:
    """Features topic -> Image topic: `<t>/imgcomp` -> `<t>`, else `<t>/decoded`."""
    sources = sorted(t for t, m in types.items() if MSG_TYPE in m)
    if not sources:
        raise ValueError(f"the bag has no {MSG_TYPE} topic")
    mapping: dict[str, str] = {}
    taken = set(types)
    for source in sources:
        base = source[: -len(FEATURES_SUFFIX)] if source.endswith(FEATURES_SUFFIX) else source
        target = base if base and base != source and base not in taken else base + DECODED_SUFFIX
        if target in taken:
            raise ValueError(f"cannot decode {source}: both {base} and {target} already exist")
        mapping[source] = target
        taken.add(target)
    return mapping


def catch_up_starts(reader: BagReader, topics: list[str], start_ns: int) -> dict[str, int]:
    """Per features topic, the bag time to start reading from so that every stream live at
    `start_ns` (a frame within STREAM_GAP_S before it) begins at its last key frame at or before
    `start_ns`; topics that need nothing earlier are left out."""
    connections = [c for c in reader.connections if c.topic in topics and c.msgtype == MSG_TYPE]
    last_key: dict[tuple[str, str, str, int], int] = {}
    last_seen: dict[tuple[str, str, str, int], int] = {}
    for connection, timestamp, raw in reader.messages(connections=connections, stop=start_ns + 1):
        try:
            header = unpack(bytes(deserialize(raw, MSG_TYPE).data)).header
        except Exception:  # noqa: BLE001 - a bad frame: decoding reports it (or it lies before start)
            continue
        stream = (connection.topic, header.model, header.model_hash, header.stream_id)
        last_seen[stream] = timestamp
        if header.frame_type == FRAME_KEY:
            last_key[stream] = timestamp
    starts: dict[str, int] = {}
    for stream, key_time in last_key.items():
        if key_time < start_ns and last_seen[stream] >= start_ns - STREAM_GAP_S * 1e9:
            starts[stream[0]] = min(starts.get(stream[0], key_time), key_time)
    return starts


def decompress(
    in_bag: str | Path,
    out_bag: str | Path,
    storage: str = "mcap",
    *,
    device: str = "cpu",
    overwrite: bool = False,
    progress: bool = True,
    codec_factory: Callable[[str], Codec] | None = None,
    on_frame: Callable[[int], None] | None = None,
    start: float | None = None,
) -> DecompressSummary:
    """Decode every CompressedFeatures topic of `in_bag` back to sensor_msgs/Image in `out_bag`.

    Each payload is decoded with the model it names (loaded with `codec_factory(name)`,
    default `Codec(name, device)`). Other topics are copied unchanged. `on_frame` as in
    `compress`. `start`: write only the messages from `start` seconds after the bag's first
    message on, every stream's first image decoded from its preceding key frame (module doc).
    """
    started = time.monotonic()
    in_bag, out_bag = Path(in_bag), Path(out_bag)
    check_paths(in_bag, out_bag)
    check_output(out_bag, overwrite)
    if start is not None and (isinstance(start, bool) or not isinstance(start, (int, float)) or not start >= 0):
        raise ValueError(f"start must be a number of seconds >= 0, got {start!r}")
    image_cls = typestore().types[IMAGE_TYPE]
    with open_reader(in_bag, "input bag") as reader:
        mapping = _decoded_topics(topic_types(reader))
        start_ns, read_from, starts = None, None, {}
        if start is not None:
            start_ns = reader.start_time + round(start * 1e9)
            if start_ns > reader.start_time + reader.duration:
                raise ValueError(f"start {start:g} s is after the end of the bag ({reader.duration / 1e9:.2f} s long)")
            starts = catch_up_starts(reader, list(mapping), start_ns)
            read_from = min([start_ns, *starts.values()])
        from imgcomp.stream.decoder_core import DecoderCore  # torch: after the input checks
        from imgcomp.stream.fields import FeaturesFields
        from imgcomp.stream.rejections import Rejection

        # DecoderCore keeps the codecs it loaded (one per model the payloads name)
        core = DecoderCore(codec_factory or default_codec_factory(device), model=None, max_cached_models=CACHED_MODELS)
        summary = DecompressSummary(str(in_bag), str(out_bag), mapping, start_s=start)
        skips = SkipLog("decompress")
        models: Counter[str] = Counter()
        with open_output(out_bag, storage, overwrite) as writer:
            messages = reader.messages(start=read_from)
            for connection, timestamp, raw in progress_bar(messages, reader.message_count, "decompress", progress):
                target = mapping.get(connection.topic)
                is_features = target is not None and connection.msgtype == MSG_TYPE
                if start_ns is not None and timestamp < start_ns:
                    if is_features and timestamp >= starts.get(connection.topic, start_ns):
                        summary.caught_up += _catch_up(core, raw)
                    continue
                if not is_features:
                    writer.copy_raw(connection, timestamp, raw)
                    summary.copied += 1
                    continue
                try:
                    try:
                        msg = deserialize(raw, MSG_TYPE)
                    except Exception as exc:  # noqa: BLE001 - rosbags raises several types for bad CDR
                        raise Skip(MALFORMED_MESSAGE, f"{type(exc).__name__}: {exc}") from None
                    result = core.process(FeaturesFields.from_msg(msg))
                    if isinstance(result, Rejection):
                        raise Skip(result.cause, result.message)
                except Skip as skip:
                    skips.record(skip.cause, str(skip), connection.topic, timestamp)
                    continue
                image = image_cls(
                    header=msg.header,
                    height=result.height,
                    width=result.width,
                    encoding=result.encoding,
                    is_bigendian=0,
                    step=result.step,
                    data=np.frombuffer(result.data, dtype=np.uint8),
                )
                writer.write_raw(target, IMAGE_TYPE, timestamp, serialize(image, IMAGE_TYPE), like=connection)
                models[msg.codec] += 1
                summary.frames += 1
                if on_frame is not None:
                    on_frame(summary.frames - 1)
    summary.skipped = dict(skips.counts)
    summary.models = dict(models)
    summary.unverified_chunks = reader.check.unverified_chunks
    summary.in_bytes, summary.out_bytes = bag_size_bytes(in_bag), bag_size_bytes(out_bag)
    summary.seconds = time.monotonic() - started
    return summary


def _catch_up(core: Any, raw: bytes | memoryview) -> int:
    """A frame before `start`: its latent only, for its stream's reference (1 if decoded)."""
    from imgcomp.stream.fields import FeaturesFields

    try:
        fields = FeaturesFields.from_msg(deserialize(raw, MSG_TYPE))
    except Exception:  # noqa: BLE001 - not written anyway; its stream waits for a key frame
        return 0
    return core.catch_up([fields])
