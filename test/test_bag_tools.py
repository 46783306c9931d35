"""`imgcomp bag`: compress / decompress / info / eval on real rosbag2 folders (MCAP and SQLite3).

The bags are written here with `rosbags` from crops of the real fixture photos, with an
unrelated std_msgs/String topic and a custom message type that no typestore knows.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.interfaces import Connection, ConnectionExtRosbag2, MessageDefinition, MessageDefinitionFormat
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from imgcomp import rosbag
from imgcomp.rosbag.io import UNKNOWN_RIHS01, connection_definition, partial_path
from imgcomp.cli.bag import register_bag_commands
from imgcomp.rosbag import compress, decompress, evaluate, info
from imgcomp.image import image_from_msg_fields
from imgcomp.metrics import psnr
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

REPO = Path(__file__).resolve().parent.parent
TOPIC = "/camera/image_raw"
FEATURES = "/camera/image_raw/imgcomp"
CUSTOM_TYPE = "my_pkg/msg/Custom"
CUSTOM_DEF = "int32 a\nstring b\n"
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
T0 = 1_700_000_000 * 10**9
PERIOD = 33_333_333


# ------------------------------------------------------------------------------------ helpers
def folder_hash(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        h.update(str(p.relative_to(path)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def read_all(path: Path) -> list[tuple[str, str, int, bytes]]:
    with Reader(path) as reader:
        return [(c.topic, c.msgtype, t, bytes(raw)) for c, t, raw in reader.messages()]


def connections(path: Path) -> dict[str, object]:
    with Reader(path) as reader:
        return {c.topic: c for c in reader.connections}


def custom_store():
    store = get_typestore(Stores.EMPTY)
    store.register(get_types_from_msg(CUSTOM_DEF, CUSTOM_TYPE))
    return store


def image_msg(stamp_ns: int, frame_id: str, rgb: np.ndarray, encoding: str):
    if encoding == "mono8":
        return make_image_msg(stamp_ns, frame_id, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), encoding)
    if encoding == "bgr8":
        return make_image_msg(stamp_ns, frame_id, np.ascontiguousarray(rgb[:, :, ::-1]), encoding)
    return make_image_msg(stamp_ns, frame_id, rgb, encoding)


def write_bag(path: Path, storage: str, messages: list[tuple[str, str, int, object]], extras: bool = True) -> None:
    """messages: (topic, msgtype, bag time, message object of our typestore or raw bytes).
    With `extras`, String messages on /chatter and two messages of a custom type on /custom."""
    store, custom = typestore(), custom_store()
    rows = list(messages)
    if extras:
        string = store.types["std_msgs/msg/String"]
        rows += [("/chatter", "std_msgs/msg/String", T0 + i * PERIOD + 1000, string(data=f"hello {i}")) for i in range(6)]
        cls = custom.types[CUSTOM_TYPE]
        rows += [("/custom", CUSTOM_TYPE, T0 + i * 2 * PERIOD + 5, cls(a=i - 7, b=f"custom {i}")) for i in range(2)]
    with Writer(path, version=9, storage_plugin=STORAGES[storage]) as writer:
        conns = {}
        for topic, msgtype, stamp, msg in sorted(rows, key=lambda r: r[2]):
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, msgtype, typestore=custom if msgtype == CUSTOM_TYPE else store)
            if isinstance(msg, bytes):
                raw = msg
            elif msgtype == CUSTOM_TYPE:
                raw = custom.serialize_cdr(msg, msgtype)
            else:
                raw = serialize(msg, msgtype)
            writer.write(conns[topic], stamp, raw)


@pytest.fixture(scope="module")
def crops(real_images):
    """Small crops of real photos, different sizes (one odd)."""
    return [
        np.ascontiguousarray(real_images["baboon"][10:74, 20:116]),  # 64x96
        np.ascontiguousarray(real_images["fruits"][30:102, 40:120]),  # 72x80
        np.ascontiguousarray(real_images["home"][40:88, 60:124]),  # 48x64
        np.ascontiguousarray(real_images["astronaut_odd"][20:81, 10:57]),  # 61x47
        np.ascontiguousarray(real_images["vtest_frame0"][100:164, 150:246]),  # 64x96
    ]


ENCODINGS = ["rgb8", "mono8", "bgr8", "rgb8", "mono8"]


def frame_rows(crops):
    """(topic, type, bag time, Image): header stamps differ from bag times on purpose."""
    return [
        (TOPIC, IMAGE_TYPE, T0 + i * PERIOD, image_msg(T0 - 7_000_000 + i * PERIOD + i, f"cam_{i}", rgb, enc))
        for i, (rgb, enc) in enumerate(zip(crops, ENCODINGS))
    ]


@pytest.fixture(scope="module", params=sorted(STORAGES))
def round_trip(request, tmp_path_factory, crops, hyperprior_codec):
    """raw bag -> compress -> decompress, once per storage."""
    storage = request.param
    root = tmp_path_factory.mktemp(f"bags_{storage}")
    raw = root / "raw"
    write_bag(raw, storage, frame_rows(crops))
    raw_hash = folder_hash(raw)
    comp = root / "comp"
    summary = compress(raw, comp, storage=storage, codec=hyperprior_codec, progress=False)
    dec = root / "dec"
    dsummary = decompress(comp, dec, storage=storage, codec_factory=lambda name: hyperprior_codec, progress=False)
    return {"storage": storage, "raw": raw, "raw_hash": raw_hash, "comp": comp, "dec": dec,
            "summary": summary, "dsummary": dsummary}


# ------------------------------------------------------------------------------ round trip
def test_compress_writes_features_and_copies_the_rest(round_trip, hyperprior_codec):
    rt = round_trip
    s = rt["summary"]
    assert (s.frames, s.skipped, s.copied) == (5, {}, 8)
    assert s.features_topic == FEATURES and s.model == hyperprior_codec.model_name
    assert s.image_ratio > 5 and s.in_bytes > s.out_bytes
    assert folder_hash(rt["raw"]) == rt["raw_hash"]  # input untouched
    assert not partial_path(rt["comp"]).exists()
    assert {p.suffix for p in rt["comp"].iterdir()} == {".yaml", ".mcap" if rt["storage"] == "mcap" else ".db3"}

    raw_msgs = read_all(rt["raw"])
    comp_msgs = read_all(rt["comp"])
    assert {m[0] for m in comp_msgs} == {FEATURES, "/chatter", "/custom"}
    # every other message byte-identical at the same bag time, definitions carried over
    for topic in ("/chatter", "/custom"):
        assert [m for m in comp_msgs if m[0] == topic] == [m for m in raw_msgs if m[0] == topic]
    src, dst = connections(rt["raw"])["/custom"], connections(rt["comp"])["/custom"]
    assert (dst.msgtype, dst.msgdef.data, dst.digest) == (CUSTOM_TYPE, src.msgdef.data, src.digest)
    assert "int32 a" in dst.msgdef.data and dst.digest.startswith("RIHS01_")
    # features: same bag times and headers, fields mirror the source image
    images = [deserialize(m[3], IMAGE_TYPE) for m in raw_msgs if m[0] == TOPIC]
    feats = [m for m in comp_msgs if m[0] == FEATURES]
    assert [m[2] for m in feats] == [m[2] for m in raw_msgs if m[0] == TOPIC]
    bpps = []
    for (_, msgtype, _, raw), image in zip(feats, images):
        f = deserialize(raw, msgtype)
        assert (f.header.stamp.sec, f.header.stamp.nanosec, f.header.frame_id) == (
            image.header.stamp.sec, image.header.stamp.nanosec, image.header.frame_id)
        assert (f.height, f.width, f.encoding) == (image.height, image.width, image.encoding)
        assert (f.codec, f.model_hash, f.quality) == (hyperprior_codec.model_name, hyperprior_codec.model_hash, hyperprior_codec.quality)
        bpps.append(8 * len(f.data) / (f.height * f.width))
    assert s.mean_bpp == pytest.approx(np.mean(bpps))


def test_written_metadata_is_readable_by_humble_rosbag2(round_trip):
    """Humble's rosbag2 reads `offered_qos_profiles` as a string: version 9's YAML list fails there."""
    import yaml

    for bag in (round_trip["comp"], round_trip["dec"]):
        meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        assert meta["version"] == 8
        for topic in meta["topics_with_message_count"]:
            assert isinstance(topic["topic_metadata"]["offered_qos_profiles"], str)


def test_info_reports_frames_models_bpp_and_bitrate(round_trip, hyperprior_codec):
    rt = round_trip
    report = info(rt["comp"])
    assert report["storage"] == rt["storage"]
    assert report["topics"][FEATURES] == {"type": MSG_TYPE, "messages": 5}
    t = report["compressed"][FEATURES]
    assert t["frames"] == 5
    assert t["models"] == {f"{hyperprior_codec.model_name} ({hyperprior_codec.model_hash})": 5}
    assert t["qualities"] == {hyperprior_codec.quality: 5}
    assert t["encodings"] == {"rgb8": 2, "mono8": 2, "bgr8": 1}
    assert t["mean_bpp"] == pytest.approx(rt["summary"].mean_bpp)
    fps = 4 / (4 * PERIOD / 1e9)
    assert t["fps"] == pytest.approx(fps)
    assert t["kbps"] == pytest.approx(t["payload_bytes"] * 8 / 5 * fps / 1000)
    text = rosbag.format_info(report)
    assert FEATURES in text and "kbit/s" in text
    json.dumps(report, allow_nan=False)  # JSON-ready


def test_decompress_restores_images_headers_and_other_topics(round_trip, crops):
    rt = round_trip
    d = rt["dsummary"]
    assert (d.frames, d.skipped, d.copied, d.topics) == (5, {}, 8, {FEATURES: TOPIC})
    raw_msgs, dec_msgs = read_all(rt["raw"]), read_all(rt["dec"])
    assert sorted({m[0] for m in dec_msgs}) == ["/camera/image_raw", "/chatter", "/custom"]
    for topic in ("/chatter", "/custom"):
        assert [m for m in dec_msgs if m[0] == topic] == [m for m in raw_msgs if m[0] == topic]
    src = [m for m in raw_msgs if m[0] == TOPIC]
    out = [m for m in dec_msgs if m[0] == TOPIC]
    assert [m[2] for m in out] == [m[2] for m in src]  # bag times
    for (_, _, _, a), (_, msgtype, _, b) in zip(src, out):
        assert msgtype == IMAGE_TYPE
        before, after = deserialize(a, IMAGE_TYPE), deserialize(b, IMAGE_TYPE)
        assert (after.header.stamp.sec, after.header.stamp.nanosec, after.header.frame_id) == (
            before.header.stamp.sec, before.header.stamp.nanosec, before.header.frame_id)
        assert (after.height, after.width, after.encoding, after.step, after.is_bigendian) == (
            before.height, before.width, before.encoding, before.step, 0)
        ref = image_from_msg_fields(before.data, before.height, before.width, before.encoding, before.step, 0)
        got = image_from_msg_fields(after.data, after.height, after.width, after.encoding, after.step, 0)
        assert psnr(ref, got) > 18  # baboon at the middle level: ~21 dB; colour swaps would be ~10
    assert not partial_path(rt["dec"]).exists()


def test_eval_matches_decoding_by_hand(round_trip, hyperprior_codec):
    rt = round_trip
    report = evaluate(rt["comp"], rt["raw"], codec_factory=lambda name: hyperprior_codec, progress=False)
    assert report["frames"] == 5 and report["unmatched"] == {"compressed": 0, "raw": 0} and report["failed"] == {}
    raw = {(m[0] + "/imgcomp", stamp_to_ns(deserialize(m[3], m[1]).header)): m
           for m in read_all(rt["raw"]) if m[0] == TOPIC}
    by_hand = []
    for row in report["per_frame"]:
        image = deserialize(raw[(row["topic"], row["stamp_ns"])][3], IMAGE_TYPE)
        feats = [deserialize(m[3], MSG_TYPE) for m in read_all(rt["comp"]) if m[0] == FEATURES]
        (f,) = [f for f in feats if stamp_to_ns(f.header) == row["stamp_ns"]]
        ref = image_from_msg_fields(image.data, image.height, image.width, image.encoding, image.step, 0)
        by_hand.append(psnr(ref, hyperprior_codec.decode(bytes(f.data))))
        assert row["frame_id"] == image.header.frame_id and row["ms_ssim"] is None  # too small for MS-SSIM
        assert row["bpp"] == pytest.approx(8 * len(f.data) / (image.height * image.width))
    assert [r["psnr_db"] for r in report["per_frame"]] == pytest.approx(by_hand, abs=1e-9)
    assert report["mean"]["psnr_db"] == pytest.approx(np.mean(by_hand))
    assert report["topics"][FEATURES]["frames"] == 5
    json.dumps(report, allow_nan=False)


# --------------------------------------------------------------------------- special inputs
def test_compressed_image_jpeg_and_png_input(tmp_path, crops, hyperprior_codec):
    store = typestore()
    ci = store.types["sensor_msgs/msg/CompressedImage"]

    def compressed(i, fmt, data):
        header = make_image_msg(T0 + i, f"cam_{i}", np.zeros((1, 1), np.uint8), "mono8").header
        return ("/camera/image_raw/compressed", "sensor_msgs/msg/CompressedImage", T0 + i * PERIOD,
                ci(header=header, format=fmt, data=np.frombuffer(data, np.uint8)))

    jpeg_bgr = cv2.imencode(".jpg", crops[0][:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    jpeg_rgb_src = cv2.imencode(".jpg", crops[1][:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    png_mono = cv2.imencode(".png", cv2.cvtColor(crops[2], cv2.COLOR_RGB2GRAY))[1].tobytes()
    rows = [
        compressed(0, "jpeg", jpeg_bgr),
        compressed(1, "rgb8; jpeg compressed bgr8", jpeg_rgb_src),
        compressed(2, "mono8; png compressed mono8", png_mono),
        compressed(3, "jpeg", jpeg_bgr[:40] + b"\x00" * 200),  # corrupt JPEG
        compressed(4, "webp", b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 40),  # not JPEG/PNG
    ]
    raw, comp, dec = tmp_path / "raw", tmp_path / "comp", tmp_path / "dec"
    write_bag(raw, "mcap", rows, extras=False)
    # the default topic /camera/image_raw is absent: its CompressedImage sibling is used
    summary = compress(raw, comp, codec=hyperprior_codec, progress=False)
    assert summary.topic == "/camera/image_raw/compressed"
    assert summary.features_topic == FEATURES  # image_transport naming: <base>/imgcomp
    assert (summary.frames, summary.skipped) == (3, {"bad_compressed_image": 1, "unsupported_format": 1})
    decompress(comp, dec, codec_factory=lambda name: hyperprior_codec, progress=False)
    out = [deserialize(m[3], m[1]) for m in read_all(dec)]
    assert [(m.encoding, m.height, m.width, m.header.frame_id) for m in out] == [
        ("bgr8", 64, 96, "cam_0"), ("rgb8", 72, 80, "cam_1"), ("mono8", 48, 64, "cam_2")]
    report = evaluate(comp, raw, codec_factory=lambda name: hyperprior_codec, progress=False)
    assert report["frames"] == 3 and report["unmatched"] == {"compressed": 0, "raw": 2}
    assert report["failed"] == {} and report["mean"]["psnr_db"] > 18


def test_bad_frames_are_skipped_and_counted_with_one_warning_per_cause(tmp_path, crops, hyperprior_codec, caplog):
    good = image_msg(T0, "cam", crops[0], "rgb8")
    short = image_msg(T0 + 1, "cam", crops[1], "rgb8")
    short = dataclasses.replace(short, data=short.data[: short.step * 10])  # data too short
    odd = dataclasses.replace(image_msg(T0 + 3, "cam", crops[2], "rgb8"), encoding="32FC1")
    last = image_msg(T0 + 4, "cam", crops[3], "mono8")
    rows = [(TOPIC, IMAGE_TYPE, T0 + i * PERIOD, m) for i, m in enumerate([good, short, short, odd, last])]
    rows.insert(2, (TOPIC, IMAGE_TYPE, T0 + 2 * PERIOD - 1, b"\x00\x01\x00\x00\x05"))  # not even CDR
    raw, comp = tmp_path / "raw", tmp_path / "comp"
    write_bag(raw, "sqlite3", rows)
    with caplog.at_level(logging.WARNING, logger="imgcomp.rosbag"):
        summary = compress(raw, comp, storage="sqlite3", codec=hyperprior_codec, progress=False)
    assert summary.frames == 2 and summary.copied == 8
    assert summary.skipped == {"bad_image": 2, "unsupported_encoding": 1, "malformed_message": 1}
    warnings = [r for r in caplog.records if r.name == "imgcomp.rosbag"]
    assert len(warnings) == 3 and all(r.levelno == logging.WARNING for r in warnings)
    feats = [deserialize(m[3], m[1]) for m in read_all(comp) if m[0] == FEATURES]
    assert [(f.header.stamp.nanosec, f.encoding) for f in feats] == [(good.header.stamp.nanosec, "rgb8"),
                                                                    (last.header.stamp.nanosec, "mono8")]
    report = evaluate(comp, raw, codec_factory=lambda name: hyperprior_codec, ms_ssim=False, progress=False)
    # raw frames without features: two short ones, the unparsable one and the 32FC1 one
    assert report["frames"] == 2 and report["unmatched"] == {"compressed": 0, "raw": 4}


def test_decompress_uses_decoded_suffix_when_the_raw_topic_exists(tmp_path, crops, hyperprior_codec):
    payload = hyperprior_codec.encode(crops[0], encoding="rgb8")
    h, w = crops[0].shape[:2]
    feats = make_features_msg(stamp_ns=T0, frame_id="cam", codec=hyperprior_codec.model_name,
                              model_hash=hyperprior_codec.model_hash, quality=hyperprior_codec.quality,
                              height=h, width=w, encoding="rgb8", data=payload)
    rows = [(TOPIC, IMAGE_TYPE, T0, image_msg(T0, "cam", crops[0], "rgb8")), (FEATURES, MSG_TYPE, T0 + 1, feats)]
    raw, dec = tmp_path / "both", tmp_path / "dec"
    write_bag(raw, "mcap", rows, extras=False)
    summary = decompress(raw, dec, codec_factory=lambda name: hyperprior_codec, progress=False)
    assert summary.topics == {FEATURES: TOPIC + "/decoded"} and summary.frames == 1
    msgs = read_all(dec)
    assert [(m[0], m[1]) for m in msgs] == [(TOPIC, IMAGE_TYPE), (TOPIC + "/decoded", IMAGE_TYPE)]
    assert msgs[0][3] == read_all(raw)[0][3]
    with pytest.raises(ValueError, match="no imgcomp_msgs"):
        decompress(dec, tmp_path / "again", progress=False)
    with pytest.raises(ValueError, match="not in the bag"):
        compress(raw, tmp_path / "x", topic="/nope", codec=hyperprior_codec, progress=False)
    with pytest.raises(ValueError, match="already has a topic"):
        compress(raw, tmp_path / "x", codec=hyperprior_codec, progress=False)
    assert not (tmp_path / "x").exists() and not partial_path(tmp_path / "x").exists()


# ------------------------------------------------------------------------------- robustness
@pytest.fixture()
def small_bag(tmp_path, crops):
    raw = tmp_path / "raw"
    rows = [(TOPIC, IMAGE_TYPE, T0 + i * PERIOD, image_msg(T0 + i, "cam", crops[i], "rgb8")) for i in range(2)]
    write_bag(raw, "mcap", rows)
    return raw


def test_interrupted_write_leaves_no_output_and_the_input_untouched(small_bag, tmp_path, hyperprior_codec):
    out = tmp_path / "out"
    before = folder_hash(small_bag)

    def crash(n):
        raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        compress(small_bag, out, codec=hyperprior_codec, progress=False, on_frame=crash)
    assert not out.exists()
    assert not partial_path(out).exists()  # the run's own incomplete bag: removed on the way out
    assert folder_hash(small_bag) == before

    # a rerun completes; an existing OUT is refused ...
    assert compress(small_bag, out, codec=hyperprior_codec, progress=False).frames == 2
    assert out.is_dir() and not partial_path(out).exists()
    complete = folder_hash(out)
    with pytest.raises(FileExistsError):
        compress(small_bag, out, codec=hyperprior_codec, progress=False)
    # ... and with overwrite, replaced only once the new bag is complete
    with pytest.raises(RuntimeError):
        compress(small_bag, out, codec=hyperprior_codec, quality=1, overwrite=True, progress=False, on_frame=crash)
    assert folder_hash(out) == complete
    summary = compress(small_bag, out, codec=hyperprior_codec, quality=1, overwrite=True, progress=False)
    assert summary.quality == 1 and info(out)["compressed"][FEATURES]["qualities"] == {1: 2}
    assert not partial_path(out).exists() and not out.with_name("out.old").exists()
    assert folder_hash(small_bag) == before
    with pytest.raises(ValueError, match="must not be"):
        compress(small_bag, small_bag / "inside", codec=hyperprior_codec, progress=False)


@pytest.mark.slow
def test_sigkill_mid_run_leaves_a_partial_folder(small_bag, tmp_path, factorized_codec):
    out = tmp_path / "out"
    before = folder_hash(small_bag)
    script = textwrap.dedent(f"""
        import os, signal
        from imgcomp.rosbag import compress
        compress({str(small_bag)!r}, {str(out)!r}, model="factorized-mse", progress=False,
                 on_frame=lambda n: os.kill(os.getpid(), signal.SIGKILL))
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert not out.exists() and partial_path(out).is_dir()
    assert folder_hash(small_bag) == before
    assert not (partial_path(out) / "out" / "metadata.yaml").exists()
    # a rerun recognises the killed run's leftovers by their marker and replaces them
    assert compress(small_bag, out, codec=factorized_codec, progress=False).frames == 2
    assert out.is_dir() and not partial_path(out).exists()
    assert folder_hash(small_bag) == before


