"""What the `imgcomp bag` commands share: topic naming, the skip log, reading an image message
(raw or JPEG/PNG CompressedImage) as Image fields, and loading codecs on a checked device."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import cv2
import numpy as np
from tqdm import tqdm

from imgcomp.image import SUPPORTED_ENCODINGS, ImageEncodingError, image_to_msg_fields
from imgcomp.rosbag.io import BagReader
from imgcomp.rosbag.messages import IMAGE_TYPE, deserialize

if TYPE_CHECKING:  # torch is imported lazily: `info` needs no model
    from imgcomp.codec import Codec
    from imgcomp.stream.fields import ImageFields

__all__ = [
    "BAD_COMPRESSED_IMAGE", "BAD_HEADER", "COMPRESSED_IMAGE_TYPE", "DECODED_SUFFIX", "DEFAULT_TOPIC",
    "FEATURES_SUFFIX", "IMAGE_TYPES", "MALFORMED_MESSAGE", "UNSUPPORTED_FORMAT", "Skip", "SkipLog",
    "check_device", "check_paths", "decode_compressed_image", "default_codec_factory", "features_topic_for",
    "image_fields", "image_topics", "mean_or_none", "progress_bar", "topic_types", "unverified_note",
]

DEFAULT_TOPIC = "/camera/image_raw"
FEATURES_SUFFIX = "/imgcomp"
DECODED_SUFFIX = "/decoded"
COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE)

# Skip causes of the bag tools themselves (the cores add theirs: imgcomp.stream.rejections).
MALFORMED_MESSAGE = "malformed_message"  # CDR bytes that do not parse as the connection's type
UNSUPPORTED_FORMAT = "unsupported_format"  # CompressedImage that is neither JPEG nor PNG
BAD_COMPRESSED_IMAGE = "bad_compressed_image"  # JPEG/PNG that OpenCV cannot decode
BAD_HEADER = "bad_header"  # fields the features message cannot carry (a NUL in frame_id)

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

_log = logging.getLogger("imgcomp.rosbag")
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Skip(Exception):
    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause


class SkipLog:
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


def check_paths(in_bag: Path, out_bag: Path) -> None:
    src, dst = in_bag.resolve(), out_bag.resolve()
    if src == dst or src in dst.parents or dst in src.parents:
        raise ValueError(f"output {out_bag} must not be, contain or lie inside the input {in_bag}")


def topic_types(reader: BagReader) -> dict[str, set[str]]:
    types: dict[str, set[str]] = defaultdict(set)
    for c in reader.connections:
        types[c.topic].add(c.msgtype)
    return types


def image_topics(types: dict[str, set[str]]) -> list[str]:
    return sorted(t for t, m in types.items() if m & set(IMAGE_TYPES))


def progress_bar(iterable: Any, total: int, desc: str, enabled: bool) -> Any:
    return tqdm(iterable, total=total, desc=desc, unit="msg", disable=not enabled, dynamic_ncols=True)


def decode_compressed_image(msg: Any) -> ImageFields:
    """A JPEG or PNG `sensor_msgs/CompressedImage` as Image fields, in the encoding it was
    made from when its `format` says so ("rgb8; jpeg compressed bgr8"), else bgr8 / mono8."""
    from imgcomp.stream.fields import ImageFields

    data = np.asarray(msg.data, dtype=np.uint8)
    head = data[:8].tobytes()
    if not (head.startswith(_JPEG_MAGIC) or head.startswith(_PNG_MAGIC)):
        raise Skip(UNSUPPORTED_FORMAT, f"CompressedImage format {msg.format!r} holds neither JPEG nor PNG data")
    pixels = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.size == 0:
        raise Skip(BAD_COMPRESSED_IMAGE, f"OpenCV cannot decode the {len(data)}-byte {msg.format!r} image")
    if pixels.dtype == np.uint16:  # 16-bit PNG: the codec is 8-bit (as imgcomp.image does for mono16)
        pixels = (pixels >> 8).astype(np.uint8)
    if pixels.dtype != np.uint8:
        raise Skip(UNSUPPORTED_FORMAT, f"CompressedImage decodes to {pixels.dtype}, not 8 or 16 bit")
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


def image_fields(msgtype: str, raw: bytes | memoryview) -> tuple[Any, ImageFields]:
    """(header, Image fields) of a raw Image or CompressedImage message; `Skip` if unusable."""
    from imgcomp.stream.fields import ImageFields

    try:
        msg = deserialize(raw, msgtype)
    except Exception as exc:  # noqa: BLE001 - rosbags raises several types for bad CDR
        raise Skip(MALFORMED_MESSAGE, f"{type(exc).__name__}: {exc}") from None
    if msgtype == COMPRESSED_IMAGE_TYPE:
        return msg.header, decode_compressed_image(msg)
    return msg.header, ImageFields.from_msg(msg)


def mean_or_none(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def check_device(device: str) -> None:
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


def default_codec_factory(device: str) -> Callable[[str], Codec]:
    check_device(device)

    def load(model: str) -> Codec:
        from imgcomp.codec import Codec
        from imgcomp.models.registry import WeightsError

        try:
            return Codec(model, device=device)
        except WeightsError as exc:  # unknown model, missing or altered weights: the user's to fix
            raise ValueError(str(exc)) from None

    return load


def unverified_note(chunks: int) -> str:
    if not chunks:
        return ""
    return (
        f"\n  note: {chunks} input MCAP chunk(s) carry no CRC (written by rosbags?): "
        "damage in them cannot be detected"
    )
