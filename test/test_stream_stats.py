"""`imgcomp.stream.stats` and `imgcomp.stream.rejections`: rolling statistics, status levels, the
per-cause log throttle."""

from __future__ import annotations


import pytest

from imgcomp.stream import (
    Rejection,
    RejectionLog,
    StreamStats,
)
from imgcomp.stream import stats as stats_mod


# one torch thread: many times faster on two busy cores; on the robot's install path too (.ci/robot.sh)
pytestmark = [pytest.mark.robot, pytest.mark.usefixtures("one_torch_thread")]


# ------------------------------------------------------------------------- stats / logging
class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_stats_snapshot_and_levels() -> None:
    clock = FakeClock()
    s = StreamStats("decode", window_s=2.0, clock=clock)
    assert s.status() == (stats_mod.OK, "idle: no input in the last 2 s")
    for i in range(20):  # 10 fps for 2 s, 1000-byte payloads of 100x100 images
        clock.t += 0.1
        s.record_input()
        s.record_output(1000, 100 * 100, latency_s=0.01 * (i % 10 + 1))
    snap = s.snapshot()
    assert all(isinstance(v, str) for v in snap.values())
    assert snap["fps_in"] == snap["fps_out"] == "10.00"
    assert snap["mean_bpp"] == "0.8000" and snap["bitrate_kbps"] == "80.0"
    assert snap["decode_ms_p50"] == "55.0" and snap["decode_ms_p95"] == "100.0"
    assert snap["status"] == "OK"
    s.record_dropped(2)
    assert s.status()[0] == stats_mod.OK and "by design" in s.status()[1]
    s.record_rejected("unknown_model")
    assert s.status()[0] == stats_mod.WARN
    clock.t += 5  # the window moves past everything
    s.record_input()
    s.record_rejected("malformed_payload")
    level, message = s.status()
    assert level == stats_mod.ERROR and "malformed_payload: 1" in message
    snap = s.snapshot()
    assert snap["dropped_frames"] == "0" and snap["dropped_frames_total"] == "2"
    assert snap["rejected.malformed_payload"] == "1" and snap["status"] == "ERROR"
    clock.t += 5
    assert s.status()[0] == stats_mod.OK


def test_latency_window_is_bounded() -> None:
    s = StreamStats(max_latency_samples=10, clock=FakeClock())
    for i in range(100):
        s.record_output(10, 10, latency_s=i / 1000)
    assert s.snapshot()["encode_ms_p50"] == "94.5"  # only the last 10 samples (90..99 ms)


def test_rejection_log_throttles_per_cause() -> None:
    clock = FakeClock()
    log = RejectionLog(period_s=10, clock=clock)
    bad = Rejection("malformed_payload", "checksum mismatch")
    assert log.report(bad, "payload") == "rejected payload (malformed_payload): checksum mismatch"
    assert log.report(bad) is None
    assert log.report(Rejection("model_mismatch", "other weights")) is not None  # other cause: logged
    clock.t += 3
    assert log.report(bad) is None
    clock.t += 10
    line = log.report(bad)
    assert line is not None and "[2 more malformed_payload rejection(s)" in line


