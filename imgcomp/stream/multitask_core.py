"""The multi-task node's work without ROS: CompressedFeatures fields in, perception images out.

`MultiTaskCore.process()` parses the payload strictly, checks the message fields against its
header and that the payload comes from the codec (name and weights) the head was trained on,
then runs the head on the entropy-decoded latent (no synthesis transform) and returns five
images with the source's stamp and frame_id:

* depth ``32FC1`` metres; segmentation ``mono8`` class ids (imgcomp.multitask.scenes.CLASSES) and its
  ``rgb8`` colouring; normals ``32FC3`` (camera frame, unit) and their ``rgb8`` view ((n+1)/2).

Temporal mode: a P-frame's latent is reconstructed against its stream's reference through the
same per-stream logic as the decoder's (`imgcomp.stream.references`), and the head reads that
latent; a P-frame without its reference is refused (``missing_reference``) up to the stream's
next key frame, and frames the node's worker skips are caught up (`catch_up`).

It never raises for a bad message; it returns a `Rejection` (``malformed_payload``,
``head_mismatch`` for a payload of another codec, ``model_mismatch`` for other weights of the
same codec, ``missing_reference``, ``decode_failed``) and counts it in `stats`. The next valid
frame goes through.
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
from imgcomp.stream.references import DEFAULT_MAX_STREAMS, StreamReferences
from imgcomp.stream.rejections import HEAD_MISMATCH, Rejection
from imgcomp.stream.stats import StreamStats
from imgcomp.bitstream import FRAME_KEY, Frame, FrameHeader
from imgcomp.multitask.scenes.preview import PALETTE, colorize_normals

__all__ = ["MultiTaskCore", "PerceptionFields"]


class _Perceiver(Protocol):  # imgcomp.multitask.predictor.Perceiver
    head_name: str
    codec_name: str
    codec_hash: str
    codec: object

    def perceive(self, payload: bytes | Frame): ...

    def perceive_latent(self, header: FrameHeader, y_hat: np.ndarray, decode_ms: float = 0.0): ...


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
        max_streams: int = DEFAULT_MAX_STREAMS,
    ) -> None:
        self.perceiver = perceiver
        self.max_output_pixels = max_output_pixels
        self.references = StreamReferences(max_streams, max_output_pixels)
        self.caught_up = 0
        self._clock = clock
        self.stats = stats if stats is not None else StreamStats("perceive", clock=clock)
        self.last_timing_ms: tuple[float, float] | None = None

    def _count(self, rejection: Rejection) -> Rejection:
        self.stats.record_rejected(rejection.cause)
        return rejection

    def _frame(self, fields: FeaturesFields) -> Frame | Rejection:
        frame = checked_frame(fields, self.max_output_pixels)
        if isinstance(frame, Rejection):
            return frame
        p = self.perceiver
        if frame.header.model != p.codec_name:
            return Rejection(
                HEAD_MISMATCH,
                f"head {p.head_name} reads {p.codec_name} features; this payload is from {frame.header.model} "
                f"(set the encoder's model to {p.codec_name})",
            )
        return frame

    def catch_up(self, skipped: list[FeaturesFields]) -> int:
        """Advance the references over frames the worker skipped (see DecoderCore.catch_up)."""
        codec = self.perceiver.codec
        frames = [self._frame(fields) for fields in skipped]
        decoded = self.references.catch_up([(f, codec) for f in frames if not isinstance(f, Rejection)])
        self.caught_up += decoded
        return decoded

    def process(self, fields: FeaturesFields) -> PerceptionFields | Rejection:
        started = self._clock()
        frame = self._frame(fields)
        if isinstance(frame, Rejection):
            return self._count(frame)
        header = frame.header
        p = self.perceiver
        try:
            if header.frame_type == FRAME_KEY and self.references.tables(p.codec) is None:
                result = p.perceive(frame)
            else:
                t0 = time.perf_counter()
                out = self.references.latent(p.codec, frame)
                if isinstance(out, Rejection):
                    return self._count(out)
                result = p.perceive_latent(out[0], out[1], 1e3 * (time.perf_counter() - t0))
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
        out.update(self.references.diagnostics())
        out["skipped_frames_caught_up"] = str(self.caught_up)
        return out

    def status(self) -> tuple[int, str]:
        return self.stats.status()
