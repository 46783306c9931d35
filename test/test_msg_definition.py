"""imgcomp_msgs/msg/CompressedFeatures: the definition, checked by the real rosidl parser,
and messages built and serialized with rosbags (imgcomp.rosbag.messages), without ROS."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imgcomp.rosbag import messages as rosmsg

REPO = Path(__file__).resolve().parent.parent
MSG_FILE = REPO / "imgcomp_msgs" / "msg" / "CompressedFeatures.msg"
SHIPPED_MSG_FILE = REPO / "imgcomp" / "msg" / "CompressedFeatures.msg"

# Debian's python3-rosidl is installed for the system interpreter, not for the venv.
ROS_PYTHON = os.environ.get("IMGCOMP_ROS_PYTHON", "/usr/bin/python3")

# (name, .msg type, IDL type after rosidl_adapter's conversion) in wire order.
FIELDS = [
    ("header", "std_msgs/Header", "std_msgs::msg::Header"),
    ("codec", "string", "string"),
    ("model_hash", "string", "string"),
    ("quality", "uint8", "uint8"),
    ("height", "uint32", "uint32"),
    ("width", "uint32", "uint32"),
    ("encoding", "string", "string"),
    ("frame_type", "uint8", "uint8"),
    ("frame_number", "uint32", "uint32"),
    ("reference_frame_number", "uint32", "uint32"),
    ("data", "uint8[]", "sequence<uint8>"),
]
CONSTANTS = [("FRAME_KEY", "uint8", 0), ("FRAME_PREDICTED", "uint8", 1)]

# Runs under ROS_PYTHON: parse the .msg as rosidl does at build time (rosidl_adapter's .msg
# parser, then the .msg -> .idl conversion and rosidl_parser's IDL grammar), print JSON.
ROSIDL_SCRIPT = textwrap.dedent(
    """
    import contextlib, json, pathlib, sys
    from rosidl_adapter.parser import parse_message_file
    from rosidl_adapter.msg import convert_msg_to_idl
    from rosidl_parser.parser import parse_idl_file
    from rosidl_parser import definition as d

    msg_file, out_dir = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    spec = parse_message_file("imgcomp_msgs", str(msg_file))
    with contextlib.redirect_stdout(sys.stderr):  # the converter prints progress
        idl_file = convert_msg_to_idl(
            msg_file.parent.parent, "imgcomp_msgs", pathlib.Path("msg", msg_file.name), out_dir)
    idl = parse_idl_file(d.IdlLocator(idl_file.parent, idl_file.name))
    message = idl.content.get_elements_of_type(d.Message)[0]

    def idl_type(t):
        if isinstance(t, d.BasicType):
            return t.typename
        if isinstance(t, d.UnboundedString):
            return "string"
        if isinstance(t, d.NamespacedType):
            return "::".join(t.namespaced_name())
        if isinstance(t, d.UnboundedSequence):
            return "sequence<%s>" % idl_type(t.value_type)
        return repr(t)

    print(json.dumps({
        "msg_fields": [[f.name, str(f.type)] for f in spec.fields],
        "msg_constants": [[c.name, c.type, c.value] for c in spec.constants],
        "msg_comment": spec.annotations.get("comment", []),
        "field_comments": {f.name: f.annotations.get("comment", []) for f in spec.fields},
        "idl_name": list(message.structure.namespaced_type.namespaced_name()),
        "idl_members": [[m.name, idl_type(m.type)] for m in message.structure.members],
        "idl_constants": [[c.name, c.type.typename, c.value] for c in message.constants],
    }))
    """
)


def _ros_python_has_rosidl() -> str | None:
    """None when ROS_PYTHON can import rosidl, else the reason to skip."""
    if shutil.which(ROS_PYTHON) is None:
        return f"{ROS_PYTHON} not found (set IMGCOMP_ROS_PYTHON to a Python with rosidl)"
    probe = subprocess.run(
        [ROS_PYTHON, "-c", "import rosidl_adapter.parser, rosidl_parser.parser"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        return (
            f"{ROS_PYTHON} cannot import rosidl_adapter/rosidl_parser "
            "(Debian: apt-get install python3-rosidl; or source a ROS 2 install)"
        )
    return None


@pytest.fixture(scope="module")
def rosidl_view(tmp_path_factory: pytest.TempPathFactory) -> dict:
    reason = _ros_python_has_rosidl()
    if reason:
        pytest.skip(reason)
    out_dir = tmp_path_factory.mktemp("idl")
    result = subprocess.run(
        [ROS_PYTHON, "-c", ROSIDL_SCRIPT, str(MSG_FILE), str(out_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"rosidl rejected {MSG_FILE}:\n{result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------- the definition
def test_shipped_copy_is_identical() -> None:
    assert SHIPPED_MSG_FILE.read_bytes() == MSG_FILE.read_bytes(), (
        f"{SHIPPED_MSG_FILE.relative_to(REPO)} must be a byte-identical copy of "
        f"{MSG_FILE.relative_to(REPO)}: cp the imgcomp_msgs one over"
    )
    assert rosmsg.msg_definition() == MSG_FILE.read_text(encoding="utf-8")


def test_rosidl_msg_parser_fields_and_constants(rosidl_view: dict) -> None:
    assert rosidl_view["msg_fields"] == [[name, msg_type] for name, msg_type, _ in FIELDS]
    assert rosidl_view["msg_constants"] == [list(c) for c in CONSTANTS]
    # Trailing comments are documentation in the generated interfaces, not part of names.
    assert rosidl_view["msg_comment"][0].startswith("One camera frame compressed")
    assert "stamp and frame_id" in rosidl_view["field_comments"]["header"][0]


def test_rosidl_idl_conversion(rosidl_view: dict) -> None:
    """What rosidl_generate_interfaces() does: .msg -> .idl -> rosidl_parser."""
    assert rosidl_view["idl_name"] == ["imgcomp_msgs", "msg", "CompressedFeatures"]
    assert rosidl_view["idl_members"] == [[name, idl_type] for name, _, idl_type in FIELDS]
    assert rosidl_view["idl_constants"] == [list(c) for c in CONSTANTS]


def test_rosbags_reads_the_same_definition() -> None:
    store = rosmsg.typestore()
    constants, fields = store.fielddefs[rosmsg.MSG_TYPE]
    assert [(name, typ, value) for name, typ, value in constants] == CONSTANTS
    assert [name for name, _ in fields] == [name for name, _, _ in FIELDS]
    cls = store.types[rosmsg.MSG_TYPE]
    assert (cls.FRAME_KEY, cls.FRAME_PREDICTED) == (rosmsg.FRAME_KEY, rosmsg.FRAME_PREDICTED)
    assert rosmsg.typestore() is store


def test_core_module_does_not_import_rclpy() -> None:
    code = "import sys, imgcomp.rosbag.messages as r; r.typestore(); print('rclpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------------ wire format
class _Cdr:
    """A minimal little-endian CDR writer, written from the spec, to pin the wire layout."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def _align(self, n: int) -> None:
        self.buf += b"\0" * (-len(self.buf) % n)

    def u8(self, v: int) -> None:
        self.buf += struct.pack("<B", v)

    def u32(self, v: int) -> None:
        self._align(4)
        self.buf += struct.pack("<I", v)

    def i32(self, v: int) -> None:
        self._align(4)
        self.buf += struct.pack("<i", v)

    def string(self, s: str) -> None:
        raw = s.encode() + b"\0"
        self.u32(len(raw))
        self.buf += raw

    def octets(self, b: bytes) -> None:
        self.u32(len(b))
        self.buf += b


