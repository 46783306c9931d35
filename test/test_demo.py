"""The demo's path end to end on a short real clip: the temporal stream through the encoder core,
an MCAP bag, read back, the decoder core, beside the intra mode, JPEG and raw, and the report."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from imgcomp.bitstream import FRAME_KEY, FRAME_PREDICTED, unpack
from imgcomp.eval.demo import FEATURES_TOPIC, INTRA_BAG, TEMPORAL_BAG, run_demo
from imgcomp.rosbag.io import read_messages
from imgcomp.rosbag.messages import MSG_TYPE

VIDEO = Path(__file__).resolve().parent / "fixtures" / "vtest_100f_192x144.avi"
FRAMES = 12  # two groups at the default interval 10: K P*9 K P


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """The first 12 frames of the committed vtest.avi clip at 384x288 (MS-SSIM's five scales need
    more than 192x144), as an MJPG .avi: a real static-camera stream like the demo's."""
    capture = cv2.VideoCapture(str(VIDEO))
    path = tmp_path_factory.mktemp("clip") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (384, 288))
    for _ in range(FRAMES):
        ok, frame = capture.read()
        assert ok
        writer.write(cv2.resize(frame, (384, 288), interpolation=cv2.INTER_CUBIC))
    writer.release()
    return path


@pytest.fixture(scope="module")
def temporal_demo(tmp_path_factory, clip, one_torch_thread):
    out = tmp_path_factory.mktemp("demo")
    return out, run_demo(clip, out, model="hyperprior-mse", quality=3)


def _features(bag: Path) -> list:
    return [m.decode() for m in read_messages(bag, [FEATURES_TOPIC])]


def test_the_bag_holds_the_temporal_stream_in_the_nodes_pattern(temporal_demo):
    """Would fail if the demo silently stopped producing P-frames: the messages read back from the
    bag are a key frame every 10 frames (the node's default) and P-frames naming the frame before."""
    out, report = temporal_demo
    messages = list(read_messages(out / TEMPORAL_BAG, [FEATURES_TOPIC]))
    assert len(messages) == report.frames == FRAMES and all(m.msgtype == MSG_TYPE for m in messages)
    stamps = [m.timestamp_ns for m in messages]
    assert stamps == sorted(stamps) and len(set(stamps)) == FRAMES
    features = [m.decode() for m in messages]
    expected = [FRAME_KEY] + [FRAME_PREDICTED] * 9 + [FRAME_KEY, FRAME_PREDICTED]
    assert [int(f.frame_type) for f in features] == expected
    headers = [unpack(bytes(f.data)).header for f in features]
    assert [h.frame_type for h in headers] == expected  # the payloads say so too, not only the fields
    assert len({h.stream_id for h in headers}) == 1
    for index, (f, h) in enumerate(zip(features, headers)):
        assert int(f.frame_number) == h.frame_number == index
        assert int(f.reference_frame_number) == (index if f.frame_type == FRAME_KEY else index - 1)
    first = features[0]
    assert (first.height, first.width, first.encoding, first.quality) == (288, 384, "rgb8", 3)
    assert first.header.frame_id == "camera_optical_frame"

    t = report.temporal
    assert t.frame_types == "KPPPPPPPPPKP" and (t.keyframes, t.pframes) == (2, 10) and t.keyframe_interval == 10
    assert t.temporal.startswith("on:")
    payload_bits = [8 * len(f.data) for f in features]
    assert t.mean_bpp == pytest.approx(sum(payload_bits) / (FRAMES * 288 * 384))
    assert t.key_bits_mean == pytest.approx(np.mean([b for b, e in zip(payload_bits, expected) if e == FRAME_KEY]))
    assert t.p_bits_mean < t.key_bits_mean / 3  # a P-frame of a static camera costs a fraction of a key frame
    for timing in (t.encode_ms, t.decode_ms):
        assert timing["key"]["n"] == 2 and timing["P"]["n"] == 10
        assert 0 < timing["P"]["p50"] <= timing["P"]["p95"]


def test_the_intra_mode_beside_it_is_every_frame_a_key_frame_and_costs_more(temporal_demo):
    out, report = temporal_demo
    intra = _features(out / INTRA_BAG)
    assert [int(f.frame_type) for f in intra] == [FRAME_KEY] * FRAMES
    assert report.intra.frame_types == "K" * FRAMES and report.intra.pframes == 0 and not report.same_stream
    t, i = report.temporal, report.intra
    assert t.mean_bpp < 0.6 * i.mean_bpp and t.bag_bytes < i.bag_bytes
    assert t.kbps_at_source_fps == pytest.approx(t.mean_bpp * 384 * 288 * 10 / 1e3)
    assert abs(t.psnr_db - i.psnr_db) < 1.5  # P-frames keep the quality of the key frames
    # the key frames of both streams are the same intra code of the same frames
    assert t.key_bits_mean == pytest.approx(np.mean([8 * len(intra[k].data) for k in (0, 10)]), abs=16)
    assert 0 < t.psnr_db < 99 and 0 < t.ms_ssim <= 1 and 0 < i.ms_ssim <= 1


def test_the_report_files_hold_every_figure(temporal_demo):
    out, report = temporal_demo
    data = json.loads((out / "report.json").read_text())
    assert data["frames"] == FRAMES and data["temporal"]["frame_types"] == "KPPPPPPPPPKP"
    assert data["intra"]["keyframes"] == FRAMES
    assert report.raw_bag_bytes > 20 * report.intra.bag_bytes  # raw rgb8 is 24 bpp
    assert report.jpeg_equal_msssim_ms_ssim >= report.temporal.ms_ssim - 0.01
    text = (out / "report.md").read_text()
    for needle in ("imgcomp temporal (key every 10)", "imgcomp intra", "| PSNR (dB) |", "| MS-SSIM |",
                   "temporal: P-frames | 10 |", "temporal: key frames | 2 |", "intra: key frames | 12 |", "KPPPPPPPPPKP"):
        assert needle in text
    assert report.side_by_side_frame == 9  # the last P-frame of the first group
    picture = cv2.imread(str(out / "side_by_side.png"))
    assert picture.shape == (288, 4 * 384, 3)  # original | temporal | intra | JPEG


def test_demo_with_a_classical_codec(tmp_path, clip, one_torch_thread):
    """`imgcomp demo --model avif`: no temporal tables, so one intra stream reported as both."""
    out = tmp_path / "demo_avif"
    report = run_demo(clip, out, model="avif", quality=3, max_frames=4)
    features = _features(out / TEMPORAL_BAG)
    assert len(features) == report.frames == 4
    assert (features[0].codec, features[0].quality, features[0].height, features[0].width) == ("avif", 3, 288, 384)
    assert [int(f.frame_type) for f in features] == [FRAME_KEY] * 4
    assert report.same_stream and report.temporal.temporal.startswith("off:") and report.intra == report.temporal
    assert not (out / INTRA_BAG).exists()
    assert report.model == "avif" and report.temporal.psnr_db > 25
    assert report.raw_bag_bytes > 20 * report.temporal.bag_bytes
    assert "temporal off" in (out / "report.md").read_text()
