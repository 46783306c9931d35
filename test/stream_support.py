"""What the `imgcomp.stream` tests share besides the fixtures in conftest.py: messages built and
parsed the way a bag or the ROS middleware would (CDR through rosbags)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from imgcomp.image import bytes_per_pixel, image_to_msg_fields
from imgcomp.stream import (
    DecoderCore,
    EncoderCore,
    FeaturesFields,
    ImageFields,
)
from imgcomp.rosbag.messages import (
    IMAGE_TYPE,
    MSG_TYPE,
    deserialize,
    make_features_msg,
    make_image_msg,
    serialize,
    stamp_to_ns,
    typestore,
)


FIXTURES = Path(__file__).resolve().parent / "fixtures" / "images"
H, W = 48, 64
STAMP_NS = 1_700_000_000 * 1_000_000_000 + 123_456_789
FRAME_ID = "camera_optical_frame"


# ------------------------------------------------------------------------------ helpers
def array_for(data: bytes, height: int, width: int, encoding: str) -> np.ndarray:
    """The array `make_image_msg` wants for message bytes in `encoding`."""
    if encoding in ("mono16", "16UC1"):
        return np.frombuffer(data, dtype="<u2").reshape(height, width)
    bpp = bytes_per_pixel(encoding)
    shape = (height, width) if bpp == 1 else (height, width, bpp)
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


def image_msg(rgb: np.ndarray, encoding: str, stamp_ns: int = STAMP_NS, frame_id: str = FRAME_ID):
    """A rosbags sensor_msgs/Image of `rgb` in `encoding`, as a subscriber receives it."""
    data, height, width, encoding, _ = image_to_msg_fields(rgb, encoding)
    msg = make_image_msg(stamp_ns, frame_id, array_for(data, height, width, encoding), encoding)
    return deserialize(serialize(msg, IMAGE_TYPE), IMAGE_TYPE)


def raw_image_msg(**fields):
    """A sensor_msgs/Image with arbitrary (possibly inconsistent) fields."""
    types = typestore().types
    header = types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=1, nanosec=2), frame_id=FRAME_ID
    )
    values = dict(height=H, width=W, encoding="rgb8", is_bigendian=0, step=3 * W,
                  data=np.zeros(3 * H * W, dtype=np.uint8))
    values.update(fields)
    return types[IMAGE_TYPE](header=header, **values)


def features_msg(f: FeaturesFields):
    """FeaturesFields -> rosbags CompressedFeatures -> CDR -> parsed back, as the decoder gets it."""
    msg = make_features_msg(
        stamp_ns=stamp_to_ns(Header(f.stamp)),
        frame_id=f.frame_id,
        codec=f.codec,
        model_hash=f.model_hash,
        quality=f.quality,
        height=f.height,
        width=f.width,
        encoding=f.encoding,
        data=f.data,
        frame_type=f.frame_type,
        frame_number=f.frame_number,
        reference_frame_number=f.reference_frame_number,
    )
    return deserialize(serialize(msg, MSG_TYPE), MSG_TYPE)


@dataclasses.dataclass
class Header:
    stamp: object


def roundtrip(encoder: EncoderCore, decoder: DecoderCore, msg):
    features = encoder.process(ImageFields.from_msg(msg))
    assert isinstance(features, FeaturesFields), features
    out = decoder.process(FeaturesFields.from_msg(features_msg(features)))
    assert isinstance(out, ImageFields), out
    return features, out


def out_msg(out: ImageFields):
    """The decoder's output as a real sensor_msgs/Image, serialized and parsed back."""
    msg = make_image_msg(stamp_to_ns(Header(out.stamp)), out.frame_id,
                         array_for(out.data, out.height, out.width, out.encoding), out.encoding)
    return deserialize(serialize(msg, IMAGE_TYPE), IMAGE_TYPE)