def test_a_partial_folder_holding_anything_else_is_never_deleted(small_bag, tmp_path, factorized_codec):
    out = tmp_path / "out"
    partial_path(out).mkdir()
    (partial_path(out) / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="has no imgcomp marker"):
        compress(small_bag, out, codec=factorized_codec, progress=False)
    assert (partial_path(out) / "notes.txt").read_text() == "mine"


def test_copied_connections_get_a_definition_and_type_hash(caplog):
    def conn(msgtype, fmt=MessageDefinitionFormat.NONE, text="", digest=""):
        return Connection(1, "/t", msgtype, MessageDefinition(fmt, text), digest, 0,
                          ConnectionExtRosbag2("cdr", []), None)

    # the source's own definition and hash win
    assert connection_definition(conn(CUSTOM_TYPE, MessageDefinitionFormat.MSG, CUSTOM_DEF, "RIHS01_ab")) == (
        CUSTOM_DEF, "RIHS01_ab")
    # Humble MCAP: a definition without a hash -> hash computed from the definition
    assert connection_definition(conn(CUSTOM_TYPE, MessageDefinitionFormat.MSG, CUSTOM_DEF)) == (
        CUSTOM_DEF, custom_store().hash_rihs01(CUSTOM_TYPE))
    # pre-Iron SQLite3: neither -> our typestore's, for the types it knows
    msgdef, digest = connection_definition(conn("std_msgs/msg/String"))
    assert msgdef == "string data\n" and digest == typestore().hash_rihs01("std_msgs/msg/String")
    # nothing known anywhere: an empty definition, the placeholder hash, and a warning
    with caplog.at_level(logging.WARNING, logger="imgcomp.rosbag.io"):
        assert connection_definition(conn("other_pkg/msg/Unknown")) == ("", UNKNOWN_RIHS01)
    assert "other_pkg/msg/Unknown" in caplog.text


