"""ROS 2 messages without ROS: build, serialize and parse them with ``rosbags``.

The message definition ``imgcomp_msgs/msg/CompressedFeatures`` ships twice: in the
``imgcomp_msgs`` interface package (built by rosidl where ROS 2 is installed) and, as a
byte-identical copy, in ``imgcomp/msg/`` so that pip users get it too.  This module
registers that copy in a ``rosbags`` typestore (ROS 2 Humble's standard types plus ours),
which is an independent implementation of ROS 2's CDR wire format.  Bag tools and tests use
it; the ROS nodes use the rosidl-generated classes instead, which serialize to the same
bytes.

It never imports rclpy.  Messages built here are rosbags dataclasses with the field names of
the ROS messages, so code that only reads fields (``stamp_to_ns``, ``imgcomp.image``) works
on either kind.

rosbags quirks handled here:

* ``uint8[]`` fields must be numpy ``uint8`` arrays (``bytes`` fails inside the serializer
  with an ``AttributeError``), so payloads are wrapped with ``np.frombuffer``.
* Deserialized ``uint8[]`` fields are numpy views into the raw buffer (read-only when the
  buffer is ``bytes``); use ``bytes(msg.data)`` or ``msg.data.copy()`` to keep them.
* The serializer packs integers with ``struct``, which reports an out-of-range value as a
  bare ``struct.error``; the builders below check ranges first and raise ``ValueError``.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any, Union

import numpy as np
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

__all__ = [
    "FRAME_KEY",
    "FRAME_PREDICTED",
    "IMAGE_TYPE",
    "MSG_TYPE",
    "deserialize",
    "make_features_msg",
    "make_image_msg",
    "msg_definition",
    "serialize",
    "stamp_to_ns",
    "typestore",
]

MSG_TYPE = "imgcomp_msgs/msg/CompressedFeatures"
IMAGE_TYPE = "sensor_msgs/msg/Image"

FRAME_KEY = 0
FRAME_PREDICTED = 1

_MSG_FILE = "CompressedFeatures.msg"
_UINT8_MAX = 2**8 - 1
_UINT32_MAX = 2**32 - 1
_UINT64_MAX = 2**64 - 1
_NS_PER_S = 1_000_000_000
_MAX_STAMP_NS = (2**31 - 1) * _NS_PER_S + _NS_PER_S - 1  # builtin_interfaces/Time.sec is int32

# Channels and sample type of the encodings whose layout is fixed; the others
# (yuv422, bayer_*, ...) are passed through as given.  imgcomp.image owns their meaning.
_KNOWN_LAYOUTS: dict[str, tuple[int, np.dtype]] = {
    "rgb8": (3, np.dtype(np.uint8)),
    "bgr8": (3, np.dtype(np.uint8)),
    "rgba8": (4, np.dtype(np.uint8)),
    "bgra8": (4, np.dtype(np.uint8)),
    "mono8": (1, np.dtype(np.uint8)),
    "8UC1": (1, np.dtype(np.uint8)),
    "8UC3": (3, np.dtype(np.uint8)),
    "mono16": (1, np.dtype(np.uint16)),
    "16UC1": (1, np.dtype(np.uint16)),
}

BytesLike = Union[bytes, bytearray, memoryview, np.ndarray]


def msg_definition() -> str:
    """Return the text of ``CompressedFeatures.msg`` as shipped in ``imgcomp/msg/``."""
    return (resources.files("imgcomp") / "msg" / _MSG_FILE).read_text(encoding="utf-8")


@functools.lru_cache(maxsize=None)
def typestore() -> Typestore:
    """Return the shared typestore: ROS 2 Humble's types plus ``MSG_TYPE``.

    rosbags' msg parser accepts the file as rosidl does (constants, trailing comments,
    ``std_msgs/Header`` without ``msg/``), so it is registered unchanged.
    """
    store = get_typestore(Stores.ROS2_HUMBLE)
    store.register(get_types_from_msg(msg_definition(), MSG_TYPE))
    return store


def _check_int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not low <= int(value) <= high:
        raise ValueError(f"{name}={value} is outside [{low}, {high}]")
    return int(value)


def _check_str(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if "\x00" in value:
        raise ValueError(f"{name} must not contain NUL characters")
    return value


def _header(stamp_ns: int, frame_id: str) -> Any:
    stamp_ns = _check_int("stamp_ns", stamp_ns, 0, _MAX_STAMP_NS)
    sec, nanosec = divmod(stamp_ns, _NS_PER_S)
    types = typestore().types
    return types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
        frame_id=_check_str("frame_id", frame_id),
    )


def stamp_to_ns(header: Any) -> int:
    """Nanoseconds since the epoch of a ``std_msgs/Header`` (rosbags or rclpy message)."""
    return int(header.stamp.sec) * _NS_PER_S + int(header.stamp.nanosec)


def _as_uint8_array(data: BytesLike) -> np.ndarray:
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8 or data.ndim != 1:
            raise TypeError(f"data array must be 1-D uint8, got {data.ndim}-D {data.dtype}")
        return data
    if isinstance(data, (bytes, bytearray, memoryview)):
        return np.frombuffer(data, dtype=np.uint8)
    raise TypeError(f"data must be bytes-like or a uint8 array, got {type(data).__name__}")


def make_features_msg(
    *,
    stamp_ns: int,
    frame_id: str,
    codec: str,
    model_hash: str,
    quality: int,
    height: int,
    width: int,
    encoding: str,
    data: BytesLike,
    frame_type: int = FRAME_KEY,
    frame_number: int = 0,
    reference_frame_number: int | None = None,
) -> Any:
    """Build an ``imgcomp_msgs/msg/CompressedFeatures`` (a rosbags message object).

    ``frame_number`` and ``reference_frame_number`` wrap modulo 2**32, so a node may pass an
    unbounded frame counter.  ``reference_frame_number`` defaults to ``frame_number``, as the
    message asks for key frames.  ``data`` is wrapped, not copied.
    """
    frame_type = _check_int("frame_type", frame_type, FRAME_KEY, FRAME_PREDICTED)
    frame_number = _check_int("frame_number", frame_number, 0, _UINT64_MAX) & _UINT32_MAX
    if reference_frame_number is None:
        reference_frame_number = frame_number
    reference_frame_number = (
        _check_int("reference_frame_number", reference_frame_number, 0, _UINT64_MAX) & _UINT32_MAX
    )
    cls = typestore().types[MSG_TYPE]
    return cls(
        header=_header(stamp_ns, frame_id),
        codec=_check_str("codec", codec),
        model_hash=_check_str("model_hash", model_hash),
        quality=_check_int("quality", quality, 0, _UINT8_MAX),
        height=_check_int("height", height, 0, _UINT32_MAX),
        width=_check_int("width", width, 0, _UINT32_MAX),
        encoding=_check_str("encoding", encoding),
        frame_type=frame_type,
        frame_number=frame_number,
        reference_frame_number=reference_frame_number,
        data=_as_uint8_array(data),
    )


def make_image_msg(stamp_ns: int, frame_id: str, image: np.ndarray, encoding: str) -> Any:
    """Build a ``sensor_msgs/msg/Image`` (rosbags message object) from an array.

    ``image`` is ``(H, W)`` or ``(H, W, C)``, uint8 or uint16.  Rows are packed
    (``step = width * channels * bytes``) and samples little-endian (``is_bigendian = 0``).
    For the fixed-layout encodings (rgb8, bgr8, rgba8, bgra8, mono8, mono16, 8UC1, 8UC3,
    16UC1) channels and sample type must match the encoding.
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype.kind != "u" or image.dtype.itemsize not in (1, 2):
        raise TypeError(f"image must be uint8 or uint16, got {image.dtype}")
    sample = np.dtype(image.dtype.type)  # native byte order, for the layout check
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W) or (H, W, C), got shape {image.shape}")
    height, width = image.shape[:2]
    channels = 1 if image.ndim == 2 else image.shape[2]
    _check_str("encoding", encoding)
    layout = _KNOWN_LAYOUTS.get(encoding)
    if layout is not None and (channels, sample) != layout:
        raise ValueError(
            f"encoding {encoding!r} needs {layout[0]} channel(s) of {layout[1]}, "
            f"got {channels} of {image.dtype}"
        )
    little = np.ascontiguousarray(image, dtype=sample.newbyteorder("<"))
    cls = typestore().types[IMAGE_TYPE]
    return cls(
        header=_header(stamp_ns, frame_id),
        height=_check_int("height", height, 0, _UINT32_MAX),
        width=_check_int("width", width, 0, _UINT32_MAX),
        encoding=encoding,
        is_bigendian=0,
        step=_check_int("step", width * channels * sample.itemsize, 0, _UINT32_MAX),
        data=little.reshape(-1).view(np.uint8),
    )


def serialize(msg: Any, typename: str) -> bytes:
    """Serialize to CDR bytes (little-endian, with the 4-byte encapsulation header)."""
    return bytes(typestore().serialize_cdr(msg, typename, little_endian=True))


def deserialize(raw: BytesLike, typename: str) -> Any:
    """Parse CDR bytes written by ``serialize``, rclpy or a rosbag2 file.

    Raises ``rosbags.serde.SerdeError`` on malformed data.  ``uint8[]`` fields are views
    into ``raw``.
    """
    return typestore().deserialize_cdr(raw, typename)
