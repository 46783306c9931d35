"""`imgcomp bag`: convert rosbag2 folders between raw images and compressed features, without ROS.

Works on rosbag2 folders in MCAP or SQLite3 storage through `rosbags` (via `imgcomp.bag`).

* `compress(IN, OUT, topic)` - every `sensor_msgs/Image` of `topic` (or `sensor_msgs/
  CompressedImage` holding JPEG or PNG, decoded with OpenCV) becomes an
  `imgcomp_msgs/CompressedFeatures` on `features_topic_for(topic)`, with the same bag timestamp
  and header; every other message is copied byte for byte with its connection's type,
  definition, type hash and QoS profiles. The source image topic is not copied.
* `decompress(IN, OUT)` - the reverse: each CompressedFeatures topic `<t>/imgcomp` becomes a
  `sensor_msgs/Image` topic `<t>` (`<t>/decoded` if the bag already has `<t>`), with the
  source's height, width, encoding and header restored.
* `info(BAG)` - per CompressedFeatures topic: frames, models, quality levels, mean bits per
  pixel and bitrate.
* `evaluate(COMPRESSED, RAW)` (alias `eval`) - PSNR / MS-SSIM of the decoded frames against
  the raw bag they came from, matched by topic and header stamp.

Per-frame conversion is the nodes' own (`imgcomp.nodes_core.EncoderCore` / `DecoderCore`), so
a bag converts exactly as a live stream would. A frame that cannot be converted (bad
encoding, truncated data, corrupt JPEG, corrupt payload) is skipped and counted by cause, with
one warning per cause; it never aborts the bag.

Input is read through `imgcomp.bag.open_reader`: a bag that is missing, empty, truncated,
without metadata or with an MCAP chunk failing its CRC is refused with a one-line
`imgcomp.bag.BagError` before any model is loaded or anything written, and a failure while
reading becomes one too. Output is written through `imgcomp.bag.open_output`: into
`<OUT>.partial/` and moved to `OUT` only once complete, so an interrupted run leaves `OUT`
absent (or, with `overwrite`, the old `OUT` intact) and the input untouched; the next run
recovers what a killed one left. Messages are streamed one at a time, so memory does not grow
with the bag.

CompressedImage topics follow image_transport's naming: the features of
`/cam/image_raw/compressed` go to `/cam/image_raw/imgcomp`, so decompressing gives back a raw
`sensor_msgs/Image` on `/cam/image_raw` (not an Image on a topic called `.../compressed`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from heapq import merge
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import cv2
import numpy as np
from tqdm import tqdm

from imgcomp.bag import BagReader, bag_size_bytes, check_output, open_output, open_reader
from imgcomp.image import SUPPORTED_ENCODINGS, ImageEncodingError, image_from_msg_fields, image_to_msg_fields
from imgcomp.rosmsg import IMAGE_TYPE, MSG_TYPE, deserialize, make_features_msg, serialize, stamp_to_ns, typestore

if TYPE_CHECKING:  # torch is imported lazily: `info` needs no model
    from imgcomp.codec import Codec
    from imgcomp.nodes_core.fields import ImageFields

__all__ = [
    "COMPRESSED_IMAGE_TYPE",
    "DEFAULT_TOPIC",
    "FEATURES_SUFFIX",
    "CompressSummary",
    "DecompressSummary",
    "compress",
    "decompress",
    "eval",
    "evaluate",
    "features_topic_for",
    "format_info",
    "info",
]

DEFAULT_TOPIC = "/camera/image_raw"
FEATURES_SUFFIX = "/imgcomp"
DECODED_SUFFIX = "/decoded"
COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE)

# Skip causes of the bag tools themselves (the cores add theirs: imgcomp.nodes_core.rejections).
MALFORMED_MESSAGE = "malformed_message"  # CDR bytes that do not parse as the connection's type
UNSUPPORTED_FORMAT = "unsupported_format"  # CompressedImage that is neither JPEG nor PNG
BAD_COMPRESSED_IMAGE = "bad_compressed_image"  # JPEG/PNG that OpenCV cannot decode
BAD_HEADER = "bad_header"  # fields the features message cannot carry (a NUL in frame_id)

_log = logging.getLogger(__name__)
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_MS_SSIM_MIN_SIDE = 161  # pytorch_msssim's 5 scales with an 11x11 window need a short side > 160


# ------------------------------------------------------------------------------------ helpers
class _Skip(Exception):
    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause


class _SkipLog:
    """Counts skipped frames by cause; logs the first of each cause only."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.counts: Counter[str] = Counter()

    def record(self, cause: str, message: str, topic: str, timestamp_ns: int) -> None:
        if not self.counts[cause]:
            _log.warning(
                "%s: skipped a frame on %s at bag time %d: %s: %s (further %s frames are only counted)",
                self.what, topic, timestamp_ns, cause, message, cause,
            )
        self.counts[cause] += 1


