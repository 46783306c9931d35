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




def test_mailbox_keeps_the_skipped_items_in_order_when_asked() -> None:
    box: LatestFrameMailbox[int] = LatestFrameMailbox(keep_skipped=2)
    for i in range(4):
        box.put(i)
    assert box.get_with_skipped(timeout=0) == (True, 3, [1, 2])  # 0 forgotten: only 2 are kept
    assert (box.dropped, box.forgotten) == (3, 1)
    box.put(4)
    assert box.get_with_skipped(timeout=0) == (True, 4, [])
    plain: LatestFrameMailbox[int] = LatestFrameMailbox()
    plain.put(0)
    plain.put(1)
    assert plain.get_with_skipped(timeout=0) == (True, 1, [])
    with pytest.raises(ValueError):
        LatestFrameMailbox(keep_skipped=-1)


def test_worker_hands_the_skipped_items_over_before_the_newest() -> None:
    """What the decoder node relies on: while the worker is busy, replaced messages are passed to
    `on_skipped` (oldest first) right before the message that replaced them."""
    consumer = SlowConsumer()
    calls: list[tuple[str, object]] = []

    def handler(item: int) -> None:
        calls.append(("item", item))
        consumer(item)

    worker = LatestFrameWorker(handler, on_skipped=lambda items: calls.append(("skipped", list(items))),
                               keep_skipped=3).start()
    try:
        worker.put(0)
        assert consumer.busy.wait(10)
        for i in range(1, 6):
            worker.put(i)  # 1..4 replaced while 0 is processed; 1 forgotten (only 3 kept)
        with consumer.done:
            consumer.release.set()
            assert consumer.done.wait_for(lambda: len(consumer.seen) == 2, 10)
    finally:
        consumer.release.set()
        assert worker.stop()
    assert calls == [("item", 0), ("skipped", [2, 3, 4]), ("item", 5)]
    assert worker.dropped == 4 and worker.mailbox.forgotten == 1
