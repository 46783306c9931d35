"""Pick a quality level per frame so that a stream holds a target bitrate.

The learned codec has a handful of discrete quality levels (1 = fewest bits), and the bytes a
level costs depend on the scene. `RateController` holds the bits of every 1 s window near
`target_kbps` by mixing levels from frame to frame:

* **Size model.** A per-level estimate of the payload size, kept in the log domain. Each coded
  frame corrects its own level by `alpha` of the surprise (an EMA) and the other levels by a
  weight that shrinks with the distance between levels (`alpha * neighbour_weight ** d`), so a
  scene change moves the whole table within a frame or two while the ratios between levels,
  learned from the levels actually used, stay. Before the first frame the levels are assumed to
  grow by `LEVEL_RATIO_PRIOR` each.
* **Leaky bucket over a sliding window.** The budget of a window is `target * window_s`; a
  frame's share of it is `budget / frames_per_window`. For the next frame the controller adds
  up the bytes of the frames already inside the 1 s window that ends with it; what is left
  beyond a share (positive or negative) is handed to this frame at `gain` (0.5: half now, the
  rest spread over the following frames, so one big frame is not echoed a window later), and
  the level whose predicted size is nearest to that allowance is picked. Nearest, not "largest
  that fits", keeps the window sum centred on the target instead of always a little under it.
  Frames then alternate between the two levels around the target. Frames that the window
  should hold but that were not coded yet (start-up, target change, a time jump) count as
  spending exactly their share, so the first frames start at the target rate instead of
  bursting.
* **Clamping.** A target below what the lowest level costs, or above the highest level, pins
  the level to 1 or to `levels`; `diagnostics()` says so (`rate_range` = `below_range` /
  `above_range`).

`target_kbps = 0` switches the controller off: `next_quality` returns the fixed `quality`.
It still learns sizes and reports `achieved_kbps`, so it can be switched on at any time.

Times are seconds on any monotonic clock (message stamps or `time.monotonic()`).
"""

from __future__ import annotations

import math
import threading
from collections import deque

__all__ = ["LEVEL_RATIO_PRIOR", "RateController"]

# Assumed size ratio between adjacent levels before any is measured: the shipped hyperprior models
# grow by 1.37x per level on the validation photos (model cards). A prior far above that makes the
# first switch to an unused level look like a scene change.
LEVEL_RATIO_PRIOR = 1.4
_SCENE_CUT_LOG = math.log(1.25)  # a surprise beyond 25 % is treated as a scene change
_MAX_GAP_S = 5.0  # a pause longer than this (or a clock going back) restarts the window


