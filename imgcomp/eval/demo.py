"""The main job on a built-in default: a real camera video through encoder, rosbag2 and decoder.

`vtest.avi` (a fixed camera filming people walking, from Debian's opencv-doc) plays the camera.
Every frame goes as a `sensor_msgs/Image`'s fields through the encoder node's own `EncoderCore`
in the temporal mode, as a robot runs it (`keyframe_interval` the node's default 10: a key frame,
then latent P-frames coded against the previous decoded latent). Each result is written as an
`imgcomp_msgs/CompressedFeatures` message into a real MCAP rosbag2 file, read back, decoded by
the decoder node's own `DecoderCore` and compared with the original.

For scale, measured in the same run on the same frames:

* our intra mode: a second `EncoderCore` with `keyframe_interval` 0 (every frame a key frame,
  what the codec did before the temporal mode) into its own bag, decoded the same way; the two
  encoders run interleaved frame by frame, so a change of machine load hits both alike;
* OpenCV JPEG as `sensor_msgs/CompressedImage` bags, at the quality whose bpp matches our intra
  mode (JPEG is an intra codec) and at the quality whose MS-SSIM matches the temporal stream;
* the raw `sensor_msgs/Image` bag.

A model without temporal tables (e.g. the classical `avif`) sends key frames only whatever the
interval: then there is one stream, reported as both.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from imgcomp.bitstream import FRAME_KEY
from imgcomp.codec import DEFAULT_MODEL, Codec
from imgcomp.defaults import DEFAULT_KEYFRAME_INTERVAL
from imgcomp.eval.baselines import JPEG
from imgcomp.image import image_from_msg_fields
from imgcomp.metrics import bits_per_pixel, ms_ssim_index, psnr
from imgcomp.rosbag.io import bag_size_bytes, open_writer, read_messages
from imgcomp.rosbag.messages import MSG_TYPE, make_features_msg, make_image_msg, typestore
from imgcomp.stream.decoder_core import DecoderCore
from imgcomp.stream.encoder_core import EncoderCore
from imgcomp.stream.fields import FeaturesFields, ImageFields
from imgcomp.stream.rejections import Rejection
from imgcomp.video import read_video

FEATURES_TOPIC = "/camera/image_raw/imgcomp"
RAW_TOPIC = "/camera/image_raw"
JPEG_TOPIC = "/camera/image_raw/compressed"
FRAME_ID = "camera_optical_frame"
TEMPORAL_BAG = "features_bag"  # the product: the temporal stream
INTRA_BAG = "intra_bag"  # the same frames, every one a key frame
REFERENCE_BAGS = ("raw_bag", "jpeg_bag", "jpeg_bag_equal_msssim")


def _percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p95": None}
    return {"n": len(values), "p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95))}


@dataclass
class StreamFigures:
    """One of our streams as the decoder saw it (frame kinds read back from the bag)."""

    keyframe_interval: int  # as asked; 0 = intra only
    temporal: str  # the encoder's note: on, or why every frame is a key frame
    frames: int
    keyframes: int
    pframes: int
    key_reasons: str  # why the key frames were sent (first, interval, scene, ...)
    mean_bpp: float
    kbps_at_source_fps: float
    kbps_at_30fps: float
    psnr_db: float
    psnr_db_min: float
    ms_ssim: float
    bag_bytes: int
    key_bits_mean: float | None
    p_bits_mean: float | None
    encode_ms: dict[str, dict[str, Any]]  # {"key": {n, p50, p95}, "P": {...}}
    decode_ms: dict[str, dict[str, Any]]
    frame_types: str  # one letter a frame in bag order: K key, P predicted

    def ms(self, what: str, kind: str) -> str:
        stats = (self.encode_ms if what == "encode" else self.decode_ms)[kind]
        return "-" if not stats["n"] else f"{stats['p50']:.0f} / {stats['p95']:.0f}"


@dataclass
class DemoReport:
    video: str
    model: str
    model_hash: str
    quality: int
    frames: int
    width: int
    height: int
    source_fps: float
    temporal: StreamFigures
    intra: StreamFigures
    same_stream: bool  # True: the model has no temporal mode; one intra stream, reported as both
    raw_bag_bytes: int
    jpeg_quality: int  # matching our intra mode's bpp
    jpeg_mean_bpp: float
    jpeg_psnr_db: float
    jpeg_ms_ssim: float
    jpeg_bag_bytes: int
    jpeg_equal_msssim_quality: int  # matching the temporal stream's MS-SSIM
    jpeg_equal_msssim_bpp: float
    jpeg_equal_msssim_ms_ssim: float
    jpeg_equal_msssim_bag_bytes: int
    side_by_side_frame: int  # the frame shown in side_by_side.png
    torch_threads: int
    seconds: float  # the whole run (wall clock), model loading and reference bags included
    cpu_seconds: float  # CPU time of the run, all threads: what a busy machine cannot inflate much
    load_average: list[float] = field(default_factory=list)  # 1-min load average at start and end

    def markdown(self) -> str:
        r, t, i = self, self.temporal, self.intra
        raw_kbps = 24 * r.width * r.height * r.source_fps / 1e3
        interval = f"key every {t.keyframe_interval}" if not r.same_stream else "temporal off"
        head = [
            f"## imgcomp demo: {Path(r.video).name}, {r.frames} frames {r.width}x{r.height} @ {r.source_fps:g} fps",
            "",
            f"model `{r.model}` (weights {r.model_hash}), quality {r.quality}; temporal mode {t.temporal}",
            "",
            f"| | imgcomp temporal ({interval}) | imgcomp intra (every frame key) | JPEG (OpenCV 4:2:0, q{r.jpeg_quality}) | raw rgb8 |",
            "|---|---:|---:|---:|---:|",
            f"| mean bits per pixel | {t.mean_bpp:.3f} | {i.mean_bpp:.3f} | {r.jpeg_mean_bpp:.3f} | 24 |",
            f"| kbit/s at {r.source_fps:g} fps | {t.kbps_at_source_fps:.0f} | {i.kbps_at_source_fps:.0f} "
            f"| {r.jpeg_mean_bpp * r.width * r.height * r.source_fps / 1e3:.0f} | {raw_kbps:.0f} |",
            f"| PSNR (dB) | {t.psnr_db:.2f} | {i.psnr_db:.2f} | {r.jpeg_psnr_db:.2f} | inf |",
            f"| MS-SSIM | {t.ms_ssim:.4f} | {i.ms_ssim:.4f} | {r.jpeg_ms_ssim:.4f} | 1 |",
            f"| bag size (MB) | {t.bag_bytes / 1e6:.2f} | {i.bag_bytes / 1e6:.2f} | {r.jpeg_bag_bytes / 1e6:.2f} | {r.raw_bag_bytes / 1e6:.1f} |",
            f"| bag size vs raw | {r.raw_bag_bytes / t.bag_bytes:.0f}x smaller | {r.raw_bag_bytes / i.bag_bytes:.0f}x smaller "
            f"| {r.raw_bag_bytes / r.jpeg_bag_bytes:.0f}x smaller | 1x |",
            "",
            "| frames (bag order) | count | mean bits | encode ms p50 / p95 | decode ms p50 / p95 |",
            "|---|---:|---:|---:|---:|",
            f"| temporal: key frames | {t.keyframes} | {_bits(t.key_bits_mean)} | {t.ms('encode', 'key')} | {t.ms('decode', 'key')} |",
            f"| temporal: P-frames | {t.pframes} | {_bits(t.p_bits_mean)} | {t.ms('encode', 'P')} | {t.ms('decode', 'P')} |",
            f"| intra: key frames | {i.keyframes} | {_bits(i.key_bits_mean)} | {i.ms('encode', 'key')} | {i.ms('decode', 'key')} |",
            "",
            f"temporal stream: {t.frame_types} (key frames sent for: {t.key_reasons})",
        ]
        if not r.same_stream:
            head.append(
                f"temporal vs intra: {i.mean_bpp / t.mean_bpp:.1f}x fewer bits, bag {i.bag_bytes / t.bag_bytes:.1f}x smaller, "
                f"PSNR {t.psnr_db - i.psnr_db:+.2f} dB (worst frame {t.psnr_db_min:.2f} dB vs {i.psnr_db_min:.2f}), "
                f"MS-SSIM {t.ms_ssim - i.ms_ssim:+.4f}"
            )
        load = " -> ".join(f"{v:.2f}" for v in r.load_average)
        return "\n".join(
            head
            + [
                f"JPEG at the temporal stream's MS-SSIM needs q{r.jpeg_equal_msssim_quality}: {r.jpeg_equal_msssim_bpp:.3f} bpp "
                f"(MS-SSIM {r.jpeg_equal_msssim_ms_ssim:.4f}), bag {r.jpeg_equal_msssim_bag_bytes / 1e6:.2f} MB, "
                f"{r.jpeg_equal_msssim_bag_bytes / t.bag_bytes:.1f}x the temporal bag.",
                "",
                f"Times: this CPU, {r.torch_threads} torch thread(s), after one warm-up key and P-frame; encode = "
                f"`EncoderCore.process`, decode = `DecoderCore.process` (message fields to message fields). "
                f"Whole run {r.seconds:.0f} s wall, {r.cpu_seconds:.0f} s CPU, load average {load}.",
            ]
        )


def _bits(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def jpeg_quality_matching_bpp(frames: list[np.ndarray], target_bpp: float) -> int:
    """The JPEG quality whose mean bpp over (a sample of) the frames is closest to the target."""
    sample = frames[:: max(1, len(frames) // 40)]

    def mean_bpp(q: int) -> float:
        return float(np.mean([bits_per_pixel(len(JPEG.encode(f, q)), *f.shape[:2]) for f in sample]))

    return min(range(1, 101), key=lambda q: abs(mean_bpp(q) - target_bpp))


def jpeg_quality_matching_ms_ssim(frames: list[np.ndarray], target: float) -> int:
    """The lowest JPEG quality whose mean MS-SSIM over a sample of the frames reaches the target
    (bisection: MS-SSIM grows with JPEG quality); 100 if none does."""
    sample = frames[:: max(1, len(frames) // 12)]

    def mean_ms_ssim(q: int) -> float:
        return float(np.mean([ms_ssim_index(f, JPEG.decode(JPEG.encode(f, q))) for f in sample]))

    low, high = 1, 100
    while low < high:
        mid = (low + high) // 2
        if mean_ms_ssim(mid) >= target:
            high = mid
        else:
            low = mid + 1
    return low


def _stamp_ns(index: int, fps: float) -> int:
    return 1_700_000_000_000_000_000 + round(index * 1e9 / fps)


def _image_fields(frame: np.ndarray) -> ImageFields:
    """The fields of the camera's sensor_msgs/Image (rgb8), as the encoder node receives them."""
    return ImageFields(data=frame.tobytes(), height=frame.shape[0], width=frame.shape[1], encoding="rgb8",
                       step=3 * frame.shape[1], stamp=None, frame_id=FRAME_ID)


