"""The demo's path end to end on a short real clip: encode, MCAP bag, read back, decode, report."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from imgcomp.rosbag.io import read_messages
from imgcomp.eval.demo import FEATURES_TOPIC, run_demo
from imgcomp.rosbag.messages import MSG_TYPE


@pytest.fixture()
def short_clip(tmp_path, real_images):
    """Four frames of a slow pan over the committed vtest.avi frame, as an MJPG .avi."""
    frame = real_images["vtest_frame0"]
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (320, 240))
    for shift in range(4):
        writer.write(cv2.cvtColor(np.ascontiguousarray(frame[8 * shift : 8 * shift + 240, 10 * shift : 10 * shift + 320]), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.mark.slow
def test_demo_writes_a_real_bag_and_an_honest_report(tmp_path, short_clip):
    out = tmp_path / "demo"
    report = run_demo(short_clip, out, model="hyperprior-mse", quality=4)
    messages = list(read_messages(out / "features_bag", [FEATURES_TOPIC]))
    assert len(messages) == report.frames == 4
    assert all(m.msgtype == MSG_TYPE for m in messages)
    stamps = [m.timestamp_ns for m in messages]
    assert stamps == sorted(stamps) and len(set(stamps)) == 4
    first = messages[0].decode()
    assert (first.height, first.width, first.encoding, first.quality) == (240, 320, "rgb8", 4)
    assert first.header.frame_id == "camera_optical_frame"
    payload_bits = sum(8 * len(m.decode().data) for m in messages)
    assert report.mean_bpp == pytest.approx(payload_bits / (4 * 240 * 320))
    assert report.raw_bag_bytes > 20 * report.bag_bytes  # raw rgb8 is 24 bpp
    assert 0 < report.psnr_db < 99 and 0 < report.ms_ssim <= 1
    assert json.loads((out / "report.json").read_text())["frames"] == 4
    assert (out / "side_by_side.png").stat().st_size > 0


def test_demo_with_a_classical_codec(tmp_path, short_clip):
    """`imgcomp demo --model avif`: the same bag, report and picture, fast enough for every run."""
    out = tmp_path / "demo_avif"
    report = run_demo(short_clip, out, model="avif", quality=3)
    messages = list(read_messages(out / "features_bag", [FEATURES_TOPIC]))
    assert len(messages) == report.frames == 4
    first = messages[0].decode()
    assert (first.codec, first.quality, first.height, first.width) == ("avif", 3, 240, 320)
    assert report.model == "avif" and report.psnr_db > 25
    assert report.raw_bag_bytes > 20 * report.bag_bytes
