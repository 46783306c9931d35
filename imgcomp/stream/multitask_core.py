"""The multi-task node's work without ROS: CompressedFeatures fields in, perception images out.

`MultiTaskCore.process()` parses the payload strictly, checks the message fields against its
header and that the payload comes from the codec (name and weights) the head was trained on,
then runs the head on the entropy-decoded latent (no synthesis transform) and returns five
images with the source's stamp and frame_id:

* depth ``32FC1`` metres; segmentation ``mono8`` class ids (imgcomp.multitask.scenes.CLASSES) and its
  ``rgb8`` colouring; normals ``32FC3`` (camera frame, unit) and their ``rgb8`` view ((n+1)/2).

It never raises for a bad message; it returns a `Rejection` (``malformed_payload``,
``head_mismatch`` for a payload of another codec, ``model_mismatch`` for other weights of the
same codec, ``decode_failed``) and counts it in `stats`. The next valid frame goes through.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from imgcomp.stream.fields import FeaturesFields, ImageFields
from imgcomp.codec import DEFAULT_MAX_OUTPUT_PIXELS
from imgcomp.stream.payload import checked_frame, codec_failure
from imgcomp.stream.rejections import HEAD_MISMATCH, Rejection
from imgcomp.stream.stats import StreamStats
from imgcomp.bitstream import Frame
from imgcomp.multitask.scenes.preview import PALETTE, colorize_normals

__all__ = ["MultiTaskCore", "PerceptionFields"]


class _Perceiver(Protocol):  # imgcomp.multitask.predictor.Perceiver
    head_name: str
    codec_name: str
    codec_hash: str

    def perceive(self, payload: bytes | Frame): ...


@dataclass(frozen=True)
class PerceptionFields:
    depth: ImageFields  # 32FC1, metres
    labels: ImageFields  # mono8 class ids
    labels_color: ImageFields  # rgb8
    normals: ImageFields  # 32FC3
    normals_color: ImageFields  # rgb8


def _image(array: np.ndarray, encoding: str, fields: FeaturesFields) -> ImageFields:
    array = np.ascontiguousarray(array)
    if array.dtype == np.float32 and sys.byteorder != "little":
        array = array.astype("<f4")
    height, width = array.shape[:2]
    return ImageFields(
        data=array.tobytes(), height=height, width=width, encoding=encoding,
        step=array.nbytes // height, is_bigendian=0, stamp=fields.stamp, frame_id=fields.frame_id,
    )


class MultiTaskCore:
    """See the module docstring. `perceiver` is a loaded `imgcomp.multitask.Perceiver`."""

    def __init__(
        self,
        perceiver: _Perceiver,
        *,
        clock: Callable[[], float] = time.monotonic,
        stats: StreamStats | None = None,
        max_output_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS,
    ) -> None:
        self.perceiver = perceiver
        self.max_output_pixels = max_output_pixels
        self._clock = clock
        self.stats = stats if stats is not None else StreamStats("perceive", clock=clock)
        self.last_timing_ms: tuple[float, float] | None = None

    def _count(self, rejection: Rejection) -> Rejection:
        self.stats.record_rejected(rejection.cause)
        return rejection

    def process(self, fields: FeaturesFields) -> PerceptionFields | Rejection:
        started = self._clock()
        frame = checked_frame(fields, self.max_output_pixels)
        if isinstance(frame, Rejection):
            return self._count(frame)
        header = frame.header
        p = self.perceiver
        if header.model != p.codec_name:
            return self._count(Rejection(
                HEAD_MISMATCH,
                f"head {p.head_name} reads {p.codec_name} features; this payload is from {header.model} "
                f"(set the encoder's model to {p.codec_name})",
            ))
        try:
            result = p.perceive(frame)
        except Exception as exc:  # noqa: BLE001 - one bad frame must not stop the stream
            return self._count(codec_failure(exc))
        self.last_timing_ms = (result.decode_ms, result.head_ms)
        out = PerceptionFields(
            depth=_image(result.depth.astype(np.float32), "32FC1", fields),
            labels=_image(result.labels, "mono8", fields),
            labels_color=_image(PALETTE[result.labels], "rgb8", fields),
            normals=_image(result.normals.astype(np.float32), "32FC3", fields),
            normals_color=_image(colorize_normals(result.normals), "rgb8", fields),
        )
        self.stats.record_output(len(fields.data), header.height * header.width, self._clock() - started)
        return out

    def diagnostics(self) -> dict[str, str]:
        out = self.stats.snapshot()
        out["head"] = self.perceiver.head_name
        out["codec"] = f"{self.perceiver.codec_name} ({self.perceiver.codec_hash})"
        if self.last_timing_ms:
            out["last_decode_ms"] = f"{self.last_timing_ms[0]:.1f}"
            out["last_head_ms"] = f"{self.last_timing_ms[1]:.1f}"
        return out

    def status(self) -> tuple[int, str]:
        return self.stats.status()
