"""Rolling diagnostics of one stream: rates, sizes, latency, drops and rejections.

`StreamStats` is fed by a node (or a core) as frames arrive, come out, are dropped or are
rejected, and turns the last `window_s` seconds into the key/value strings of a
`diagnostic_msgs/DiagnosticStatus` (`snapshot()`) and a status level (`status()`):

* OK    - frames flow (or nothing arrived in the window: "idle");
* WARN  - frames were dropped or rejected in the window, but some came out;
* ERROR - frames arrived in the window and none came out (nothing encodes / decodes).

Counters of the whole run (`*_total`) are reported beside the windowed values. Thread-safe;
the clock is injectable for tests (seconds, monotonic).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from typing import Callable

__all__ = ["ERROR", "OK", "STALE", "WARN", "StreamStats", "percentile"]

# diagnostic_msgs/DiagnosticStatus levels
OK, WARN, ERROR, STALE = 0, 1, 2, 3
LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR", STALE: "STALE"}


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (0..100) of a non-empty list."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of an empty list")
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


class StreamStats:
    """Rolling statistics; `latency_name` labels the latency keys ("encode" / "decode")."""

    def __init__(
        self,
        latency_name: str = "encode",
        *,
        window_s: float = 5.0,
        max_latency_samples: int = 500,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self.latency_name = latency_name
        self.window_s = float(window_s)
        self._clock = clock
        self._t0 = clock()  # rates are averaged over min(window_s, age)
        self._lock = threading.Lock()
        self._inputs: deque[float] = deque()
        self._outputs: deque[tuple[float, int, int]] = deque()  # (time, payload bytes, pixels)
        self._drops: deque[float] = deque()
        self._rejections: deque[tuple[float, str]] = deque()
        self._latency: deque[tuple[float, float]] = deque(maxlen=max_latency_samples)
        self.inputs_total = 0
        self.outputs_total = 0
        self.dropped_total = 0
        self.rejected_total = 0
        self.rejected_by_cause: Counter[str] = Counter()

    # ---------------------------------------------------------------------------- events
    def record_input(self) -> None:
        with self._lock:
            self._inputs.append(self._clock())
            self.inputs_total += 1

    def record_output(self, payload_bytes: int, pixels: int, latency_s: float) -> None:
        """A frame came out: its compressed size, its pixel count and its processing time."""
        with self._lock:
            now = self._clock()
            self._outputs.append((now, int(payload_bytes), int(pixels)))
            self._latency.append((now, float(latency_s)))
            self.outputs_total += 1

    def record_dropped(self, count: int = 1) -> None:
        with self._lock:
            now = self._clock()
            self._drops.extend([now] * count)
            self.dropped_total += count

    def record_rejected(self, cause: str) -> None:
        with self._lock:
            self._rejections.append((self._clock(), cause))
            self.rejected_total += 1
            self.rejected_by_cause[cause] += 1

    # --------------------------------------------------------------------------- reading
    def _prune(self, now: float) -> None:
        start = now - self.window_s
        for queue in (self._inputs, self._drops):
            while queue and queue[0] <= start:
                queue.popleft()
        for queue in (self._outputs, self._rejections, self._latency):
            while queue and queue[0][0] <= start:
                queue.popleft()

    def status(self) -> tuple[int, str]:
        """(level, message) over the last window."""
        with self._lock:
            now = self._clock()
            self._prune(now)
            return self._status_locked()

    def _status_locked(self) -> tuple[int, str]:
        n_in, n_out = len(self._inputs), len(self._outputs)
        n_drop, n_rej = len(self._drops), len(self._rejections)
        window = f"the last {self.window_s:g} s"
        if n_in == 0 and n_out == 0 and n_rej == 0:
            return OK, f"idle: no input in {window}"
        if n_out == 0:
            causes = Counter(cause for _, cause in self._rejections)
            detail = ", ".join(f"{c}: {n}" for c, n in sorted(causes.items())) or "none rejected"
            return ERROR, f"nothing came out in {window} ({n_in} in; rejected {detail})"
        if n_rej:
            return WARN, f"{n_drop} dropped and {n_rej} rejected in {window}"
        if n_drop:
            # A camera faster than the codec: skipping to the newest frame is the design (one frame
            # of latency, never a queue), not a fault, so it stays OK and says so.
            return OK, f"ok: {n_out} of {n_in} frames coded in {window}, older frames skipped to stay at the latest (by design)"
        return OK, "ok"

    def snapshot(self) -> dict[str, str]:
        """Key/value strings ready for diagnostic_msgs/KeyValue."""
        with self._lock:
            now = self._clock()
            self._prune(now)
            span = max(min(self.window_s, now - self._t0), 1e-3)
            level, message = self._status_locked()
            out_bytes = sum(b for _, b, _ in self._outputs)
            out_pixels = sum(p for _, _, p in self._outputs)
            latencies = [v * 1000.0 for _, v in self._latency]
            snap = {
                "status": LEVEL_NAMES[level],
                "message": message,
                "window_s": f"{self.window_s:g}",
                "fps_in": f"{len(self._inputs) / span:.2f}",
                "fps_out": f"{len(self._outputs) / span:.2f}",
                "mean_bpp": f"{8.0 * out_bytes / out_pixels:.4f}" if out_pixels else "n/a",
                "bitrate_kbps": f"{out_bytes * 8.0 / 1000.0 / span:.1f}",
                f"{self.latency_name}_ms_p50": f"{percentile(latencies, 50):.1f}" if latencies else "n/a",
                f"{self.latency_name}_ms_p95": f"{percentile(latencies, 95):.1f}" if latencies else "n/a",
                "dropped_frames": str(len(self._drops)),
                "rejected_payloads": str(len(self._rejections)),
                "frames_in_total": str(self.inputs_total),
                "frames_out_total": str(self.outputs_total),
                "dropped_frames_total": str(self.dropped_total),
                "rejected_total": str(self.rejected_total),
            }
            for cause, count in sorted(self.rejected_by_cause.items()):
                snap[f"rejected.{cause}"] = str(count)
            return snap