def features_topic_for(topic: str, msgtype: str = IMAGE_TYPE) -> str:
    """Where `compress` writes the features of an image topic: `<topic>/imgcomp`, or for a
    CompressedImage topic `<base>/compressed`, `<base>/imgcomp` (image_transport style)."""
    if msgtype == COMPRESSED_IMAGE_TYPE and topic.endswith("/compressed") and len(topic) > len("/compressed"):
        topic = topic[: -len("/compressed")]
    return topic.rstrip("/") + FEATURES_SUFFIX


def _check_paths(in_bag: Path, out_bag: Path) -> None:
    src, dst = in_bag.resolve(), out_bag.resolve()
    if src == dst or src in dst.parents or dst in src.parents:
        raise ValueError(f"output {out_bag} must not be, contain or lie inside the input {in_bag}")


def _topic_types(reader: BagReader) -> dict[str, set[str]]:
    types: dict[str, set[str]] = defaultdict(set)
    for c in reader.connections:
        types[c.topic].add(c.msgtype)
    return types


def _image_topics(types: dict[str, set[str]]) -> list[str]:
    return sorted(t for t, m in types.items() if m & set(IMAGE_TYPES))


def _progress(iterable: Any, total: int, desc: str, enabled: bool) -> Any:
    return tqdm(iterable, total=total, desc=desc, unit="msg", disable=not enabled, dynamic_ncols=True)


def _decode_compressed_image(msg: Any) -> ImageFields:
    """A JPEG or PNG `sensor_msgs/CompressedImage` as Image fields, in the encoding it was
    made from when its `format` says so ("rgb8; jpeg compressed bgr8"), else bgr8 / mono8."""
    from imgcomp.nodes_core.fields import ImageFields

    data = np.asarray(msg.data, dtype=np.uint8)
    head = data[:8].tobytes()
    if not (head.startswith(_JPEG_MAGIC) or head.startswith(_PNG_MAGIC)):
        raise _Skip(UNSUPPORTED_FORMAT, f"CompressedImage format {msg.format!r} holds neither JPEG nor PNG data")
    pixels = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.size == 0:
        raise _Skip(BAD_COMPRESSED_IMAGE, f"OpenCV cannot decode the {len(data)}-byte {msg.format!r} image")
    if pixels.dtype == np.uint16:  # 16-bit PNG: the codec is 8-bit (as imgcomp.image does for mono16)
        pixels = (pixels >> 8).astype(np.uint8)
    if pixels.dtype != np.uint8:
        raise _Skip(UNSUPPORTED_FORMAT, f"CompressedImage decodes to {pixels.dtype}, not 8 or 16 bit")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim == 2:
        image, default = pixels, "mono8"
    elif pixels.shape[2] == 3:
        image, default = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB), "bgr8"
    else:
        image, default = cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGB), "bgra8"
    prefix = str(msg.format).split(";")[0].strip()
    encoding = prefix if ";" in str(msg.format) and prefix in SUPPORTED_ENCODINGS else default
    try:
        data_out, height, width, encoding, step = image_to_msg_fields(image, encoding)
    except ImageEncodingError:  # e.g. yuv422 with an odd width: keep OpenCV's own layout
        data_out, height, width, encoding, step = image_to_msg_fields(image, default)
    return ImageFields(data_out, height, width, encoding, step, 0, msg.header.stamp, msg.header.frame_id)