def _payload(n: int = 4099) -> bytes:
    """Opaque bytes with every value, NULs and runs, like an entropy-coded stream."""
    rng = np.random.default_rng(7)
    return bytes(range(256)) + b"\0" * 17 + rng.integers(0, 256, n, dtype=np.uint8).tobytes()


def test_cdr_layout_matches_hand_encoding() -> None:
    payload = _payload()
    msg = rosmsg.make_features_msg(
        stamp_ns=1_700_000_000_123_456_789,
        frame_id="camera_optical",
        codec="hyperprior-mse",
        model_hash="0123456789abcdef",
        quality=3,
        height=480,
        width=641,
        encoding="bgr8",
        data=payload,
        frame_type=rosmsg.FRAME_PREDICTED,
        frame_number=42,
        reference_frame_number=41,
    )
    w = _Cdr()
    w.i32(1_700_000_000)
    w.u32(123_456_789)
    w.string("camera_optical")
    w.string("hyperprior-mse")
    w.string("0123456789abcdef")
    w.u8(3)
    w.u32(480)
    w.u32(641)
    w.string("bgr8")
    w.u8(1)
    w.u32(42)
    w.u32(41)
    w.octets(payload)
    assert rosmsg.serialize(msg, rosmsg.MSG_TYPE) == b"\x00\x01\x00\x00" + bytes(w.buf)


