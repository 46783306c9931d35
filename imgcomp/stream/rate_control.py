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

**Temporal mode** (`keyframe_interval` N > 1; what the rules above do with key frames only is
unchanged). A P-frame costs a fraction of a key frame (about 1/9 on vtest.avi) and must be coded
at its reference's level, so the level changes only at a key frame, and the two frame types get
separate size tables (P-frames learn theirs from their own sizes, starting from `P_RATIO_PRIOR`
times the key table). The control works on groups (a key frame and its N - 1 P-frames), like
the GOP-level bit allocation of video encoders:

* **Group budget.** A group gets N frames' share of the target, less `GROUP_DEBT_GAIN` of the
  debt (bytes sent beyond the target since the window started; the first frame, whose level is
  a guess, does not count). Paying back only a quarter per group keeps the windows it lies in
  near the target while the long-run mean still converges.
* **Level per group, with hysteresis.** The P-frames' size is steered by the encoder's
  rate-distortion multiplier (`RatePlan.multiplier`, the lambda that decides which residuals are
  worth their bits): it grows about as multiplier ** `P_SIZE_ELASTICITY` (measured), within
  `MULTIPLIER_RANGE`. For each level the multiplier that makes its group cost the budget follows
  from the tables. A group keeps its predecessor's level while that multiplier stays within
  `COMFORT_RANGE`, because a level switch moves every window it touches by the difference of
  two key frames; otherwise, and at the end of the first group (the first one measured) and
  after a changed target, the level whose multiplier is nearest 1 is taken.
* **P-frames.** Each P-frame gets an even share of what is left of its group's budget, corrected
  at `WINDOW_GAIN` by what the 1 s window ending with it would be off by (the frames the group
  plan does not see: the previous group's tail, a switched level's larger or smaller key frame),
  and the multiplier for that allowance, moving at most `MULTIPLIER_STEP` from the previous
  P-frame's (except right after a key frame): residuals a P-frame skips are owed by the next
  one, so a multiplier that jumps makes sizes swing.
* **Level switches.** Halfway through a group the next group's level is chosen (and kept at its
  key frame unless the target changes); if it differs, this group's remaining P-frames pay half
  the difference of the two key frames and the next group's P-frames the other half, so the window that ends with the new key frame (which holds
  this group's P-frames) is off by half that difference, not all of it.
