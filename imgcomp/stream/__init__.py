"""What the ROS nodes do, without ROS: importable and testable on a machine without rclpy.

* `latest_frame` - single-slot mailbox + worker thread (newest frame wins, drops counted)
* `rate_control` - quality level per frame for a target bitrate
* `stats`        - rolling diagnostics (rates, bpp, latency, drops, rejections, status level)
* `rejections`   - classified per-frame failures and a per-cause log throttle
* `fields`       - plain Image / CompressedFeatures field values
* `encoder_core` - Image fields -> CompressedFeatures fields
* `decoder_core` - CompressedFeatures fields -> Image fields
* `multitask_core` - CompressedFeatures fields -> depth / segmentation / normals image fields
* `params`       - the nodes' parameters (names, defaults, ranges, descriptions, checks)
* `backend`      - which device / inference backend is really used, and why
"""

from imgcomp.stream.backend import Choice, codec_factory, resolve_backend, resolve_device, set_cpu_threads
from imgcomp.stream.decoder_core import DecoderCore
from imgcomp.stream.encoder_core import EncoderCore
from imgcomp.stream.fields import FeaturesFields, ImageFields
from imgcomp.stream.multitask_core import MultiTaskCore, PerceptionFields
from imgcomp.stream.latest_frame import LatestFrameMailbox, LatestFrameWorker
from imgcomp.stream.rate_control import RateController
from imgcomp.stream.rejections import Rejection, RejectionLog
from imgcomp.stream.stats import StreamStats

__all__ = [
    "Choice",
    "DecoderCore",
    "EncoderCore",
    "FeaturesFields",
    "ImageFields",
    "LatestFrameMailbox",
    "LatestFrameWorker",
    "MultiTaskCore",
    "PerceptionFields",
    "RateController",
    "Rejection",
    "RejectionLog",
    "StreamStats",
    "codec_factory",
    "resolve_backend",
    "resolve_device",
    "set_cpu_threads",
]