def _image_fields(msgtype: str, raw: bytes | memoryview) -> tuple[Any, ImageFields]:
    """(header, Image fields) of a raw Image or CompressedImage message; `_Skip` if unusable."""
    from imgcomp.nodes_core.fields import ImageFields

    try:
        msg = deserialize(raw, msgtype)
    except Exception as exc:  # noqa: BLE001 - rosbags raises several types for bad CDR
        raise _Skip(MALFORMED_MESSAGE, f"{type(exc).__name__}: {exc}") from None
    if msgtype == COMPRESSED_IMAGE_TYPE:
        return msg.header, _decode_compressed_image(msg)
    return msg.header, ImageFields.from_msg(msg)


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


class _CodecCache:
    """Loaded codecs by model name (the payload names its model)."""

    def __init__(self, factory: Callable[[str], Codec]) -> None:
        self._factory = factory
        self._codecs: dict[str, Codec] = {}

    def __call__(self, model: str) -> Codec:
        if model not in self._codecs:
            self._codecs[model] = self._factory(model)
        return self._codecs[model]


def _check_device(device: str) -> None:
    """A one-line ValueError for a device torch cannot use here (before any model loads)."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"device {device!r} is not a torch device (cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: torch sees no CUDA GPU on this machine")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r}: torch sees {torch.cuda.device_count()} CUDA GPU(s)")


def _default_factory(device: str) -> Callable[[str], Codec]:
    _check_device(device)

    def load(model: str) -> Codec:
        from imgcomp.codec import Codec
        from imgcomp.models.registry import WeightsError

        try:
            return Codec(model, device=device)
        except WeightsError as exc:  # unknown model, missing or altered weights: the user's to fix
            raise ValueError(str(exc)) from None

    return load


# ------------------------------------------------------------------------------------ compress
@dataclass
class CompressSummary:
    input: str
    output: str
    topic: str
    features_topic: str
    model: str
    model_hash: str
    quality: int
    frames: int = 0  # images converted
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
            f"  model {self.model} ({self.model_hash}), quality {self.quality}, mean {bpp} bpp\n"
            f"  {self.copied} other messages copied\n"
            f"  bag {self.in_bytes:,} B -> {self.out_bytes:,} B ({ratio} smaller); "
            f"image messages {self.image_bytes:,} B -> {self.features_bytes:,} B ({image_ratio})\n"
            f"  {self.seconds:.1f} s{_unverified_note(self.unverified_chunks)}"
        )


def _unverified_note(chunks: int) -> str:
    if not chunks:
        return ""
    return (
        f"\n  note: {chunks} input MCAP chunk(s) carry no CRC (written by rosbags?): "
        "damage in them cannot be detected"
    )


def _resolve_source_topic(types: dict[str, set[str]], topic: str) -> str:
    if topic not in types and COMPRESSED_IMAGE_TYPE in types.get(topic.rstrip("/") + "/compressed", set()):
        _log.info("no topic %s; using its CompressedImage topic %s/compressed", topic, topic)
        topic = topic.rstrip("/") + "/compressed"
    if topic not in types:
        found = ", ".join(_image_topics(types)) or "none"
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
            frame_number=result.frame_number,
        )
        return serialize(dataclasses.replace(msg, header=header), MSG_TYPE)
    except Exception as exc:  # noqa: BLE001 - e.g. a NUL in frame_id or encoding: skip the frame
        raise _Skip(BAD_HEADER, f"{type(exc).__name__}: {exc}") from None


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
) -> CompressSummary:
    """Compress the images of `topic` in `in_bag` into a new bag `out_bag` (see module doc).

    `model` is a registry name (default: `imgcomp.codec.DEFAULT_MODEL`) loaded on `device`;
    pass a loaded `codec` instead to reuse one. `quality` defaults to the model's middle level.
    `on_frame(n)` is called after the n-th frame (0-based) was written; an exception it raises
    aborts the run the way a crash would (the tests use it). Raises ValueError for a missing or
    non-image topic or a features topic that already exists, FileExistsError for an existing
    `out_bag` without `overwrite`.
    """
    started = time.monotonic()
    in_bag, out_bag = Path(in_bag), Path(out_bag)
    _check_paths(in_bag, out_bag)
    check_output(out_bag, overwrite)
    if codec is not None and model is not None and model != codec.model_name:
        raise ValueError(f"model {model!r} disagrees with the given codec's {codec.model_name!r}")
    with open_reader(in_bag, "input bag") as reader:
        types = _topic_types(reader)
        topic = _resolve_source_topic(types, topic)
        msgtype = COMPRESSED_IMAGE_TYPE if COMPRESSED_IMAGE_TYPE in types[topic] else IMAGE_TYPE
        out_topic = features_topic_for(topic, msgtype)
        if out_topic in types:
            raise ValueError(f"the bag already has a topic {out_topic}; compress writes its features there")
        # torch is imported only from here on: every error above comes at once
        from imgcomp.codec import DEFAULT_MODEL
        from imgcomp.nodes_core.encoder_core import EncoderCore
        from imgcomp.nodes_core.rejections import Rejection

        if codec is None:
            codec = _default_factory(device)(model or DEFAULT_MODEL)
        loaded = codec
        core = EncoderCore(lambda _name: loaded, model=loaded.model_name, quality=quality)
        summary = CompressSummary(
            str(in_bag), str(out_bag), topic, out_topic, codec.model_name, codec.model_hash, core.quality
        )
        skips = _SkipLog("compress")
        bpp_sum = 0.0
        with open_output(out_bag, storage, overwrite) as writer:
            messages = reader.messages()
            for connection, timestamp, raw in _progress(messages, reader.message_count, "compress", progress):
                if connection.topic != topic:
                    writer.copy_raw(connection, timestamp, raw)
                    summary.copied += 1
                    continue
                try:
                    header, fields = _image_fields(connection.msgtype, raw)
                    result = core.process(fields)
                    if isinstance(result, Rejection):
                        raise _Skip(result.cause, result.message)
                    out_raw = _features_cdr(header, result)
                except _Skip as skip:
                    skips.record(skip.cause, str(skip), topic, timestamp)
                    continue
                writer.write_raw(out_topic, MSG_TYPE, timestamp, out_raw, like=connection)
                summary.image_bytes += len(raw)
                summary.features_bytes += len(out_raw)
                bpp_sum += 8.0 * len(result.data) / (result.height * result.width)
                summary.frames += 1
                if on_frame is not None:
                    on_frame(summary.frames - 1)
    summary.skipped = dict(skips.counts)
    summary.mean_bpp = bpp_sum / summary.frames if summary.frames else None
    summary.unverified_chunks = reader.check.unverified_chunks
    summary.in_bytes, summary.out_bytes = bag_size_bytes(in_bag), bag_size_bytes(out_bag)
    summary.seconds = time.monotonic() - started
    return summary


# ---------------------------------------------------------------------------------- decompress
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
            + _unverified_note(self.unverified_chunks),
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
    _check_paths(in_bag, out_bag)
    check_output(out_bag, overwrite)
    image_cls = typestore().types[IMAGE_TYPE]
    with open_reader(in_bag, "input bag") as reader:
        mapping = _decoded_topics(_topic_types(reader))
        from imgcomp.nodes_core.decoder_core import DecoderCore  # torch: after the input checks
        from imgcomp.nodes_core.fields import FeaturesFields
        from imgcomp.nodes_core.rejections import Rejection

        factory = _CodecCache(codec_factory or _default_factory(device))
        core = DecoderCore(factory, model=None)
        summary = DecompressSummary(str(in_bag), str(out_bag), mapping)
        skips = _SkipLog("decompress")
        models: Counter[str] = Counter()
        with open_output(out_bag, storage, overwrite) as writer:
            messages = reader.messages()
            for connection, timestamp, raw in _progress(messages, reader.message_count, "decompress", progress):
                target = mapping.get(connection.topic)
                if target is None or connection.msgtype != MSG_TYPE:
                    writer.copy_raw(connection, timestamp, raw)
                    summary.copied += 1
                    continue
                try:
                    try:
                        msg = deserialize(raw, MSG_TYPE)
                    except Exception as exc:  # noqa: BLE001 - rosbags raises several types for bad CDR
                        raise _Skip(MALFORMED_MESSAGE, f"{type(exc).__name__}: {exc}") from None
                    result = core.process(FeaturesFields.from_msg(msg))
                    if isinstance(result, Rejection):
                        raise _Skip(result.cause, result.message)
                except _Skip as skip:
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


# ---------------------------------------------------------------------------------------- info
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
                 "malformed": 0},
            )
        for connection, timestamp, raw in reader.messages(connections=features):
            s = stats[connection.topic]
            try:
                msg = deserialize(raw, MSG_TYPE)
            except Exception:  # noqa: BLE001 - counted, reported
                s["malformed"] += 1
                continue
            s["frames"] += 1
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
            f"  bitrate    {fmt(s['kbps'], '.1f')} kbit/s at {fmt(s['fps'], '.2f')} fps "
            f"({s['payload_bytes']:,} B over {s['duration_s']:.2f} s)",
        ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- eval
@dataclass
class _Item:
    timestamp: int
    side: int  # 0: compressed, 1: raw
    key: tuple[str, int]  # (features topic, header stamp ns)
    msgtype: str
    raw: bytes | memoryview  # a view into the reader's buffer until `held()` copies it

    def held(self) -> _Item:
        return dataclasses.replace(self, raw=bytes(self.raw))


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
    failed = _SkipLog("eval")
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
        factory = _CodecCache(codec_factory or _default_factory(device))

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
            waiting = pending[1 - item.side].get(item.key)
            if waiting:
                partner = waiting.popleft()
                if not waiting:
                    del pending[1 - item.side][item.key]
                pair = (item, partner) if item.side == 0 else (partner, item)
                row = _evaluate_pair(*pair, factory, failed, ms_ssim)
                if row is not None:
                    frames.append(row)
                bar.update(1)
            elif held[item.side][item.key] < both[item.key]:  # else it has no partner: drop it
                held[item.side][item.key] += 1
                pending[item.side][item.key].append(item.held())
        bar.close()

    def means(rows: list[dict[str, Any]]) -> dict[str, Any]:
        psnrs = [r["psnr_db"] for r in rows]
        finite = [p for p in psnrs if math.isfinite(p)]
        return {
            "frames": len(rows),
            "psnr_db": _mean(finite) if finite or not psnrs else math.inf,
            "ms_ssim": _mean([r["ms_ssim"] for r in rows if r["ms_ssim"] is not None]),
            "bpp": _mean([r["bpp"] for r in rows]),
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


eval = evaluate  # noqa: A001 - the name of the CLI command


def _evaluate_pair(
    comp: _Item, ref: _Item, factory: _CodecCache, failed: _SkipLog, with_ms_ssim: bool
) -> dict[str, Any] | None:
    topic, stamp = comp.key
    try:
        msg = deserialize(comp.raw, MSG_TYPE)
        _, fields = _image_fields(ref.msgtype, ref.raw)
        try:
            reference = image_from_msg_fields(
                fields.data, fields.height, fields.width, fields.encoding, fields.step, fields.is_bigendian
            )
        except ImageEncodingError as exc:
            raise _Skip("bad_reference", str(exc)) from None
        try:
            codec = factory(msg.codec)
        except Exception as exc:  # noqa: BLE001 - unknown model, missing weights
            raise _Skip("model_unavailable", f"{msg.codec}: {exc}") from None
        try:
            decoded = codec.decode(bytes(msg.data))
        except Exception as exc:  # noqa: BLE001 - corrupt payload, model mismatch
            raise _Skip("decode_failed", f"{type(exc).__name__}: {exc}") from None
        if decoded.shape != reference.shape:
            raise _Skip("shape_mismatch", f"decoded {decoded.shape} vs raw {reference.shape}")
        value, msssim = _metrics(reference, decoded, with_ms_ssim)
    except _Skip as skip:
        failed.record(skip.cause, str(skip), topic, comp.timestamp)
        return None
    height, width = reference.shape[:2]
    return {
        "topic": topic,
        "stamp_ns": stamp,
        "frame_id": msg.header.frame_id,
        "bpp": 8.0 * len(msg.data) / (height * width),
        "psnr_db": value,
        "ms_ssim": msssim,
    }
