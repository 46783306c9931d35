"""`imgcomp.stream.latest_frame`: the single-slot mailbox and its worker under overload."""

from __future__ import annotations

import threading
import time

import pytest

from imgcomp.stream import (
    EncoderCore,
    FeaturesFields,
    ImageFields,
    LatestFrameMailbox,
    LatestFrameWorker,
)
from imgcomp.stream import stats as stats_mod

from stream_support import image_msg

# one torch thread: many times faster on two busy cores; on the robot's install path too (.ci/robot.sh)
pytestmark = [pytest.mark.robot, pytest.mark.usefixtures("one_torch_thread")]


# -------------------------------------------------------------------- latest-frame mailbox
class SlowConsumer:
    """Stands in for a slow encoder: blocks on the first item until released."""

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.busy = threading.Event()
        self.release = threading.Event()
        self.done = threading.Condition()

    def __call__(self, item: int) -> None:
        self.seen.append(item)
        self.busy.set()
        assert self.release.wait(10)
        with self.done:
            self.done.notify_all()


def test_mailbox_drops_under_overload_and_serves_the_newest() -> None:
    consumer = SlowConsumer()
    drops: list[int] = []
    worker = LatestFrameWorker(consumer, on_drop=lambda: drops.append(1)).start()
    try:
        assert worker.put(0) is False
        assert consumer.busy.wait(10)  # item 0 is being processed
        assert worker.put(1) is False  # waits in the slot
        assert [worker.put(i) for i in range(2, 6)] == [True] * 4  # each replaces the unseen one
        assert worker.dropped == 4 and len(drops) == 4
        with consumer.done:
            consumer.release.set()
            assert consumer.done.wait_for(lambda: len(consumer.seen) == 2, 10)
        deadline = time.monotonic() + 10
        while worker.processed < 2 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert consumer.seen == [0, 5]  # never 1..4: latency stays within one frame
        assert worker.processed == 2
    finally:
        consumer.release.set()
        assert worker.stop()
    assert worker.put(6) is True and worker.dropped == 5  # after stop: dropped, not processed
    assert consumer.seen == [0, 5]


def test_mailbox_get_and_close() -> None:
    box: LatestFrameMailbox[str] = LatestFrameMailbox()
    assert box.get(timeout=0.01) == (False, None)
    box.put("a")
    box.put("b")
    assert box.get(timeout=0) == (True, "b") and box.dropped == 1
    box.put("c")
    box.close()
    assert box.get() == (False, None) and box.dropped == 2 and box.closed


def test_worker_survives_handler_errors() -> None:
    errors: list[BaseException] = []
    seen: list[int] = []
    done = threading.Event()

    def handler(item: int) -> None:
        if item == 0:
            raise RuntimeError("boom")
        seen.append(item)
        done.set()

    worker = LatestFrameWorker(handler, on_error=errors.append).start()
    worker.put(0)
    deadline = time.monotonic() + 10
    while not errors and time.monotonic() < deadline:
        time.sleep(0.001)
    worker.put(1)
    assert done.wait(10)
    assert worker.stop()
    assert [str(e) for e in errors] == ["boom"] and seen == [1]


def test_worker_with_the_real_encoder_drops_under_a_burst(factory, photo) -> None:
    encoder = EncoderCore(factory, model="hyperprior-mse")
    outputs: list[FeaturesFields] = []
    worker = LatestFrameWorker(lambda msg: outputs.append(encoder.process(ImageFields.from_msg(msg))),
                               on_drop=encoder.stats.record_dropped).start()
    msgs = [image_msg(photo, "rgb8", stamp_ns=i) for i in range(30)]
    for msg in msgs:  # a burst far faster than encoding
        encoder.stats.record_input()
        worker.put(msg)
    deadline = time.monotonic() + 30
    while worker.mailbox.pending and time.monotonic() < deadline:
        time.sleep(0.005)
    assert worker.stop(30)
    assert worker.processed + worker.dropped == 30 and worker.dropped > 0
    assert outputs[-1].stamp.nanosec == 29  # the newest frame always comes out
    snap = encoder.diagnostics()
    assert snap["dropped_frames_total"] == str(worker.dropped) and snap["frames_in_total"] == "30"
    level, message = encoder.status()  # dropping to the latest frame is by design: OK, and said
    assert level == stats_mod.OK and "skipped to stay at the latest (by design)" in message