# ------------------------------------------------------------------------------ round trips
def test_features_round_trip() -> None:
    payload = _payload()
    msg = rosmsg.make_features_msg(
        stamp_ns=1_732_000_000_000_000_001,
        frame_id="front_camera/optical",
        codec="hyperprior-mse",
        model_hash="fedcba9876543210",
        quality=5,
        height=720,
        width=1280,
        encoding="rgb8",
        data=payload,
        frame_number=7,
    )
    raw = rosmsg.serialize(msg, rosmsg.MSG_TYPE)
    assert isinstance(raw, bytes)
    back = rosmsg.deserialize(raw, rosmsg.MSG_TYPE)
    assert bytes(back.data) == payload
    assert rosmsg.stamp_to_ns(back.header) == 1_732_000_000_000_000_001
    assert back.header.frame_id == "front_camera/optical"
    assert (back.codec, back.model_hash, back.quality) == ("hyperprior-mse", "fedcba9876543210", 5)
    assert (back.height, back.width, back.encoding) == (720, 1280, "rgb8")
    assert (back.frame_type, back.frame_number, back.reference_frame_number) == (rosmsg.FRAME_KEY, 7, 7)
    assert rosmsg.serialize(back, rosmsg.MSG_TYPE) == raw


@settings(max_examples=40, deadline=None)
@given(
    stamp_ns=st.integers(0, 2**31 * 10**9 - 1),
    frame_id=st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20),  # ROS strings are UTF-8
    quality=st.integers(0, 255),
    height=st.integers(0, 2**32 - 1),
    frame_number=st.integers(0, 2**40),
    data=st.binary(max_size=300),
)
def test_features_round_trip_property(stamp_ns, frame_id, quality, height, frame_number, data) -> None:
    msg = rosmsg.make_features_msg(
        stamp_ns=stamp_ns, frame_id=frame_id, codec="c", model_hash="h", quality=quality,
        height=height, width=1, encoding="mono8", data=data, frame_number=frame_number,
    )
    back = rosmsg.deserialize(rosmsg.serialize(msg, rosmsg.MSG_TYPE), rosmsg.MSG_TYPE)
    assert rosmsg.stamp_to_ns(back.header) == stamp_ns
    assert back.header.frame_id == frame_id
    assert (back.quality, back.height) == (quality, height)
    assert back.frame_number == back.reference_frame_number == frame_number % 2**32
    assert bytes(back.data) == data


def test_real_codec_payload_round_trip(real_images, hyperprior_codec) -> None:
    """A real bitstream survives the message, and the fields mirror its header."""
    image = np.ascontiguousarray(next(iter(real_images.values()))[:48, :80])
    payload = hyperprior_codec.encode(image, encoding="rgb8", frame_number=3)
    header = hyperprior_codec.parse(payload).header
    msg = rosmsg.make_features_msg(
        stamp_ns=5, frame_id="cam", codec=header.model, model_hash=header.model_hash,
        quality=header.quality, height=header.height, width=header.width,
        encoding=header.encoding, data=payload, frame_type=header.frame_type,
        frame_number=header.frame_number, reference_frame_number=header.reference_frame_number,
    )
    back = rosmsg.deserialize(rosmsg.serialize(msg, rosmsg.MSG_TYPE), rosmsg.MSG_TYPE)
    assert bytes(back.data) == payload
    assert (back.height, back.width) == image.shape[:2]
    np.testing.assert_array_equal(
        hyperprior_codec.decode(bytes(back.data)), hyperprior_codec.decode(payload)
    )