# ------------------------------------------------------------------------------------- CLI
def bag_parser():
    parser = argparse.ArgumentParser(prog="imgcomp")
    register_bag_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli(small_bag, tmp_path, capsys):
    parser = bag_parser()
    args = parser.parse_args(["bag", "compress", "in", "out"])
    assert (args.topic, args.storage, args.quality, args.overwrite) == (rosbag.DEFAULT_TOPIC, "mcap", None, False)

    out = tmp_path / "cli_out"
    args = parser.parse_args(["bag", "compress", str(small_bag), str(out), "--model", "factorized-mse",
                              "--quality", "2", "--storage", "sqlite3", "--no-progress", "--json"])
    assert args.func(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames"] == 2 and summary["model"] == "factorized-mse"

    args = parser.parse_args(["bag", "info", str(out), "--json"])
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["storage"] == "sqlite3" and report["compressed"][FEATURES]["qualities"] == {"2": 2}

    args = parser.parse_args(["bag", "info", str(out)])
    assert args.func(args) == 0 and "mean bpp" in capsys.readouterr().out

    args = parser.parse_args(["bag", "compress", str(small_bag), str(out), "--no-progress"])
    assert args.func(args) == 1 and "exists" in capsys.readouterr().err
    args = parser.parse_args(["bag", "info", str(tmp_path / "missing")])
    assert args.func(args) == 1 and "error" in capsys.readouterr().err


def test_compress_with_effort(small_bag, tmp_path, hyperprior_codec):
    """`--effort N`: the same messages (different bytes), decoded by the ordinary decompress."""
    plain = compress(small_bag, tmp_path / "plain", codec=hyperprior_codec, progress=False)
    refined = compress(small_bag, tmp_path / "refined", codec=hyperprior_codec, progress=False, effort=1)
    assert (plain.effort, refined.effort, refined.frames, refined.skipped) == (0, 1, 2, {})
    assert "effort 1" in str(refined)
    features = [
        [raw for topic, _, _, raw in read_all(tmp_path / name) if topic == FEATURES] for name in ("plain", "refined")
    ]
    assert len(features[1]) == 2 and features[0] != features[1]
    summary = decompress(tmp_path / "refined", tmp_path / "dec", codec_factory=lambda name: hyperprior_codec, progress=False)
    assert summary.frames == 2 and not summary.skipped
    with pytest.raises(ValueError, match="effort must be"):
        compress(small_bag, tmp_path / "bad", codec=hyperprior_codec, progress=False, effort=7)
    assert not (tmp_path / "bad").exists()

    parser = bag_parser()
    assert parser.parse_args(["bag", "compress", "in", "out"]).effort == 0
    assert parser.parse_args(["bag", "compress", "in", "out", "--effort", "3"]).effort == 3
    for bad in ("4", "x"):
        with pytest.raises(SystemExit):
            parser.parse_args(["bag", "compress", "in", "out", "--effort", bad])
