"""The plain field values the cores consume and produce, independent of any message library.

`ImageFields` mirrors `sensor_msgs/msg/Image` and `FeaturesFields` mirrors
`imgcomp_msgs/msg/CompressedFeatures` (header split into `stamp` and `frame_id`). `stamp` is
passed through untouched: a `builtin_interfaces/msg/Time` of rclpy or of rosbags, whatever
the message carried. The `from_msg` constructors read attributes only, so they work on rclpy
messages (where `uint8[]` is an `array.array`) and on rosbags messages (a numpy array).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["FeaturesFields", "ImageFields", "header_disagreement"]


@dataclass(frozen=True)
class ImageFields:
    data: Any  # bytes-like or 1-D uint8 array (not copied)
    height: int
    width: int
    encoding: str
    step: int
    is_bigendian: int = 0
    stamp: Any = None
    frame_id: str = ""

    @classmethod
    def from_msg(cls, msg: Any) -> "ImageFields":
        """From a sensor_msgs/Image of rclpy or rosbags."""
        return cls(
            data=msg.data,
            height=msg.height,
            width=msg.width,
            encoding=msg.encoding,
            step=msg.step,
            is_bigendian=msg.is_bigendian,
            stamp=msg.header.stamp,
            frame_id=msg.header.frame_id,
        )


@dataclass(frozen=True)
class FeaturesFields:
    data: bytes  # the imgcomp bitstream container
    codec: str
    model_hash: str
    quality: int
    height: int
    width: int
    encoding: str
    frame_type: int = 0
    frame_number: int = 0
    reference_frame_number: int = 0
    stamp: Any = None
    frame_id: str = ""

    @classmethod
    def from_msg(cls, msg: Any) -> "FeaturesFields":
        """From an imgcomp_msgs/CompressedFeatures of rclpy or rosbags (data is copied)."""
        return cls(
            data=bytes(msg.data),
            codec=msg.codec,
            model_hash=msg.model_hash,
            quality=int(msg.quality),
            height=int(msg.height),
            width=int(msg.width),
            encoding=msg.encoding,
            frame_type=int(msg.frame_type),
            frame_number=int(msg.frame_number),
            reference_frame_number=int(msg.reference_frame_number),
            stamp=msg.header.stamp,
            frame_id=msg.header.frame_id,
        )


def header_disagreement(fields: FeaturesFields, header: Any) -> str | None:
    """Why the message fields contradict the payload's own header (an imgcomp.bitstream
    FrameHeader), or None when they agree."""
    pairs = (
        ("codec", fields.codec, header.model),
        ("model_hash", fields.model_hash, header.model_hash),
        ("height", fields.height, header.height),
        ("width", fields.width, header.width),
        ("encoding", fields.encoding, header.encoding),
        ("quality", fields.quality, header.quality),
        ("frame_type", fields.frame_type, header.frame_type),
    )
    wrong = [f"{name}={mine!r} but the payload says {theirs!r}" for name, mine, theirs in pairs if mine != theirs]
    return "message fields disagree with the payload header: " + "; ".join(wrong) if wrong else None
