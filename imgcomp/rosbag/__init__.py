"""`imgcomp bag`: convert rosbag2 folders between raw images and compressed features, without ROS.

Works on rosbag2 folders in MCAP or SQLite3 storage through `rosbags` (via `imgcomp.rosbag.io`).

* `compress(IN, OUT, topic)` - every `sensor_msgs/Image` of `topic` (or `sensor_msgs/
  CompressedImage` holding JPEG or PNG, decoded with OpenCV) becomes an
  `imgcomp_msgs/CompressedFeatures` on `features_topic_for(topic)`, with the same bag timestamp
  and header; every other message is copied byte for byte with its connection's type,
  definition, type hash and QoS profiles. The source image topic is not copied.
* `decompress(IN, OUT)` - the reverse: each CompressedFeatures topic `<t>/imgcomp` becomes a
  `sensor_msgs/Image` topic `<t>` (`<t>/decoded` if the bag already has `<t>`), with the
  source's height, width, encoding and header restored.
* `info(BAG)` - per CompressedFeatures topic: frames, models, quality levels, mean bits per
  pixel and bitrate.
* `evaluate(COMPRESSED, RAW)` - PSNR / MS-SSIM of the decoded frames against
  the raw bag they came from, matched by topic and header stamp.

Per-frame conversion is the nodes' own (`imgcomp.stream.EncoderCore` / `DecoderCore`), so
a bag converts exactly as a live stream would. A frame that cannot be converted (bad
encoding, truncated data, corrupt JPEG, corrupt payload) is skipped and counted by cause, with
one warning per cause; it never aborts the bag.

Input is read through `imgcomp.rosbag.io.open_reader`: a bag that is missing, empty, truncated,
without metadata or with an MCAP chunk failing its CRC is refused with a one-line
`imgcomp.rosbag.io.BagError` before any model is loaded or anything written, and a failure while
reading becomes one too. Output is written through `imgcomp.rosbag.io.open_output`: into
`<OUT>.partial/` and moved to `OUT` only once complete, so an interrupted run leaves `OUT`
absent (or, with `overwrite`, the old `OUT` intact) and the input untouched; the next run
recovers what a killed one left. Messages are streamed one at a time, so memory does not grow
with the bag.

CompressedImage topics follow image_transport's naming: the features of
`/cam/image_raw/compressed` go to `/cam/image_raw/imgcomp`, so decompressing gives back a raw
`sensor_msgs/Image` on `/cam/image_raw` (not an Image on a topic called `.../compressed`).

Modules: `io` (rosbag2 folders: safe output, checked input), `mcap_integrity` (MCAP CRCs),
`messages` (the message types without ROS), `common` (what the commands share), one module per
command: `compress`, `decompress`, `info`, `evaluate`.
"""

from imgcomp.rosbag.common import COMPRESSED_IMAGE_TYPE, DEFAULT_TOPIC, FEATURES_SUFFIX, features_topic_for
from imgcomp.rosbag.compress import CompressSummary, compress
from imgcomp.rosbag.decompress import DecompressSummary, decompress
from imgcomp.rosbag.evaluate import evaluate
from imgcomp.rosbag.info import format_info, info

__all__ = [
    "COMPRESSED_IMAGE_TYPE",
    "DEFAULT_TOPIC",
    "FEATURES_SUFFIX",
    "CompressSummary",
    "DecompressSummary",
    "compress",
    "decompress",
    "evaluate",
    "features_topic_for",
    "format_info",
    "info",
]
