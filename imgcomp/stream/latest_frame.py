"""A single-slot mailbox and the worker thread that drains it: "always the newest frame".

A camera publishes at its own rate; when encoding (or decoding) a frame takes longer than the
frame interval, a queue would grow and every frame would come out later than the one before.
Here the producer (the subscription callback) overwrites the slot instead: an item that was
never taken is counted as dropped, and the worker always takes the newest. Latency under
overload therefore stays at most one frame (the one being processed) plus one frame time.

Some streams cannot simply forget a frame: a temporal-mode P-frame needs the frame before it.
With `keep_skipped` > 0 the mailbox keeps (up to that many of) the items it replaced, in order,
and the worker hands them to `on_skipped` right before the newest item: the decoder uses that to
keep its references (entropy decoding only) while it still shows only the newest frame.

ROS-free: a node calls `put()` from its subscription callback and processes items in
`handler`, on the worker thread.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Callable, Generic, TypeVar

__all__ = ["LatestFrameMailbox", "LatestFrameWorker"]

T = TypeVar("T")


class LatestFrameMailbox(Generic[T]):
    """One slot; `put` replaces an unconsumed item (counted in `dropped`; kept for
    `get_with_skipped` when `keep_skipped` > 0, at most that many, the oldest forgotten first,
    counted in `forgotten`). Thread-safe."""

    def __init__(self, keep_skipped: int = 0) -> None:
        if keep_skipped < 0:
            raise ValueError(f"keep_skipped must be >= 0, got {keep_skipped}")
        self._cond = threading.Condition()
        self._item: T | None = None
        self._full = False
        self._closed = False
        self._keep = keep_skipped
        self._skipped: deque[T] = deque()
        self.put_count = 0
        self.taken_count = 0
        self.dropped = 0
        self.forgotten = 0

    def put(self, item: T) -> bool:
        """Store `item`; return True when it replaced one that was never taken.

        After `close()` the item is ignored (and counted as dropped).
        """
        with self._cond:
            self.put_count += 1
            if self._closed:
                self.dropped += 1
                return True
            replaced = self._full
            if replaced:
                self.dropped += 1
                if self._keep:
                    self._skipped.append(self._item)  # type: ignore[arg-type]
                    if len(self._skipped) > self._keep:
                        self._skipped.popleft()
                        self.forgotten += 1
            self._item, self._full = item, True
            self._cond.notify()
            return replaced

    def get(self, timeout: float | None = None) -> tuple[bool, T | None]:
        """Wait for an item: `(True, item)`, or `(False, None)` on timeout or once closed."""
        ok, item, _ = self.get_with_skipped(timeout)
        return ok, item

    def get_with_skipped(self, timeout: float | None = None) -> tuple[bool, T | None, list[T]]:
        """`get`, plus the items the taken one replaced (oldest first; empty unless
        `keep_skipped`), taken together so none of them can come after the item."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._full or self._closed, timeout):
                return False, None, []
            if not self._full:  # closed and empty
                return False, None, []
            item, self._item, self._full = self._item, None, False
            skipped = list(self._skipped)
            self._skipped.clear()
            self.taken_count += 1
            return True, item, skipped

    def close(self) -> None:
        """Wake every waiter; a pending item is discarded and counted as dropped."""
        with self._cond:
            if self._full:
                self.dropped += 1
            self._closed = True
            self._item, self._full = None, False
            self._skipped.clear()
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed

    @property
    def pending(self) -> bool:
        with self._cond:
            return self._full


class LatestFrameWorker(Generic[T]):
    """A daemon thread that runs `handler(item)` on the newest item `put()` into its mailbox.

    `on_drop()` (optional) is called, outside any lock, for each item replaced unseen. With
    `on_skipped`, up to `keep_skipped` replaced items are passed to it (oldest first, on the
    worker thread) right before `handler` gets the item that replaced them.
    An exception from `handler` or `on_skipped` is passed to `on_error(exc)` (default: re-raised
    into the thread, which ends it), so a handler that must never stop should catch its own errors.
    """

    def __init__(
        self,
        handler: Callable[[T], None],
        *,
        name: str = "imgcomp-worker",
        on_drop: Callable[[], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        on_skipped: Callable[[list[T]], None] | None = None,
        keep_skipped: int = 30,
    ) -> None:
        self._handler = handler
        self._on_drop = on_drop
        self._on_error = on_error
        self._on_skipped = on_skipped
        self.mailbox: LatestFrameMailbox[T] = LatestFrameMailbox(keep_skipped if on_skipped is not None else 0)
        self.processed = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False

    def start(self) -> "LatestFrameWorker[T]":
        if not self._started:
            self._started = True
            self._thread.start()
        return self

    def put(self, item: T) -> bool:
        """Hand over `item`; True when an unprocessed older item was dropped for it."""
        dropped = self.mailbox.put(item)
        if dropped and self._on_drop is not None:
            self._on_drop()
        return dropped

    @property
    def dropped(self) -> int:
        return self.mailbox.dropped

    def stop(self, timeout: float | None = 5.0) -> bool:
        """Stop taking items and wait up to `timeout` s for the current one; True if stopped."""
        self.mailbox.close()
        if self._started and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def _run(self) -> None:
        while True:
            ok, item, skipped = self.mailbox.get_with_skipped()
            if not ok:
                return
            try:
                if skipped and self._on_skipped is not None:
                    self._on_skipped(skipped)
                self._handler(item)  # type: ignore[arg-type]
            except BaseException as exc:  # noqa: BLE001 - reported, not swallowed silently
                if self._on_error is None:
                    raise
                self._on_error(exc)
            finally:
                self.processed += 1
