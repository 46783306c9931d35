"""The main job on a built-in default: a real camera video through encoder, rosbag2 and decoder.

`vtest.avi` (a fixed camera filming people walking, from Debian's opencv-doc) plays the camera.
Every frame is encoded, written as an `imgcomp_msgs/CompressedFeatures` message into a real MCAP
rosbag2 file, read back, decoded and compared with the original. For scale, the same frames are
also written as a raw `sensor_msgs/Image` bag and as a JPEG `sensor_msgs/CompressedImage` bag
at the JPEG quality whose mean bits per pixel matches ours.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from imgcomp.rosbag.io import bag_size_bytes, open_writer, read_messages
from imgcomp.eval.baselines import JPEG
from imgcomp.codec import DEFAULT_MODEL, Codec
from imgcomp.metrics import bits_per_pixel, ms_ssim_index, psnr
from imgcomp.rosbag.messages import MSG_TYPE, make_features_msg, make_image_msg, typestore
from imgcomp.video import read_video

FEATURES_TOPIC = "/camera/image_raw/imgcomp"
RAW_TOPIC = "/camera/image_raw"
JPEG_TOPIC = "/camera/image_raw/compressed"
FRAME_ID = "camera_optical_frame"


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
    mean_bpp: float
    kbps_at_source_fps: float
    kbps_at_30fps: float
    psnr_db: float
    ms_ssim: float
    encode_ms_p50: float
    encode_ms_p95: float
    decode_ms_p50: float
    decode_ms_p95: float
    bag_bytes: int
    raw_bag_bytes: int
    jpeg_quality: int
    jpeg_mean_bpp: float
    jpeg_psnr_db: float
    jpeg_ms_ssim: float
    jpeg_bag_bytes: int
    jpeg_equal_msssim_quality: int
    jpeg_equal_msssim_bpp: float
    jpeg_equal_msssim_ms_ssim: float
    jpeg_equal_msssim_bag_bytes: int

    def markdown(self) -> str:
        r = self
        return "\n".join(
            [
                f"## imgcomp demo: {Path(r.video).name}, {r.frames} frames {r.width}x{r.height} @ {r.source_fps:g} fps",
                "",
                f"model `{r.model}` (weights {r.model_hash}), quality {r.quality}",
                "",
                "| | imgcomp | JPEG (OpenCV 4:2:0, q%d) | raw rgb8 |" % r.jpeg_quality,
                "|---|---:|---:|---:|",
                f"| mean bits per pixel | {r.mean_bpp:.3f} | {r.jpeg_mean_bpp:.3f} | 24 |",
                f"| PSNR (dB) | {r.psnr_db:.2f} | {r.jpeg_psnr_db:.2f} | inf |",
                f"| MS-SSIM | {r.ms_ssim:.4f} | {r.jpeg_ms_ssim:.4f} | 1 |",
                f"| bag size (MB) | {r.bag_bytes / 1e6:.2f} | {r.jpeg_bag_bytes / 1e6:.2f} | {r.raw_bag_bytes / 1e6:.1f} |",
                f"| bag size vs raw | {r.raw_bag_bytes / r.bag_bytes:.1f}x smaller | {r.raw_bag_bytes / r.jpeg_bag_bytes:.1f}x smaller | 1x |",
                "",
                f"JPEG at equal MS-SSIM needs q{r.jpeg_equal_msssim_quality}: {r.jpeg_equal_msssim_bpp:.3f} bpp "
                f"(MS-SSIM {r.jpeg_equal_msssim_ms_ssim:.4f}), bag {r.jpeg_equal_msssim_bag_bytes / 1e6:.2f} MB, "
                f"{r.jpeg_equal_msssim_bag_bytes / r.bag_bytes:.2f}x the size of ours.",
                "",
                f"bitrate: {r.kbps_at_source_fps:.0f} kbit/s at {r.source_fps:g} fps, {r.kbps_at_30fps:.0f} kbit/s at 30 fps",
                f"encode: p50 {r.encode_ms_p50:.1f} ms, p95 {r.encode_ms_p95:.1f} ms; "
                f"decode: p50 {r.decode_ms_p50:.1f} ms, p95 {r.decode_ms_p95:.1f} ms (this CPU)",
            ]
        )


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


def run_demo(
    video: Path,
    out_dir: Path,
    model: str = DEFAULT_MODEL,
    quality: int | None = None,
    max_frames: int | None = None,
    keep_reference_bags: bool = False,
) -> DemoReport:
    frames, fps = read_video(video, max_frames)
    height, width = frames[0].shape[:2]
    codec = Codec(model, quality=quality)
    out_dir.mkdir(parents=True, exist_ok=True)
    bag_path = out_dir / "features_bag"
    for stale in (bag_path, out_dir / "raw_bag", out_dir / "jpeg_bag"):
        shutil.rmtree(stale, ignore_errors=True)

    encode_ms: list[float] = []
    with open_writer(bag_path) as writer:
        for index, frame in enumerate(tqdm(frames, desc="encode -> bag", unit="frame")):
            start = time.perf_counter()
            payload = codec.encode(frame, encoding="rgb8", frame_number=index)
            encode_ms.append(1e3 * (time.perf_counter() - start))
            stamp = _stamp_ns(index, fps)
            message = make_features_msg(
                stamp_ns=stamp, frame_id=FRAME_ID, codec=codec.model_name, model_hash=codec.model_hash,
                quality=codec.quality, height=height, width=width, encoding="rgb8", data=payload, frame_number=index,
            )
            writer.write(FEATURES_TOPIC, MSG_TYPE, stamp, message)

    decode_ms: list[float] = []
    psnrs: list[float] = []
    ms_ssims: list[float] = []
    payload_bytes = 0
    decoded_first: np.ndarray | None = None
    for index, message in enumerate(tqdm(list(read_messages(bag_path, [FEATURES_TOPIC])), desc="bag -> decode", unit="frame")):
        features = message.decode()
        payload = bytes(features.data)
        payload_bytes += len(payload)
        start = time.perf_counter()
        decoded = codec.decode(payload)
        decode_ms.append(1e3 * (time.perf_counter() - start))
        psnrs.append(psnr(frames[index], decoded))
        ms_ssims.append(ms_ssim_index(frames[index], decoded))
        if decoded_first is None:
            decoded_first = decoded
    if len(decode_ms) != len(frames):
        raise RuntimeError(f"bag holds {len(decode_ms)} frames, {len(frames)} were written")

    mean_bpp = bits_per_pixel(payload_bytes, height, width) / len(frames)
    raw_bag_bytes = _write_raw_bag(out_dir / "raw_bag", frames, fps)
    jpeg_q = jpeg_quality_matching_bpp(frames, mean_bpp)
    jpeg_stats = _write_jpeg_bag(out_dir / "jpeg_bag", frames, fps, jpeg_q)
    mean_ms_ssim = float(np.mean(ms_ssims))
    jpeg_q_same_quality = jpeg_quality_matching_ms_ssim(frames, mean_ms_ssim)
    same_quality = _write_jpeg_bag(out_dir / "jpeg_bag_equal_msssim", frames, fps, jpeg_q_same_quality)
    if not keep_reference_bags:
        for name in ("raw_bag", "jpeg_bag", "jpeg_bag_equal_msssim"):
            shutil.rmtree(out_dir / name)

    assert decoded_first is not None
    _write_side_by_side(out_dir / "side_by_side.png", frames[0], decoded_first, JPEG.decode(JPEG.encode(frames[0], jpeg_q)), mean_bpp, jpeg_q)
    report = DemoReport(
        video=str(video), model=codec.model_name, model_hash=codec.model_hash, quality=codec.quality,
        frames=len(frames), width=width, height=height, source_fps=fps, mean_bpp=mean_bpp,
        kbps_at_source_fps=mean_bpp * width * height * fps / 1e3, kbps_at_30fps=mean_bpp * width * height * 30 / 1e3,
        psnr_db=float(np.mean(psnrs)), ms_ssim=float(np.mean(ms_ssims)),
        encode_ms_p50=float(np.percentile(encode_ms, 50)), encode_ms_p95=float(np.percentile(encode_ms, 95)),
        decode_ms_p50=float(np.percentile(decode_ms, 50)), decode_ms_p95=float(np.percentile(decode_ms, 95)),
        bag_bytes=bag_size_bytes(bag_path), raw_bag_bytes=raw_bag_bytes, jpeg_quality=jpeg_q, **jpeg_stats,
        jpeg_equal_msssim_quality=jpeg_q_same_quality,
        jpeg_equal_msssim_bpp=same_quality["jpeg_mean_bpp"],
        jpeg_equal_msssim_ms_ssim=same_quality["jpeg_ms_ssim"],
        jpeg_equal_msssim_bag_bytes=same_quality["jpeg_bag_bytes"],
    )
    (out_dir / "report.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
    (out_dir / "report.md").write_text(report.markdown() + "\n")
    return report


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


def _write_side_by_side(path: Path, original: np.ndarray, ours: np.ndarray, jpeg: np.ndarray, bpp: float, jpeg_q: int) -> None:
    tiles = []
    for image, label in ((original, "original"), (ours, f"imgcomp {bpp:.3f} bpp"), (jpeg, f"JPEG q{jpeg_q} (equal size)")):
        tile = cv2.cvtColor(image, cv2.COLOR_RGB2BGR).copy()
        cv2.putText(tile, label, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 4, cv2.LINE_AA)
        cv2.putText(tile, label, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2, cv2.LINE_AA)
        tiles.append(tile)
    cv2.imwrite(str(path), np.hstack(tiles))
