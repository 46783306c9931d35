"""`imgcomp bag decompress`: CompressedFeatures topics become sensor_msgs/Image again, through
the decoder node's own `DecoderCore` (see `imgcomp.rosbag`)."""

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
from imgcomp.rosbag.io import bag_size_bytes, open_reader
from imgcomp.rosbag.output import check_output, open_output
from imgcomp.rosbag.messages import IMAGE_TYPE, MSG_TYPE, deserialize, serialize, typestore

if TYPE_CHECKING:
    from imgcomp.codec import Codec

# Codecs a bag's payloads may name, kept loaded at once (a bag rarely mixes more than one or two).
CACHED_MODELS = 8

__all__ = ["CACHED_MODELS", "DecompressSummary", "decompress"]


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
) -> DecompressSummary:
    """Decode every CompressedFeatures topic of `in_bag` back to sensor_msgs/Image in `out_bag`.

    Each payload is decoded with the model it names (loaded with `codec_factory(name)`,
    default `Codec(name, device)`). Other topics are copied unchanged. `on_frame` as in
    `compress`.
    """
    started = time.monotonic()
    in_bag, out_bag = Path(in_bag), Path(out_bag)
    check_paths(in_bag, out_bag)
    check_output(out_bag, overwrite)
    image_cls = typestore().types[IMAGE_TYPE]
    with open_reader(in_bag, "input bag") as reader:
        mapping = _decoded_topics(topic_types(reader))
        from imgcomp.stream.decoder_core import DecoderCore  # torch: after the input checks
        from imgcomp.stream.fields import FeaturesFields
        from imgcomp.stream.rejections import Rejection

        # DecoderCore keeps the codecs it loaded (one per model the payloads name)
        core = DecoderCore(codec_factory or default_codec_factory(device), model=None, max_cached_models=CACHED_MODELS)
        summary = DecompressSummary(str(in_bag), str(out_bag), mapping)
        skips = SkipLog("decompress")
        models: Counter[str] = Counter()
        with open_output(out_bag, storage, overwrite) as writer:
            messages = reader.messages()
            for connection, timestamp, raw in progress_bar(messages, reader.message_count, "decompress", progress):
                target = mapping.get(connection.topic)
                if target is None or connection.msgtype != MSG_TYPE:
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