@pytest.mark.parametrize(
    ("encoding", "shape", "dtype"),
    [("rgb8", (3, 5, 3), np.uint8), ("mono8", (4, 7), np.uint8), ("rgba8", (2, 3, 4), np.uint8),
     ("mono16", (3, 5), np.uint16), ("16UC1", (2, 2), ">u2"), ("yuv422", (2, 4, 2), np.uint8)],
)
def test_image_round_trip(encoding: str, shape: tuple, dtype) -> None:
    rng = np.random.default_rng(0)
    native = rng.integers(0, np.iinfo(np.dtype(dtype)).max, shape, dtype=np.dtype(dtype).type)
    image = native.astype(dtype)
    msg = rosmsg.make_image_msg(123_000_000_456, "cam", image, encoding)
    itemsize = np.dtype(dtype).itemsize
    channels = 1 if len(shape) == 2 else shape[2]
    assert (msg.height, msg.width) == shape[:2]
    assert msg.step == shape[1] * channels * itemsize
    assert msg.is_bigendian == 0
    assert bytes(msg.data) == native.astype(np.dtype(dtype).newbyteorder("<")).tobytes()

    back = rosmsg.deserialize(rosmsg.serialize(msg, rosmsg.IMAGE_TYPE), rosmsg.IMAGE_TYPE)
    assert rosmsg.stamp_to_ns(back.header) == 123_000_000_456
    assert (back.header.frame_id, back.encoding, back.step) == ("cam", encoding, msg.step)
    restored = np.frombuffer(bytes(back.data), dtype=np.dtype(dtype).newbyteorder("<"))
    np.testing.assert_array_equal(restored.reshape(shape), native)


# ----------------------------------------------------------------------------- bad inputs
def _features(**overrides):
    fields = dict(
        stamp_ns=0, frame_id="f", codec="c", model_hash="h", quality=1, height=1, width=1,
        encoding="rgb8", data=b"x",
    )
    fields.update(overrides)
    return rosmsg.make_features_msg(**fields)


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"quality": 256}, ValueError),
        ({"quality": -1}, ValueError),
        ({"height": 2**32}, ValueError),
        ({"frame_type": 2}, ValueError),
        ({"frame_type": True}, TypeError),
        ({"stamp_ns": -1}, ValueError),
        ({"stamp_ns": 2**31 * 10**9}, ValueError),
        ({"frame_number": -1}, ValueError),
        ({"data": "text"}, TypeError),
        ({"data": np.zeros((2, 2), np.uint8)}, TypeError),
        ({"codec": b"bytes"}, TypeError),
        ({"frame_id": "a\x00b"}, ValueError),
    ],
)
def test_features_rejects_bad_fields(overrides: dict, error: type) -> None:
    with pytest.raises(error):
        _features(**overrides)


def test_image_rejects_mismatched_encoding() -> None:
    with pytest.raises(ValueError, match="rgb8"):
        rosmsg.make_image_msg(0, "cam", np.zeros((2, 2), np.uint8), "rgb8")
    with pytest.raises(ValueError, match="mono16"):
        rosmsg.make_image_msg(0, "cam", np.zeros((2, 2), np.uint8), "mono16")
    with pytest.raises(TypeError):
        rosmsg.make_image_msg(0, "cam", np.zeros((2, 2), np.float32), "32FC1")


def test_deserialize_rejects_truncated_data() -> None:
    from rosbags.serde import SerdeError

    raw = rosmsg.serialize(_features(data=_payload(100)), rosmsg.MSG_TYPE)
    with pytest.raises(SerdeError):
        rosmsg.deserialize(raw[:-40], rosmsg.MSG_TYPE)
    with pytest.raises(SerdeError):
        rosmsg.deserialize(b"\x07\x07" + raw[2:], rosmsg.MSG_TYPE)