def _features_msg(result: FeaturesFields, stamp: int) -> Any:
    return make_features_msg(
        stamp_ns=stamp, frame_id=FRAME_ID, codec=result.codec, model_hash=result.model_hash, quality=result.quality,
        height=result.height, width=result.width, encoding=result.encoding, data=result.data,
        frame_type=result.frame_type, frame_number=result.frame_number,
        reference_frame_number=result.reference_frame_number,
    )


@dataclass
class _Stream:
    """One encoder core writing one bag, and what was measured of it."""

    core: EncoderCore
    bag: Path
    encode_ms: list[float] = field(default_factory=list)


def _encode(stream: _Stream, frame: np.ndarray, index: int) -> FeaturesFields:
    start = time.perf_counter()
    result = stream.core.process(_image_fields(frame))
    stream.encode_ms.append(1e3 * (time.perf_counter() - start))
    if isinstance(result, Rejection):
        raise RuntimeError(f"the encoder rejected frame {index}: {result.cause}: {result.message}")
    return result


def _decode(core: DecoderCore, message: Any, index: int) -> tuple[np.ndarray, float]:
    fields = FeaturesFields.from_msg(message)
    start = time.perf_counter()
    result = core.process(fields)
    elapsed = 1e3 * (time.perf_counter() - start)
    if isinstance(result, Rejection):
        raise RuntimeError(f"the decoder rejected frame {index}: {result.cause}: {result.message}")
    image = image_from_msg_fields(result.data, result.height, result.width, result.encoding, result.step, 0)
    return image, elapsed


