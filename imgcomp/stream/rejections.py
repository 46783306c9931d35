"""Classified per-frame failures and a per-cause log throttle.

A node never lets one bad frame stop the stream: the cores turn every failure into a
`Rejection` with a short machine-readable `cause` (the key of its counter in the
diagnostics) and a human-readable `message`. `RejectionLog` decides which of them reach the
log: the first of each cause at once, then at most one line per cause every `period_s`,
telling how many were suppressed in between.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

__all__ = [
    "BAD_IMAGE",
    "DECODE_FAILED",
    "ENCODE_FAILED",
    "HEAD_MISMATCH",
    "MALFORMED_PAYLOAD",
    "MISSING_REFERENCE",
    "MODEL_MISMATCH",
    "MODEL_UNAVAILABLE",
    "TOO_LARGE",
    "UNKNOWN_MODEL",
    "UNSUPPORTED_ENCODING",
    "Rejection",
    "RejectionLog",
]

# encoder side: what is wrong with an input sensor_msgs/Image
UNSUPPORTED_ENCODING = "unsupported_encoding"  # encoding imgcomp.image does not know
BAD_IMAGE = "bad_image"  # zero size, step too small, data truncated, odd width for YUV 4:2:2
TOO_LARGE = "too_large"  # more pixels than max_input_pixels / max_output_pixels, or a side over the codec's limit
ENCODE_FAILED = "encode_failed"  # the codec itself failed (bug, out of memory)
# decoder side: what is wrong with a CompressedFeatures message
MALFORMED_PAYLOAD = "malformed_payload"  # bitstream fails to parse / checksum / fields disagree
MODEL_MISMATCH = "model_mismatch"  # payload's weights hash differs from the shipped model's
UNKNOWN_MODEL = "unknown_model"  # payload names a model that is not shipped
MODEL_UNAVAILABLE = "model_unavailable"  # shipped model could not be loaded (weights missing)
DECODE_FAILED = "decode_failed"  # the codec failed on a payload that parsed
# temporal mode: a P-frame whose reference was not decoded (lost, dropped or reordered message,
# joined mid-stream, restarted encoder), and every later P-frame of its stream up to a key frame
MISSING_REFERENCE = "missing_reference"
# multi-task node: the payload's codec is not the one the perception head was trained on
HEAD_MISMATCH = "head_mismatch"


@dataclass(frozen=True)
class Rejection:
    """Why one frame produced no output."""

    cause: str
    message: str

    def __str__(self) -> str:
        return f"{self.cause}: {self.message}"


class RejectionLog:
    """Per-cause throttle for log lines. `report()` returns the line to log, or None."""

    def __init__(self, period_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.period_s = float(period_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def report(self, rejection: Rejection, what: str = "frame") -> str | None:
        with self._lock:
            now = self._clock()
            last = self._last.get(rejection.cause)
            if last is not None and now - last < self.period_s:
                self._suppressed[rejection.cause] = self._suppressed.get(rejection.cause, 0) + 1
                return None
            self._last[rejection.cause] = now
            suppressed = self._suppressed.pop(rejection.cause, 0)
        line = f"rejected {what} ({rejection.cause}): {rejection.message}"
        if suppressed:
            line += f" [{suppressed} more {rejection.cause} rejection(s) in the last {self.period_s:g} s not logged]"
        return line
