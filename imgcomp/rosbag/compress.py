"""`imgcomp bag compress`: the images of one topic become CompressedFeatures, through the
encoder node's own `EncoderCore` (see `imgcomp.rosbag`).

Temporal mode as in the node (`keyframe_interval`, default the node's 10): the bag holds groups of
a key frame and latent P-frames, one stream (one stream id) per run; a size, encoding or scene
change in the input starts a new group at once."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from imgcomp.defaults import check_effort
from imgcomp.rosbag.common import (
    BAD_HEADER,
    COMPRESSED_IMAGE_TYPE,
    DEFAULT_TOPIC,
    IMAGE_TYPES,
    Skip,
    SkipLog,
    check_paths,
    default_codec_factory,
    features_topic_for,
    image_fields,
    image_topics,
    progress_bar,
    topic_types,
    unverified_note,
)
from imgcomp.rosbag.io import bag_size_bytes, open_reader
from imgcomp.rosbag.output import check_output, open_output
from imgcomp.defaults import DEFAULT_KEYFRAME_INTERVAL
from imgcomp.rosbag.messages import IMAGE_TYPE, MSG_TYPE, make_features_msg, serialize

if TYPE_CHECKING:
    from imgcomp.codec import Codec

_log = logging.getLogger("imgcomp.rosbag")

__all__ = ["CompressSummary", "compress"]


@dataclass
class CompressSummary:
    input: str
    output: str
    topic: str
    features_topic: str
    model: str
    model_hash: str
    quality: int
    effort: int = 0  # encoder refinement (Codec.encode's effort)
    keyframe_interval: int = DEFAULT_KEYFRAME_INTERVAL
    temporal: str = ""  # the encoder's note: on, or why every frame is a key frame
    frames: int = 0  # images converted
    keyframes: int = 0  # of them key frames (the rest P-frames)
    skipped: dict[str, int] = field(default_factory=dict)  # images not converted, by cause
    copied: int = 0  # other messages copied unchanged
    image_bytes: int = 0  # serialized source image messages
    features_bytes: int = 0  # serialized CompressedFeatures messages
    mean_bpp: float | None = None  # payload bits per pixel, mean over frames
    in_bytes: int = 0  # whole bag folders on disk
    out_bytes: int = 0
    seconds: float = 0.0
    unverified_chunks: int = 0  # input MCAP chunks without a CRC: damage in them went unnoticed

    @property
    def ratio(self) -> float | None:
        """Input bag size / output bag size (on disk)."""
        return self.in_bytes / self.out_bytes if self.out_bytes else None

    @property
    def image_ratio(self) -> float | None:
        """Image messages' bytes / features messages' bytes."""
        return self.image_bytes / self.features_bytes if self.features_bytes else None

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "ratio": self.ratio, "image_ratio": self.image_ratio}

    def __str__(self) -> str:
        skipped = ", ".join(f"{n} {c}" for c, n in sorted(self.skipped.items())) or "none"
        bpp = f"{self.mean_bpp:.3f}" if self.mean_bpp is not None else "n/a"
        ratio = f"{self.ratio:.1f}x" if self.ratio else "n/a"
        image_ratio = f"{self.image_ratio:.1f}x" if self.image_ratio else "n/a"
        return (
            f"{self.input} -> {self.output}\n"
            f"  {self.topic} -> {self.features_topic}: {self.frames} frames, skipped: {skipped}\n"
            f"  model {self.model} ({self.model_hash}), quality {self.quality}, effort {self.effort}, mean {bpp} bpp\n"
            f"  {self.keyframes} key frames, {self.frames - self.keyframes} P-frames; temporal mode {self.temporal}\n"
            f"  {self.copied} other messages copied\n"
            f"  bag {self.in_bytes:,} B -> {self.out_bytes:,} B ({ratio} smaller); "
            f"image messages {self.image_bytes:,} B -> {self.features_bytes:,} B ({image_ratio})\n"
            f"  {self.seconds:.1f} s{unverified_note(self.unverified_chunks)}"
        )


def _resolve_source_topic(types: dict[str, set[str]], topic: str) -> str:
    if topic not in types and COMPRESSED_IMAGE_TYPE in types.get(topic.rstrip("/") + "/compressed", set()):
        _log.info("no topic %s; using its CompressedImage topic %s/compressed", topic, topic)
        topic = topic.rstrip("/") + "/compressed"
    if topic not in types:
        found = ", ".join(image_topics(types)) or "none"
        raise ValueError(f"topic {topic} is not in the bag (image topics: {found})")
    wrong = types[topic] - set(IMAGE_TYPES)
    if wrong:
        raise ValueError(f"topic {topic} carries {', '.join(sorted(wrong))}, not sensor_msgs Image/CompressedImage")
    return topic


def _features_cdr(header: Any, result: Any) -> bytes:
    """The CompressedFeatures message of an encoded frame, with the source header unchanged."""
    try:
        msg = make_features_msg(
            stamp_ns=0,  # replaced by the source header, as it was
            frame_id=header.frame_id,
            codec=result.codec,
            model_hash=result.model_hash,
            quality=result.quality,
            height=result.height,
            width=result.width,
            encoding=result.encoding,
            data=result.data,
            frame_type=result.frame_type,
            frame_number=result.frame_number,
            reference_frame_number=result.reference_frame_number,
        )
        return serialize(dataclasses.replace(msg, header=header), MSG_TYPE)
    except Exception as exc:  # noqa: BLE001 - e.g. a NUL in frame_id or encoding: skip the frame
        raise Skip(BAD_HEADER, f"{type(exc).__name__}: {exc}") from None


def compress(
    in_bag: str | Path,
    out_bag: str | Path,
    topic: str = DEFAULT_TOPIC,
    model: str | None = None,
    quality: int | None = None,
    storage: str = "mcap",
    *,
    device: str = "cpu",
    overwrite: bool = False,
    progress: bool = True,
    codec: Codec | None = None,
    on_frame: Callable[[int], None] | None = None,
    keyframe_interval: int | None = None,
    effort: int = 0,
) -> CompressSummary:
    """Compress the images of `topic` in `in_bag` into a new bag `out_bag` (see module doc).

    `model` is a registry name (default: `imgcomp.codec.DEFAULT_MODEL`) loaded on `device`;
    pass a loaded `codec` instead to reuse one. `quality` defaults to the model's middle level.
    `keyframe_interval`: a key frame every that many frames, P-frames in between (0: key frames
    only; models without temporal tables send key frames only whatever it is).
    `effort` (0..3, default 0) spends encode time refining each frame's latents for fewer bits
    at the same quality (`Codec.encode`); the messages decode exactly as before.
    `on_frame(n)` is called after the n-th frame (0-based) was written; an exception it raises
    aborts the run the way a crash would (the tests use it). Raises ValueError for a missing or
    non-image topic or a features topic that already exists, FileExistsError for an existing
    `out_bag` without `overwrite`.
    """
    started = time.monotonic()
    in_bag, out_bag = Path(in_bag), Path(out_bag)
    check_paths(in_bag, out_bag)
    check_output(out_bag, overwrite)
    check_effort(effort)
    if keyframe_interval is None:  # the effort mode refines intra frames only
        keyframe_interval = 0 if effort else DEFAULT_KEYFRAME_INTERVAL
    if isinstance(keyframe_interval, bool) or not isinstance(keyframe_interval, int) or not 0 <= keyframe_interval <= 10_000:
        raise ValueError(f"keyframe_interval must be an integer in 0..10000, got {keyframe_interval!r}")
    if effort and keyframe_interval:
        raise ValueError("effort > 0 refines intra-only streams: leave keyframe_interval out or make it 0")
    if codec is not None and model is not None and model != codec.model_name:
        raise ValueError(f"model {model!r} disagrees with the given codec's {codec.model_name!r}")
    with open_reader(in_bag, "input bag") as reader:
        types = topic_types(reader)
        topic = _resolve_source_topic(types, topic)
        msgtype = COMPRESSED_IMAGE_TYPE if COMPRESSED_IMAGE_TYPE in types[topic] else IMAGE_TYPE
        out_topic = features_topic_for(topic, msgtype)
        if out_topic in types:
            raise ValueError(f"the bag already has a topic {out_topic}; compress writes its features there")
        # torch is imported only from here on: every error above comes at once
        from imgcomp.codec import DEFAULT_MODEL
        from imgcomp.stream.encoder_core import EncoderCore
        from imgcomp.stream.rejections import Rejection

        if codec is None:
            codec = default_codec_factory(device)(model or DEFAULT_MODEL)
        loaded = codec
        if effort:
            loaded.check_effort(effort)  # a model without an entropy model: one error, not a skip per frame
        core = EncoderCore(lambda _name: loaded, model=loaded.model_name, quality=quality,
                           keyframe_interval=keyframe_interval, effort=effort)
        summary = CompressSummary(
            str(in_bag), str(out_bag), topic, out_topic, codec.model_name, codec.model_hash, core.quality,
            effort, keyframe_interval, core.diagnostics()["temporal"],
        )
        skips = SkipLog("compress")
        bpp_sum = 0.0
        with open_output(out_bag, storage, overwrite) as writer:
            messages = reader.messages()
            for connection, timestamp, raw in progress_bar(messages, reader.message_count, "compress", progress):
                if connection.topic != topic:
                    writer.copy_raw(connection, timestamp, raw)
                    summary.copied += 1
                    continue
                try:
                    header, fields = image_fields(connection.msgtype, raw)
                    result = core.process(fields)
                    if isinstance(result, Rejection):
                        raise Skip(result.cause, result.message)
                    out_raw = _features_cdr(header, result)
                except Skip as skip:
                    skips.record(skip.cause, str(skip), topic, timestamp)
                    continue
                writer.write_raw(out_topic, MSG_TYPE, timestamp, out_raw, like=connection)
                summary.image_bytes += len(raw)
                summary.features_bytes += len(out_raw)
                bpp_sum += 8.0 * len(result.data) / (result.height * result.width)
                summary.frames += 1
                summary.keyframes += result.frame_type == 0
                if on_frame is not None:
                    on_frame(summary.frames - 1)
    summary.skipped = dict(skips.counts)
    summary.mean_bpp = bpp_sum / summary.frames if summary.frames else None
    summary.unverified_chunks = reader.check.unverified_chunks
    summary.in_bytes, summary.out_bytes = bag_size_bytes(in_bag), bag_size_bytes(out_bag)
    summary.seconds = time.monotonic() - started
    return summary