* **Start.** After the first frame the next may change the level at once (the encoder then sends
  a key frame) if its P-frames cannot reach the target at any multiplier: to the nearest level
  whose P-frames can (the other levels' sizes are still estimates).

When n / N is not a whole number (e.g. 15 fps with N = 10), windows hold one key frame more or
less than others and no choice of sizes keeps every window equal; with N = 10 at 10, 20 or
30 fps every window holds the same number of key frames.

`target_kbps = 0` switches the controller off: `next_quality` returns the fixed `quality`.
It still learns sizes and reports `achieved_kbps`, so it can be switched on at any time.

Times are seconds on any monotonic clock (message stamps or `time.monotonic()`).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass

__all__ = [
    "COMFORT_RANGE", "GROUP_DEBT_GAIN", "LEVEL_RATIO_PRIOR", "MULTIPLIER_RANGE", "MULTIPLIER_STEP", "P_RATIO_PRIOR",
    "P_SIZE_ELASTICITY", "WINDOW_GAIN", "RatePlan", "RateController",
]

# Assumed size ratio between adjacent levels before any is measured: the shipped hyperprior models
# grow by 1.37x per level on the validation photos (model cards). A prior far above that makes the
# first switch to an unused level look like a scene change.
LEVEL_RATIO_PRIOR = 1.4
# A P-frame's size over its level's key frame's before any P-frame is measured: 0.11-0.12 on
# vtest.avi at 384x288 (hyperprior-mse, levels 1, 3, 5, multiplier 1, the first 20 frames).
P_RATIO_PRIOR = 0.12
# d log(P-frame bytes) / d log(multiplier): 0.25, 0.28, 0.31 and 0.33 for levels 2-5 on vtest.avi
# at 384x288 over multipliers 1/16 .. 16 (scripts/p_frame_elasticity.py; 0.16-0.53 per octave).
P_SIZE_ELASTICITY = 0.28
MULTIPLIER_RANGE = (1.0 / 16.0, 16.0)
# A group keeps its predecessor's level while its P-frames need no more than this multiplier
# range; beyond it the level whose multiplier is nearest 1 is taken.
COMFORT_RANGE = (1.0 / 8.0, 8.0)
# Of the debt (bytes sent beyond the target so far) a new group pays back: a group that pays back
# all of it moves the windows it lies in by all of it.
GROUP_DEBT_GAIN = 0.25
# Of what the window ending with a P-frame would be off by, the part that P-frame corrects.
WINDOW_GAIN = 0.5
# The most the multiplier moves from one P-frame to the next (as a factor). Residuals a P-frame
# skips are still owed by the next one, so a multiplier that jumps makes sizes swing from frame
# to frame; like the QP step limit of video encoders, this keeps the steering smooth.
MULTIPLIER_STEP = 2.0
_SCENE_CUT_LOG = math.log(1.25)  # a surprise beyond 25 % is treated as a scene change
_MAX_GAP_S = 5.0  # a pause longer than this (or a clock going back) restarts the window


@dataclass(frozen=True)
class RatePlan:
    """What to code the next frame with: the level, and for a P-frame the encoder's
    rate-distortion multiplier (1.0: the model's own trade-off)."""

    level: int
    multiplier: float = 1.0


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
        keyframe_interval: int = 0,
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
        self._frames: deque[tuple[float, int, bool]] = deque()  # (stamp, bytes, key frame?) of coded frames
        self._epoch = -math.inf  # frames at or before this stamp do not count for control
        self._last_stamp: float | None = None
        self._last_level: int | None = None
        self._last_multiplier = 1.0
        self._p_multiplier = 1.0  # the last P-frame's
        self._p_log_size: list[float] | None = None  # log(bytes) of a P-frame at multiplier 1, per level
        self._free = False  # the next frame may change the level (a changed target, the first measurement)
        self._fresh = False  # ... chosen afresh, without sticking to the current level
        self._steered = 0  # levels chosen by `plan` so far (temporal mode)
        self._debt = 0.0  # bytes sent beyond the target since the window (re)started (temporal mode)
        self._group_budget = 0.0  # bytes planned for the current group (temporal mode)
        self._group_spent = 0.0
        self._group_frames = 0
        self._planned_key = False  # the next key frame's group budget was set by `plan`
        self._next_level: int | None = None  # the next group's level, foreseen halfway through this one
        self._keyframe_interval = self._check_interval(keyframe_interval)
        self.frames_coded = 0
        self.keyframes_coded = 0

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

    @staticmethod
    def _check_interval(value: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"keyframe_interval must be an int >= 0, got {value!r}")
        return value

    @property
    def keyframe_interval(self) -> int:
        """Frames per group of the stream being controlled (0: intra only, every frame a key)."""
        return self._keyframe_interval

    def set_keyframe_interval(self, value: int) -> None:
        value = self._check_interval(value)
        with self._lock:
            self._keyframe_interval = value

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
                self._free = self._fresh = True

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
        self._debt = 0.0

    def _budget_bytes(self) -> float:
        return self._target_kbps * 1000.0 / 8.0 * self.window_s

    def _slots(self) -> int:
        return max(1, round(self.window_s / self._interval))

    def _window_bytes(self, end: float, since: float) -> tuple[int, int, int]:
        """(bytes, frames, key frames) of the coded frames inside the window ending at `end`."""
        start = max(end - self.window_s + 0.5 * self._interval, since)
        total = count = keys = 0
        for stamp, size, key in reversed(self._frames):
            if stamp <= start:
                break
            if stamp <= end:
                total += size
                count += 1
                keys += key
        return total, count, keys

    def _check_time(self, stamp: float) -> None:
        last = self._last_stamp
        if last is not None and (stamp < last or stamp - last > max(_MAX_GAP_S, 5 * self.window_s)):
            self._frames.clear()
            self._epoch = -math.inf
            self._last_stamp = None
            self._debt = 0.0

    def next_quality(self, stamp: float) -> int:
        """The level for the frame taken at `stamp` (seconds), every frame a key frame."""
        return self.plan(stamp).level

    def _p_sizes(self) -> list[float]:
        """Predicted P-frame bytes per level at multiplier 1."""
        if self._p_log_size is not None:
            return [math.exp(v) for v in self._p_log_size]
        return [P_RATIO_PRIOR * math.exp(v) for v in self._log_size or ()]

    def _group(self) -> int:
        return max(1, self._keyframe_interval)

    def _frame_budget(self) -> float:
        """Bytes per frame at the target and the measured frame rate."""
        return self._target_kbps * 1000.0 / 8.0 * self._interval

    def plan(self, stamp: float, keyframe: bool = True, reference_level: int | None = None) -> RatePlan:
        """Level and multiplier for the frame taken at `stamp` (seconds). `keyframe`: the frame
        will be a key frame anyway (first, interval, request, intra mode); a P-frame keeps
        `reference_level` unless a changed target frees the level (the encoder then keys)."""
        with self._lock:
            if not self.enabled or self._log_size is None:
                return RatePlan(self._quality)
            self._check_time(stamp)
            if self._group() == 1:
                self._free = False
                return RatePlan(self._intra_level(stamp))
            return self._plan_group(stamp, keyframe, reference_level)

    # -- key frames only: the sliding window ---------------------------------------------
    def _intra_level(self, stamp: float) -> int:
        budget = self._budget_bytes()
        slots = self._slots()
        spent, frames, _ = self._window_bytes(stamp, self._epoch)
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

    # -- temporal mode: a budget per group -------------------------------------------------
    def _next_group_budget(self) -> float:
        """A group's share of the target, less `gain` of the debt run up so far."""
        return self._group() * self._frame_budget() - GROUP_DEBT_GAIN * self._debt

    def _p_share(self, level: int, group_budget: float) -> float:
        """A P-frame's part of `group_budget` in a group at `level` (what its key frame leaves)."""
        return max(0.0, group_budget - math.exp(self._log_size[level - 1])) / max(1, self._group() - 1)

    def _multiplier_for(self, level: int, group_budget: float) -> float:
        """The P-frame multiplier that makes a group at `level` cost `group_budget` (0: not even
        P-frames of zero bytes would)."""
        per_p = self._p_share(level, group_budget)
        return 0.0 if per_p <= 0 else (per_p / self._p_sizes()[level - 1]) ** (1.0 / P_SIZE_ELASTICITY)

    def _choose_level(self, group_budget: float, current: int, band: tuple[float, float] | None,
                      nearest_current: bool = False) -> int:
        """The level of a new group: the current one while its P-frames need a multiplier within
        `band` (a level switch moves every window it touches by the difference of two key
        frames); else, or without a band, the level whose multiplier is nearest 1 (with
        `nearest_current`: the reachable level nearest the current one)."""
        low, high = MULTIPLIER_RANGE
        if band is not None and band[0] <= self._multiplier_for(current, group_budget) <= band[1]:
            return current
        multipliers = [self._multiplier_for(level, group_budget) for level in range(1, self.levels + 1)]
        usable = [k for k, m in enumerate(multipliers) if low <= m <= high]
        if usable and nearest_current:
            return 1 + min(usable, key=lambda k: abs(k + 1 - current))
        if usable:
            return 1 + min(usable, key=lambda k: abs(math.log(multipliers[k])))
        return 1 if multipliers[0] < low else self.levels

    def _prepare_switch(self, current: int, left: int) -> None:
        """Half a level switch's key frame difference is paid by the group before it: the window
        that ends with the new key frame holds the old group's P-frames, so without this it is off
        by the whole difference (the new group's P-frames pay the other half)."""
        if left > max(1, self._group() // 2) or self._next_level is not None or self._steered < 2:
            return
        upcoming = self._choose_level(self._next_group_budget(), current, COMFORT_RANGE)
        self._next_level = upcoming  # what the next key frame will use (unless the target changes)
        if upcoming != current:
            keys = self._log_size
            self._group_budget -= 0.5 * (math.exp(keys[upcoming - 1]) - math.exp(keys[current - 1]))

    def _plan_group(self, stamp: float, keyframe: bool, reference_level: int | None) -> RatePlan:
        current = reference_level if reference_level is not None else self._last_level or self._quality
        if keyframe or reference_level is None or self._free:
            budget = self._next_group_budget()
            # Right after the first frame (its level a guess, nothing else measured): another
            # level only if its P-frames cannot reach the target. At the end of the first group
            # (its P-frames measured) and after a changed target: afresh. Later: with hysteresis.
            if self._fresh or self._steered == 1:
                band = None
            else:
                band = MULTIPLIER_RANGE if self._steered == 0 else COMFORT_RANGE
            if band is COMFORT_RANGE and self._next_level is not None and keyframe:
                level = self._next_level  # foreseen halfway through the group, and paid for
            else:
                level = self._choose_level(budget, current, band, nearest_current=band is MULTIPLIER_RANGE)
            self._free = self._fresh = False
            self._steered += 1
            if keyframe or reference_level is None or level != reference_level:  # a key frame: a new group
                self._group_budget, self._planned_key = budget, True
                if level != current:  # the step limit starts from what the new level needs, not the old one
                    low, high = MULTIPLIER_RANGE
                    self._p_multiplier = min(high, max(low, self._multiplier_for(level, budget)))
                return RatePlan(level)
            # same level (a changed target, the first frame's guess): the rest of the group gets what
            # P-frames of a group of this level would get
            left = max(1, self._group() - self._group_frames)
            self._group_budget = self._group_spent + left * self._p_share(level, budget)
        left = max(1, self._group() - self._group_frames)
        self._prepare_switch(current, left)
        allowance = (self._group_budget - self._group_spent) / left
        # The window ending with this frame: what it would be off by at that allowance, corrected
        # at `WINDOW_GAIN` (frames of the window the group plan does not see: the previous group's
        # tail, a level switch's larger or smaller key frame).
        spent, frames, _ = self._window_bytes(stamp, self._epoch)
        slots = self._slots()
        if frames >= slots - 1:
            allowance += WINDOW_GAIN * (self._budget_bytes() - spent - allowance)
        predicted = self._p_sizes()[current - 1]
        low, high = MULTIPLIER_RANGE
        if self._group_frames > 1:  # right after a key frame no skipped residuals are owed: no step limit
            low, high = max(low, self._p_multiplier / MULTIPLIER_STEP), min(high, self._p_multiplier * MULTIPLIER_STEP)
        if allowance <= 0:
            return RatePlan(current, low)
        multiplier = (allowance / predicted) ** (1.0 / P_SIZE_ELASTICITY)
        return RatePlan(current, min(high, max(low, multiplier)))

    def update(self, quality: int, size_bytes: int, stamp: float, keyframe: bool = True, multiplier: float = 1.0) -> None:
        """Report the payload actually sent for the frame at `stamp`, coded at `quality` (a key
        frame, or a P-frame coded with rate-distortion `multiplier`)."""
        quality = self._check_quality(quality)
        if not multiplier > 0 or not math.isfinite(multiplier):
            raise ValueError(f"multiplier must be a positive number, got {multiplier!r}")
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
            self._last_multiplier = 1.0 if keyframe else float(multiplier)
            self.frames_coded += 1
            self.keyframes_coded += int(keyframe)
            self._frames.append((stamp, int(size_bytes), bool(keyframe)))
            horizon = stamp - 2 * self.window_s
            while self._frames and self._frames[0][0] < horizon:
                self._frames.popleft()
            first = self._log_size is None
            if keyframe:
                if not self._planned_key:  # a key frame the encoder chose (scene change, size change)
                    self._group_budget = self._next_group_budget()
                self._planned_key = False
                self._next_level = None
                self._group_spent, self._group_frames = float(size_bytes), 1
            else:
                self._group_spent += size_bytes
                self._group_frames += 1
            if not first:  # the first frame's level was a guess: its bytes are no debt
                limit = self._budget_bytes()
                self._debt = min(limit, max(-limit, self._debt + size_bytes - self._frame_budget()))
            if keyframe:
                # the first frame's level was a guess (nothing measured yet): the next may change it
                self._free = self._free or first
                self._learn(quality, size_bytes)
            else:
                self._p_multiplier = float(multiplier)
                self._learn_p(quality, size_bytes, multiplier)

    def _learn_p(self, quality: int, size_bytes: int, multiplier: float) -> None:
        # the size this P-frame would have had at multiplier 1
        observed = math.log(size_bytes) - P_SIZE_ELASTICITY * math.log(multiplier)
        if self._log_size is None:  # a P-frame before any key frame was reported: guess the keys
            self._learn(quality, max(1, round(size_bytes / P_RATIO_PRIOR)))
        if self._p_log_size is None:
            base = self._log_size[quality - 1]
            self._p_log_size = [observed + v - base for v in self._log_size]
            return
        # motion changes P-frames by more than 25 % from frame to frame: no scene-cut jump here
        self._correct(self._p_log_size, quality - 1, observed - self._p_log_size[quality - 1], scene_cut=False)

    def _learn(self, quality: int, size_bytes: int) -> None:
        observed = math.log(size_bytes)
        i = quality - 1
        if self._log_size is None:
            step = math.log(LEVEL_RATIO_PRIOR)
            self._log_size = [observed + (k - i) * step for k in range(self.levels)]
            return
        self._correct(self._log_size, i, observed - self._log_size[i], scene_cut=True)

    def _correct(self, est: list[float], i: int, error: float, scene_cut: bool) -> None:
        if scene_cut and abs(error) > _SCENE_CUT_LOG:
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
            spent, _, _ = self._window_bytes(end, -math.inf)
            return spent * 8.0 / 1000.0 / self.window_s

    def predicted_bytes(self) -> list[float] | None:
        """The size model: predicted payload bytes per level (None before the first frame)."""
        with self._lock:
            return None if self._log_size is None else [math.exp(v) for v in self._log_size]

    @property
    def fps(self) -> float:
        """Frame rate measured from the stamps (starts at `fps_hint`)."""
        return 1.0 / self._interval

    def predicted_p_bytes(self) -> list[float] | None:
        """Predicted P-frame bytes per level at multiplier 1 (None before the first frame)."""
        with self._lock:
            return None if self._log_size is None else self._p_sizes()

    def range_kbps(self) -> tuple[float, float] | None:
        """Bitrates of the lowest and highest level at the measured frame rate (with P-frames:
        groups at the lowest and at the highest multiplier)."""
        with self._lock:
            if self._log_size is None:
                return None
            keys, ps = [math.exp(v) for v in self._log_size], self._p_sizes()
            group = self._group()
        low_m, high_m = (m ** P_SIZE_ELASTICITY for m in MULTIPLIER_RANGE)
        lowest = (keys[0] + (group - 1) * ps[0] * low_m) / group
        highest = (keys[-1] + (group - 1) * ps[-1] * high_m) / group
        to_kbps = 8.0 / 1000.0 * self.fps
        return lowest * to_kbps, highest * to_kbps

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
        if self._keyframe_interval > 1:
            out["last_rd_multiplier"] = f"{self._last_multiplier:.3g}"
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