class RateController:
    """Per-frame quality for a target bitrate; see the module docstring. Thread-safe."""

    def __init__(
        self,
        levels: int,
        target_kbps: float = 0.0,
        fps_hint: float = 30.0,
        *,
        quality: int | None = None,
        window_s: float = 1.0,
        alpha: float = 0.5,
        neighbour_weight: float = 0.6,
        gain: float = 0.5,
        nearest: bool = True,
    ) -> None:
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
            raise ValueError(f"levels must be a positive int, got {levels!r}")
        if not fps_hint > 0 or not math.isfinite(fps_hint):
            raise ValueError(f"fps_hint must be a positive number, got {fps_hint!r}")
        if not window_s > 0:
            raise ValueError(f"window_s must be positive, got {window_s!r}")
        if not 0 < alpha <= 1 or not 0 <= neighbour_weight < 1:
            raise ValueError("alpha must be in (0, 1] and neighbour_weight in [0, 1)")
        if not 0 < gain <= 1:
            raise ValueError(f"gain must be in (0, 1], got {gain!r}")
        self.levels = levels
        self.window_s = float(window_s)
        self._alpha = alpha
        self._gain = gain
        self._nearest = nearest
        self._neighbour_weight = neighbour_weight
        self._lock = threading.Lock()
        self._quality = self._check_quality((levels + 1) // 2 if quality is None else quality)
        self._target_kbps = self._check_target(target_kbps)
        self._interval = 1.0 / fps_hint
        self._log_size: list[float] | None = None  # log(bytes) per level (index = level - 1)
        self._frames: deque[tuple[float, int]] = deque()  # (stamp, bytes) of coded frames
        self._epoch = -math.inf  # frames at or before this stamp do not count for control
        self._last_stamp: float | None = None
        self._last_level: int | None = None
        self.frames_coded = 0

    # --------------------------------------------------------------------------- settings
    def _check_quality(self, quality: int) -> int:
        if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= self.levels:
            raise ValueError(f"quality must be an int in 1..{self.levels}, got {quality!r}")
        return quality

    @staticmethod
    def _check_target(target_kbps: float) -> float:
        value = float(target_kbps)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"target_kbps must be a finite number >= 0, got {target_kbps!r}")
        return value

    @property
    def enabled(self) -> bool:
        return self._target_kbps > 0

    @property
    def target_kbps(self) -> float:
        return self._target_kbps

    @target_kbps.setter
    def target_kbps(self, value: float) -> None:
        self.set_target_kbps(value)

    def set_target_kbps(self, value: float) -> None:
        """Change the target (0 = off). The window restarts at the new target at once."""
        value = self._check_target(value)
        with self._lock:
            if value != self._target_kbps:
                self._target_kbps = value
                self._restart_window()

    @property
    def quality(self) -> int:
        """The fixed level used while off, and for the very first frame while on."""
        return self._quality

    def set_quality(self, quality: int) -> None:
        quality = self._check_quality(quality)
        with self._lock:
            self._quality = quality

    # ----------------------------------------------------------------------------- control
    def _restart_window(self) -> None:
        if self._last_stamp is not None:
            self._epoch = self._last_stamp

    def _budget_bytes(self) -> float:
        return self._target_kbps * 1000.0 / 8.0 * self.window_s

    def _slots(self) -> int:
        return max(1, round(self.window_s / self._interval))

    def _window_bytes(self, end: float, since: float) -> tuple[int, int]:
        """(bytes, frames) of the coded frames inside the window ending at `end`."""
        start = max(end - self.window_s + 0.5 * self._interval, since)
        total = count = 0
        for stamp, size in reversed(self._frames):
            if stamp <= start:
                break
            if stamp <= end:
                total += size
                count += 1
        return total, count

    def _check_time(self, stamp: float) -> None:
        last = self._last_stamp
        if last is not None and (stamp < last or stamp - last > max(_MAX_GAP_S, 5 * self.window_s)):
            self._frames.clear()
            self._epoch = -math.inf
            self._last_stamp = None

    def next_quality(self, stamp: float) -> int:
        """The level for the frame taken at `stamp` (seconds)."""
        with self._lock:
            if not self.enabled or self._log_size is None:
                return self._quality
            self._check_time(stamp)
            budget = self._budget_bytes()
            slots = self._slots()
            spent, frames = self._window_bytes(stamp, self._epoch)
            virtual = budget / slots * max(0, slots - 1 - frames)
            remaining = budget - spent - virtual
            share = budget / slots
            allowance = share + self._gain * (remaining - share)
            sizes = [math.exp(v) for v in self._log_size]
            if self._nearest:
                return 1 + min(range(self.levels), key=lambda k: abs(sizes[k] - allowance))
            level = 1
            for candidate in range(self.levels, 0, -1):
                if sizes[candidate - 1] <= allowance:
                    level = candidate
                    break
            return level

    def update(self, quality: int, size_bytes: int, stamp: float) -> None:
        """Report the payload actually sent for the frame at `stamp`, coded at `quality`."""
        quality = self._check_quality(quality)
        if size_bytes <= 0:
            raise ValueError(f"size_bytes must be positive, got {size_bytes!r}")
        with self._lock:
            self._check_time(stamp)
            if self._last_stamp is not None:
                dt = stamp - self._last_stamp
                if 0 < dt <= self.window_s:
                    self._interval += 0.1 * (dt - self._interval)
            self._last_stamp = stamp
            self._last_level = quality
            self.frames_coded += 1
            self._frames.append((stamp, int(size_bytes)))
            horizon = stamp - 2 * self.window_s
            while self._frames and self._frames[0][0] < horizon:
                self._frames.popleft()
            self._learn(quality, size_bytes)

    def _learn(self, quality: int, size_bytes: int) -> None:
        observed = math.log(size_bytes)
        i = quality - 1
        if self._log_size is None:
            step = math.log(LEVEL_RATIO_PRIOR)
            self._log_size = [observed + (k - i) * step for k in range(self.levels)]
            return
        est = self._log_size
        error = observed - est[i]
        if abs(error) > _SCENE_CUT_LOG:
            # A scene change: every level moves with it at once, and the coded level is taken
            # as measured. The EMA below then refines the ratios between levels.
            for k in range(self.levels):
                est[k] += error
        else:
            for k in range(self.levels):
                est[k] += self._alpha * self._neighbour_weight ** abs(k - i) * error
        # Sizes grow with the level: keep the table monotonic around the measured level.
        for k in range(i + 1, self.levels):
            est[k] = max(est[k], est[k - 1])
        for k in range(i - 1, -1, -1):
            est[k] = min(est[k], est[k + 1])

    # ------------------------------------------------------------------------- reporting
    def achieved_kbps(self, now: float | None = None) -> float:
        """Payload bitrate over the window ending at `now` (default: the last frame)."""
        with self._lock:
            end = self._last_stamp if now is None else now
            if end is None:
                return 0.0
            spent, _ = self._window_bytes(end, -math.inf)
            return spent * 8.0 / 1000.0 / self.window_s

    def predicted_bytes(self) -> list[float] | None:
        """The size model: predicted payload bytes per level (None before the first frame)."""
        with self._lock:
            return None if self._log_size is None else [math.exp(v) for v in self._log_size]

    @property
    def fps(self) -> float:
        """Frame rate measured from the stamps (starts at `fps_hint`)."""
        return 1.0 / self._interval

    def range_kbps(self) -> tuple[float, float] | None:
        """Bitrates of the lowest and highest level at the measured frame rate."""
        sizes = self.predicted_bytes()
        if sizes is None:
            return None
        to_kbps = 8.0 / 1000.0 * self.fps
        return sizes[0] * to_kbps, sizes[-1] * to_kbps

    def range_status(self) -> str:
        """"off", "unknown" (nothing coded yet), "below_range", "above_range" or "in_range"."""
        if not self.enabled:
            return "off"
        bounds = self.range_kbps()
        if bounds is None:
            return "unknown"
        if self._target_kbps < bounds[0]:
            return "below_range"
        if self._target_kbps > bounds[1]:
            return "above_range"
        return "in_range"

    def diagnostics(self) -> dict[str, str]:
        """Key/value strings for a diagnostics message."""
        out = {
            "rate_control": "on" if self.enabled else "off",
            "target_kbps": f"{self._target_kbps:.1f}",
            "achieved_kbps": f"{self.achieved_kbps():.1f}",
            "last_quality": str(self._last_level if self._last_level is not None else self._quality),
        }
        if self.enabled:
            status = self.range_status()
            out["rate_range"] = status
            bounds = self.range_kbps()
            if bounds is not None:
                out["rate_range_kbps"] = f"{bounds[0]:.1f}..{bounds[1]:.1f}"
            if status == "below_range":
                out["rate_note"] = (
                    f"target {self._target_kbps:.1f} kbit/s is below the lowest level "
                    f"({bounds[0]:.1f} kbit/s at {self.fps:.1f} fps): holding level 1"
                )
            elif status == "above_range":
                out["rate_note"] = (
                    f"target {self._target_kbps:.1f} kbit/s is above the highest level "
                    f"({bounds[1]:.1f} kbit/s at {self.fps:.1f} fps): holding level {self.levels}"
                )
        return out