def _warm_up(codec: Codec, decoder_codec: Codec, frames: list[np.ndarray], quality: int) -> None:
    """One key and one P-frame through throwaway cores (their own stream), so that the first
    measured frame does not carry torch's one-time start-up."""
    encoder = EncoderCore(lambda _name: codec, model=codec.model_name, quality=quality, keyframe_interval=DEFAULT_KEYFRAME_INTERVAL)
    decoder = DecoderCore(lambda _name: decoder_codec, model=decoder_codec.model_name)
    for index, frame in enumerate(frames[:2]):
        result = encoder.process(_image_fields(frame))
        if not isinstance(result, Rejection):
            decoder.process(result)


def run_demo(
    video: Path,
    out_dir: Path,
    model: str = DEFAULT_MODEL,
    quality: int | None = None,
    max_frames: int | None = None,
    keep_reference_bags: bool = False,
    keyframe_interval: int = DEFAULT_KEYFRAME_INTERVAL,
) -> DemoReport:
    import torch

    started, cpu_started = time.perf_counter(), time.process_time()
    load_start = os.getloadavg()[0]
    frames, fps = read_video(video, max_frames)
    height, width = frames[0].shape[:2]
    codec = Codec(model, quality=quality)  # the encoder's
    decoder_codec = Codec(model)  # the decoder's own, as in another process
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in (TEMPORAL_BAG, INTRA_BAG, *REFERENCE_BAGS):
        shutil.rmtree(out_dir / stale, ignore_errors=True)
    _warm_up(codec, decoder_codec, frames, codec.quality)

    def core(interval: int) -> EncoderCore:
        return EncoderCore(lambda _name: codec, model=codec.model_name, quality=codec.quality, keyframe_interval=interval)

    temporal = _Stream(core(keyframe_interval), out_dir / TEMPORAL_BAG)
    same_stream = not temporal.core.temporal
    streams = [temporal] if same_stream else [temporal, _Stream(core(0), out_dir / INTRA_BAG)]

    with ExitStack() as stack:
        bags = [stack.enter_context(open_writer(s.bag)) for s in streams]
        for index, frame in enumerate(tqdm(frames, desc="encode -> bag", unit="frame")):
            stamp = _stamp_ns(index, fps)
            for stream, bag in zip(streams, bags):
                bag.write(FEATURES_TOPIC, MSG_TYPE, stamp, _features_msg(_encode(stream, frame, index), stamp))

    figures, shown = _decode_streams(streams, frames, fps, keyframe_interval, decoder_codec)
    intra_figures = figures[0] if same_stream else figures[1]

    raw_bag_bytes = _write_raw_bag(out_dir / "raw_bag", frames, fps)
    jpeg_q = jpeg_quality_matching_bpp(frames, intra_figures.mean_bpp)
    jpeg_stats = _write_jpeg_bag(out_dir / "jpeg_bag", frames, fps, jpeg_q)
    jpeg_q_same_quality = jpeg_quality_matching_ms_ssim(frames, figures[0].ms_ssim)
    same_quality = _write_jpeg_bag(out_dir / "jpeg_bag_equal_msssim", frames, fps, jpeg_q_same_quality)
    if not keep_reference_bags:
        for name in REFERENCE_BAGS:
            shutil.rmtree(out_dir / name)

    index, decoded = shown
    jpeg_tile = JPEG.decode(JPEG.encode(frames[index], jpeg_q))
    _write_side_by_side(out_dir / "side_by_side.png", frames[index], decoded, jpeg_tile, figures[0], intra_figures, jpeg_q, index)
    report = DemoReport(
        video=str(video), model=codec.model_name, model_hash=codec.model_hash, quality=codec.quality,
        frames=len(frames), width=width, height=height, source_fps=fps,
        temporal=figures[0], intra=intra_figures, same_stream=same_stream,
        raw_bag_bytes=raw_bag_bytes, jpeg_quality=jpeg_q, **jpeg_stats,
        jpeg_equal_msssim_quality=jpeg_q_same_quality,
        jpeg_equal_msssim_bpp=same_quality["jpeg_mean_bpp"],
        jpeg_equal_msssim_ms_ssim=same_quality["jpeg_ms_ssim"],
        jpeg_equal_msssim_bag_bytes=same_quality["jpeg_bag_bytes"],
        side_by_side_frame=index, torch_threads=torch.get_num_threads(),
        seconds=time.perf_counter() - started, cpu_seconds=time.process_time() - cpu_started, load_average=[load_start, os.getloadavg()[0]],
    )
    (out_dir / "report.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
    (out_dir / "report.md").write_text(report.markdown() + "\n")
    return report


def _decode_streams(
    streams: list[_Stream], frames: list[np.ndarray], fps: float, keyframe_interval: int, codec: Codec
) -> tuple[list[StreamFigures], tuple[int, list[np.ndarray]]]:
    """Read every stream's bag back and decode it through its own `DecoderCore`, interleaved frame
    by frame; the figures of each, and (frame index, [decoded image of each stream]) of the frame
    side_by_side.png shows: the last P-frame of the first group (the farthest from its key frame),
    frame 0 without P-frames."""
    def factory(name: str) -> Codec:
        return codec if name == codec.model_name else Codec(name)

    decoders = [DecoderCore(factory, model=codec.model_name) for _ in streams]
    readers = [iter(read_messages(s.bag, [FEATURES_TOPIC])) for s in streams]
    kinds: list[list[str]] = [[] for _ in streams]
    bits: list[list[int]] = [[] for _ in streams]
    decode_ms: list[list[float]] = [[] for _ in streams]
    psnrs: list[list[float]] = [[] for _ in streams]
    ms_ssims: list[list[float]] = [[] for _ in streams]
    decoded_frames: list[list[np.ndarray]] = []
    for index, frame in enumerate(tqdm(frames, desc="bag -> decode", unit="frame")):
        decoded_now = []
        for s, (reader, decoder) in enumerate(zip(readers, decoders)):
            message = next(reader, None)
            if message is None:
                raise RuntimeError(f"{streams[s].bag} holds {index} frames, {len(frames)} were written")
            features = message.decode()
            kinds[s].append("K" if int(features.frame_type) == FRAME_KEY else "P")
            bits[s].append(8 * len(features.data))
            decoded, elapsed = _decode(decoder, features, index)
            decode_ms[s].append(elapsed)
            psnrs[s].append(psnr(frame, decoded))
            ms_ssims[s].append(ms_ssim_index(frame, decoded))
            decoded_now.append(decoded)
        if index < max(keyframe_interval, 1):  # the first group, for the picture
            decoded_frames.append(decoded_now)
    for reader, stream in zip(readers, streams):
        if next(reader, None) is not None:
            raise RuntimeError(f"{stream.bag} holds more frames than the {len(frames)} written")

    pixels = frames[0].shape[0] * frames[0].shape[1]
    figures = []
    for s, stream in enumerate(streams):
        key = [i for i, k in enumerate(kinds[s]) if k == "K"]
        pred = [i for i, k in enumerate(kinds[s]) if k == "P"]
        core = stream.core
        if (len(key), len(pred)) != (core.keyframes_sent, core.pframes_sent):
            raise RuntimeError(f"{stream.bag}: the bag holds {len(key)} key and {len(pred)} P-frames, "
                               f"the encoder sent {core.keyframes_sent} and {core.pframes_sent}")
        mean_bpp = float(np.mean(bits[s])) / pixels
        diagnostics = core.diagnostics()
        figures.append(StreamFigures(
            keyframe_interval=core.keyframe_interval, temporal=diagnostics["temporal"],
            frames=len(frames), keyframes=len(key), pframes=len(pred), key_reasons=diagnostics["key_reasons"],
            mean_bpp=mean_bpp, kbps_at_source_fps=mean_bpp * pixels * fps / 1e3, kbps_at_30fps=mean_bpp * pixels * 30 / 1e3,
            psnr_db=float(np.mean(psnrs[s])), psnr_db_min=float(np.min(psnrs[s])), ms_ssim=float(np.mean(ms_ssims[s])),
            bag_bytes=bag_size_bytes(stream.bag),
            key_bits_mean=float(np.mean([bits[s][i] for i in key])) if key else None,
            p_bits_mean=float(np.mean([bits[s][i] for i in pred])) if pred else None,
            encode_ms={"key": _percentiles([stream.encode_ms[i] for i in key]), "P": _percentiles([stream.encode_ms[i] for i in pred])},
            decode_ms={"key": _percentiles([decode_ms[s][i] for i in key]), "P": _percentiles([decode_ms[s][i] for i in pred])},
            frame_types="".join(kinds[s]),
        ))
    first_group = kinds[0][: len(decoded_frames)]
    shown = 0
    for i in range(1, len(first_group)):
        if first_group[i] != "P":
            break
        shown = i
    return figures, (shown, decoded_frames[shown])


def _write_raw_bag(path: Path, frames: list[np.ndarray], fps: float) -> int:
    with open_writer(path) as writer:
        for index, frame in enumerate(tqdm(frames, desc="raw bag", unit="frame", leave=False)):
            stamp = _stamp_ns(index, fps)
            writer.write(RAW_TOPIC, "sensor_msgs/msg/Image", stamp, make_image_msg(stamp, FRAME_ID, frame, "rgb8"))
    return bag_size_bytes(path)


def _write_jpeg_bag(path: Path, frames: list[np.ndarray], fps: float, quality: int) -> dict:
    store = typestore()
    compressed_image = store.types["sensor_msgs/msg/CompressedImage"]
    header_t, time_t = store.types["std_msgs/msg/Header"], store.types["builtin_interfaces/msg/Time"]
    bpps, psnrs, ms_ssims = [], [], []
    with open_writer(path) as writer:
        for index, frame in enumerate(tqdm(frames, desc="JPEG bag", unit="frame", leave=False)):
            data = JPEG.encode(frame, quality)
            decoded = JPEG.decode(data)
            bpps.append(bits_per_pixel(len(data), *frame.shape[:2]))
            psnrs.append(psnr(frame, decoded))
            ms_ssims.append(ms_ssim_index(frame, decoded))
            stamp = _stamp_ns(index, fps)
            header = header_t(stamp=time_t(sec=stamp // 10**9, nanosec=stamp % 10**9), frame_id=FRAME_ID)
            message = compressed_image(header=header, format="rgb8; jpeg compressed bgr8", data=np.frombuffer(data, np.uint8))
            writer.write(JPEG_TOPIC, "sensor_msgs/msg/CompressedImage", stamp, message)
    return {
        "jpeg_mean_bpp": float(np.mean(bpps)),
        "jpeg_psnr_db": float(np.mean(psnrs)),
        "jpeg_ms_ssim": float(np.mean(ms_ssims)),
        "jpeg_bag_bytes": bag_size_bytes(path),
    }


def _write_side_by_side(
    path: Path, original: np.ndarray, decoded: list[np.ndarray], jpeg: np.ndarray,
    temporal: StreamFigures, intra: StreamFigures, jpeg_q: int, index: int,
) -> None:
    """original | temporal stream | intra mode (when there are two streams) | JPEG, of one frame."""
    kind = "P-frame" if temporal.frame_types[index] == "P" else "key frame"
    labelled = [(original, f"original, frame {index}"), (decoded[0], f"imgcomp temporal {kind}, {temporal.mean_bpp:.3f} bpp mean")]
    if len(decoded) > 1:
        labelled.append((decoded[1], f"imgcomp intra, {intra.mean_bpp:.3f} bpp mean"))
    labelled.append((jpeg, f"JPEG q{jpeg_q} (intra's size)"))
    tiles = []
    for image, label in labelled:
        tile = cv2.cvtColor(image, cv2.COLOR_RGB2BGR).copy()
        cv2.putText(tile, label, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 4, cv2.LINE_AA)
        cv2.putText(tile, label, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2, cv2.LINE_AA)
        tiles.append(tile)
    cv2.imwrite(str(path), np.hstack(tiles))
