"""`imgcomp bag` in the temporal mode, on real MCAP bags (rosbags) of real video: the first 25
frames of vtest.avi at 192x144 (test/fixtures/vtest_100f_192x144.avi) at 10 fps.

compress writes groups of a key frame and P-frames; info counts them; decompress and eval decode
them in stream order; decompress --start begins at the preceding key frame, so its first image is
exactly the one a decoder of the whole bag shows; a lost message costs the frames up to the next
key frame, counted as missing_reference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imgcomp.bitstream import unpack
from imgcomp.image import image_from_msg_fields
from imgcomp.metrics import psnr
from imgcomp.rosbag import compress, decompress, evaluate, format_info, info
from imgcomp.rosbag.messages import IMAGE_TYPE, MSG_TYPE, deserialize, make_image_msg, typestore
from imgcomp.temporal.stream import StreamDecoder

from test_bag_tools import bag_parser, read_all, write_bag

VIDEO = Path(__file__).resolve().parent / "fixtures" / "vtest_100f_192x144.avi"
TOPIC = "/camera/image_raw"
FEATURES = "/camera/image_raw/imgcomp"
T0 = 1_700_000_000 * 10**9
PERIOD = 100_000_000  # 10 fps
FRAMES = 25
INTERVAL = 5


@pytest.fixture(scope="module")
def video_frames() -> list[np.ndarray]:
    from imgcomp.video import read_video

    frames, fps = read_video(VIDEO, FRAMES)
    assert fps == 10.0
    return frames


def _rows(frames: list[np.ndarray], skip: tuple[int, ...] = ()) -> list[tuple]:
    """Image messages at 10 fps (header stamps = bag times) plus a String topic every frame."""
    string = typestore().types["std_msgs/msg/String"]
    rows = []
    for i, rgb in enumerate(frames):
        if i in skip:
            continue
        rows.append((TOPIC, IMAGE_TYPE, T0 + i * PERIOD, make_image_msg(T0 + i * PERIOD, "cam", rgb, "rgb8")))
    rows += [("/chatter", "std_msgs/msg/String", T0 + i * PERIOD + 7, string(data=f"tick {i}")) for i in range(len(frames))]
    return rows


@pytest.fixture(scope="module")
def bags(tmp_path_factory, video_frames, hyperprior_codec):
    root = tmp_path_factory.mktemp("temporal_bags")
    raw, comp = root / "raw", root / "comp"
    write_bag(raw, "mcap", _rows(video_frames), extras=False)
    summary = compress(raw, comp, codec=hyperprior_codec, quality=3, keyframe_interval=INTERVAL, progress=False)
    whole = root / "whole"
    dsummary = decompress(comp, whole, codec_factory=lambda name: hyperprior_codec, progress=False)
    return {"root": root, "raw": raw, "comp": comp, "whole": whole, "summary": summary, "dsummary": dsummary}


def _features(bag: Path) -> list:
    return [deserialize(m[3], MSG_TYPE) for m in read_all(bag) if m[0] == FEATURES]


def _images(bag: Path) -> dict[int, np.ndarray]:
    """Decoded images by bag time."""
    out = {}
    for topic, msgtype, t, raw in read_all(bag):
        if topic == TOPIC and msgtype == IMAGE_TYPE:
            m = deserialize(raw, IMAGE_TYPE)
            out[t] = image_from_msg_fields(m.data, m.height, m.width, m.encoding, m.step, 0)
    return out


def test_compress_writes_groups(bags, hyperprior_codec) -> None:
    s = bags["summary"]
    assert (s.frames, s.keyframes, s.keyframe_interval) == (FRAMES, FRAMES // INTERVAL, INTERVAL)
    assert s.temporal.startswith("on: a key frame every 5 frames")
    feats = _features(bags["comp"])
    assert [f.frame_type for f in feats] == ([0] + [1] * (INTERVAL - 1)) * (FRAMES // INTERVAL)
    assert [f.frame_number for f in feats] == list(range(FRAMES))
    assert [f.reference_frame_number for f in feats] == [n if n % INTERVAL == 0 else n - 1 for n in range(FRAMES)]
    headers = [unpack(bytes(f.data)).header for f in feats]
    assert [h.frame_type for h in headers] == [f.frame_type for f in feats]
    assert len({h.stream_id for h in headers}) == 1
    # P-frames are what makes the bag small: every P-frame well below every key frame
    keys = [len(f.data) for f in feats if f.frame_type == 0]
    ps = [len(f.data) for f in feats if f.frame_type == 1]
    assert max(ps) < min(keys) / 2
    intra = compress(bags["raw"], bags["root"] / "intra", codec=hyperprior_codec, quality=3, keyframe_interval=0,
                     progress=False)
    assert intra.keyframes == FRAMES and intra.features_bytes > 2 * s.features_bytes


def test_info_counts_keyframes_pframes_and_groups(bags) -> None:
    report = info(bags["comp"])
    t = report["compressed"][FEATURES]
    assert (t["frames"], t["keyframes"], t["pframes"], t["streams"]) == (FRAMES, 5, 20, 1)
    assert t["group_sizes"] == {INTERVAL: FRAMES // INTERVAL}
    assert t["mean_key_bytes"] > 2 * t["mean_p_bytes"]
    text = format_info(report)
    assert "5 key, 20 P" in text and "5 x5 (frames per group x number of groups)" in text
    json.dumps(report, allow_nan=False)


def test_decompress_decodes_every_frame_in_stream_order(bags, video_frames, hyperprior_codec) -> None:
    d = bags["dsummary"]
    assert (d.frames, d.skipped, d.copied) == (FRAMES, {}, FRAMES)
    images = _images(bags["whole"])
    reference = StreamDecoder(hyperprior_codec)
    for i, f in enumerate(_features(bags["comp"])):
        expected = reference.decode(bytes(f.data))
        assert np.array_equal(images[T0 + i * PERIOD], expected), f"frame {i}"
        assert psnr(video_frames[i], images[T0 + i * PERIOD]) > 20.0


@pytest.mark.parametrize("first, caught_up", [(12, 2), (15, 0), (19, 4)])
def test_decompress_from_the_middle_starts_at_the_preceding_keyframe(bags, hyperprior_codec, first, caught_up) -> None:
    out = bags["root"] / f"from_{first}"
    start_s = first * PERIOD / 1e9
    summary = decompress(bags["comp"], out, codec_factory=lambda name: hyperprior_codec, progress=False, start=start_s)
    assert summary.caught_up == caught_up  # the key frame before `start` and the P-frames after it
    assert (summary.frames, summary.skipped) == (FRAMES - first, {})
    images, whole = _images(out), _images(bags["whole"])
    assert sorted(images) == [T0 + i * PERIOD for i in range(first, FRAMES)]
    for t, image in images.items():
        assert np.array_equal(image, whole[t])  # the first one included: exactly the whole bag's
    # the other topics are written from `start` on too
    chatter = [m for m in read_all(out) if m[0] == "/chatter"]
    assert [m[2] for m in chatter] == [T0 + i * PERIOD + 7 for i in range(first, FRAMES)]


def test_decompress_start_errors(bags, hyperprior_codec) -> None:
    with pytest.raises(ValueError, match="after the end of the bag"):
        decompress(bags["comp"], bags["root"] / "late", codec_factory=lambda n: hyperprior_codec, progress=False,
                   start=99.0)
    with pytest.raises(ValueError, match="start must be"):
        decompress(bags["comp"], bags["root"] / "neg", codec_factory=lambda n: hyperprior_codec, progress=False,
                   start=-1.0)
    assert not (bags["root"] / "late").exists() and not (bags["root"] / "neg").exists()


def test_a_lost_message_costs_the_frames_up_to_the_next_keyframe(bags, hyperprior_codec) -> None:
    lossy = bags["root"] / "lossy"
    rows = [(topic, msgtype, t, raw) for topic, msgtype, t, raw in read_all(bags["comp"])
            if not (topic == FEATURES and t == T0 + 7 * PERIOD)]  # frame 7, a P-frame, never recorded
    write_bag(lossy, "mcap", rows, extras=False)
    out = bags["root"] / "lossy_dec"
    summary = decompress(lossy, out, codec_factory=lambda name: hyperprior_codec, progress=False)
    assert summary.skipped == {"missing_reference": 2}  # 8 and 9; 10 is a key frame
    images, whole = _images(out), _images(bags["whole"])
    assert sorted(images) == [T0 + i * PERIOD for i in range(FRAMES) if i not in (7, 8, 9)]
    assert all(np.array_equal(image, whole[t]) for t, image in images.items())  # no wrong image


def test_eval_decodes_in_stream_order_even_for_frames_without_a_raw_partner(bags, video_frames, hyperprior_codec) -> None:
    report = evaluate(bags["comp"], bags["raw"], codec_factory=lambda name: hyperprior_codec, ms_ssim=False,
                      progress=False)
    assert report["frames"] == FRAMES and report["failed"] == {}
    reference = StreamDecoder(hyperprior_codec)
    by_hand = [psnr(video_frames[i], reference.decode(bytes(f.data))) for i, f in enumerate(_features(bags["comp"]))]
    assert [r["psnr_db"] for r in report["per_frame"]] == pytest.approx(by_hand, abs=1e-9)
    # a raw bag lacking frames 6 and 7: their compressed frames are unmatched, yet 8 and 9 (P-frames
    # that depend on them) are still decoded right
    partial = bags["root"] / "raw_partial"
    write_bag(partial, "mcap", _rows(video_frames, skip=(6, 7)), extras=False)
    report = evaluate(bags["comp"], partial, codec_factory=lambda name: hyperprior_codec, ms_ssim=False, progress=False)
    assert report["frames"] == FRAMES - 2 and report["unmatched"] == {"compressed": 2, "raw": 0}
    assert report["failed"] == {}
    expected = [p for i, p in enumerate(by_hand) if i not in (6, 7)]
    assert [r["psnr_db"] for r in report["per_frame"]] == pytest.approx(expected, abs=1e-9)


def test_cli_keyframe_interval_and_start(bags, tmp_path, capsys) -> None:
    parser = bag_parser()
    # Left out, compress picks the node's default (10), or 0 with --effort (intra-only refinement).
    assert parser.parse_args(["bag", "compress", "in", "out"]).keyframe_interval is None
    out = tmp_path / "cli"
    args = parser.parse_args(["bag", "compress", str(bags["raw"]), str(out), "--keyframe-interval", "4",
                              "--model", "hyperprior-mse", "--no-progress", "--json"])
    assert args.func(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["frames"], summary["keyframes"], summary["keyframe_interval"]) == (FRAMES, 7, 4)
    args = parser.parse_args(["bag", "info", str(out)])
    assert args.func(args) == 0 and "7 key, 18 P" in capsys.readouterr().out
    args = parser.parse_args(["bag", "decompress", str(out), str(tmp_path / "dec"), "--start", "1.4", "--no-progress"])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "from 1.4 s on: 2 earlier frames decoded" in text and "11 frames decoded" in text
    with pytest.raises(SystemExit):
        parser.parse_args(["bag", "compress", "in", "out", "--keyframe-interval", "-1"])
    with pytest.raises(SystemExit):
        parser.parse_args(["bag", "decompress", "in", "out", "--start", "soon"])
    args = parser.parse_args(["bag", "decompress", str(out), str(tmp_path / "late"), "--start", "60"])
    assert args.func(args) == 1 and "after the end of the bag" in capsys.readouterr().err
