"""Per-frame latency benchmark: our models beside OpenCV JPEG and CompressAI's reference
`bmshj2018-factorized` architecture (N=128, M=192), measured in the same run on the same frames.

The reference is randomly initialised (no weights can be downloaded here). Its analysis
transform costs the same whatever the weights, so the architecture comparison uses that column;
its full encode also entropy-codes a random model's high-rate latent, which a trained one would not.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from compressai.zoo import bmshj2018_factorized
from tqdm import tqdm

from imgcomp.classical import threads as classical_threads
from imgcomp.eval.baselines import JPEG
from imgcomp.codec import Codec
from imgcomp.padding import pad_to_multiple

RESOLUTIONS = {"640x480": (640, 480), "1280x720": (1280, 720), "1920x1080": (1920, 1080)}


def _frames(video: Path | None, fallback: Path, size: tuple[int, int], count: int) -> list[np.ndarray]:
    from imgcomp.video import read_video

    if video is not None and video.exists():
        frames, _ = read_video(video, max_frames=count)
    else:
        frames = [cv2.cvtColor(cv2.imread(str(fallback)), cv2.COLOR_BGR2RGB)] * count
    return [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]


def _time_ms(fn: Callable[[], object], cuda: bool = False) -> float:
    """Milliseconds for fn(); with `cuda`, measured with CUDA events, so queued GPU work is counted."""
    if cuda:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end))
    start_s = time.perf_counter()
    fn()
    return 1e3 * (time.perf_counter() - start_s)


def _summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50": float(np.percentile(samples, 50)),
        "p95": float(np.percentile(samples, 95)),
        "p99": float(np.percentile(samples, 99)),
        "fps": float(1e3 / np.mean(samples)),
    }


def _bench_pair(
    encode: Callable[[np.ndarray], bytes], decode: Callable[[bytes], object], frames: list[np.ndarray], warmup: int, cuda: bool = False
) -> dict:
    for frame in frames[:warmup]:
        decode(encode(frame))
    enc, dec, sizes = [], [], []
    for frame in frames[warmup:]:
        holder: dict[str, bytes] = {}
        enc.append(_time_ms(lambda: holder.__setitem__("b", encode(frame)), cuda))
        sizes.append(len(holder["b"]))
        dec.append(_time_ms(lambda: decode(holder["b"]), cuda))
    h, w = frames[0].shape[:2]
    return {"encode_ms": _summary(enc), "decode_ms": _summary(dec), "mean_bpp": float(8 * np.mean(sizes) / (h * w))}


def _bench_through_bag(codec: Codec, frames: list[np.ndarray], quality: int, workdir: Path) -> dict:
    """Encode -> CompressedFeatures -> CDR -> MCAP rosbag2 writer; reader -> CDR -> decode: per frame."""
    import shutil

    from imgcomp.rosbag.io import open_writer, read_messages
    from imgcomp.rosbag.messages import MSG_TYPE, make_features_msg, typestore

    bag = workdir / "bench_bag"
    shutil.rmtree(bag, ignore_errors=True)
    h, w = frames[0].shape[:2]
    serialize_ms, write_side_ms = [], []
    with open_writer(bag) as writer:
        for i, frame in enumerate(frames):
            start = time.perf_counter()
            payload = codec.encode(frame, quality=quality, frame_number=i)
            msg = make_features_msg(
                stamp_ns=i, frame_id="camera", codec=codec.model_name, model_hash=codec.model_hash,
                quality=quality, height=h, width=w, encoding="rgb8", data=payload, frame_number=i,
            )
            t_ser = time.perf_counter()
            raw = typestore().serialize_cdr(msg, MSG_TYPE)
            serialize_ms.append(1e3 * (time.perf_counter() - t_ser))
            writer.write_raw("/camera/image_raw/imgcomp", MSG_TYPE, i + 1, raw)
            write_side_ms.append(1e3 * (time.perf_counter() - start))
    read_side_ms = []
    messages = read_messages(bag, ["/camera/image_raw/imgcomp"])
    while True:
        start = time.perf_counter()
        message = next(messages, None)
        if message is None:
            break
        codec.decode(bytes(message.decode().data))
        read_side_ms.append(1e3 * (time.perf_counter() - start))
    shutil.rmtree(bag, ignore_errors=True)
    end_to_end = [a + b for a, b in zip(write_side_ms, read_side_ms)]
    return {"serialize_ms": _summary(serialize_ms), "end_to_end_ms": _summary(end_to_end)}


def _analysis_ms(g_a: torch.nn.Module, frames: list[np.ndarray], multiple: int, device: str) -> dict[str, float]:
    """The analysis transform alone: architecture cost, independent of the weights' rate."""
    samples = []
    g_a = g_a.to(device)
    with torch.no_grad():
        for frame in frames[:2]:  # warm-up (cuDNN autotuning, lazy allocations)
            g_a(pad_to_multiple(torch.from_numpy(frame).permute(2, 0, 1)[None].float().div(255).to(device), multiple)[0])
        for frame in frames:
            x = torch.from_numpy(frame).permute(2, 0, 1)[None].float().div(255).to(device)
            x, _ = pad_to_multiple(x, multiple)
            samples.append(_time_ms(lambda: g_a(x), device.startswith("cuda")))
    return _summary(samples)


def _reference_codec(device: str = "cpu") -> tuple[Callable[[np.ndarray], bytes], Callable[[bytes], object], torch.nn.Module]:
    net = bmshj2018_factorized(quality=4, pretrained=False).eval().to(device)  # qualities 1-5: N=128, M=192
    net.update(force=True)
    shapes: dict[str, tuple[int, int]] = {}

    @torch.no_grad()
    def encode(frame: np.ndarray) -> bytes:
        x = torch.from_numpy(frame).permute(2, 0, 1)[None].float().to(device) / 255
        x, _ = pad_to_multiple(x, 16)
        out = net.compress(x)
        shapes["shape"] = out["shape"]
        return out["strings"][0][0]

    @torch.no_grad()
    def decode(data: bytes) -> object:
        return net.decompress([[data]], shapes["shape"])["x_hat"]

    return encode, decode, net.g_a


def run_bench(
    models: list[str],
    out_dir: Path,
    resolutions: list[str] = ("640x480",),
    frames: int = 30,
    warmup: int = 3,
    video: Path | None = Path("data/video/vtest.avi"),
    quality: int | None = None,
    device: str = "cpu",
    backends: tuple[str, ...] = ("torch",),
    memory: bool = False,
) -> dict:
    cuda = device.startswith("cuda")
    fallback = Path(__file__).resolve().parents[2] / "test" / "fixtures" / "images" / "vtest_frame0.png"
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "torch_threads": torch.get_num_threads(),
            "classical_threads": classical_threads(),
            "device": torch.cuda.get_device_name(0) if cuda else device,
            "timing": "CUDA events" if cuda else "perf_counter",
        },
        "frames": frames,
        "resolutions": {},
    }
    ref_encode, ref_decode, ref_g_a = _reference_codec(device)
    for res in resolutions:
        clip = _frames(video, fallback, RESOLUTIONS[res], frames + warmup)
        rows = {"OpenCV JPEG q90": _bench_pair(lambda f: JPEG.encode(f, 90), JPEG.decode, clip, warmup, cuda)}
        reference_name = "CompressAI bmshj2018-factorized (N=128, M=192)"
        rows[reference_name] = _bench_pair(ref_encode, ref_decode, clip, warmup, cuda)
        rows[reference_name]["analysis_ms"] = _analysis_ms(ref_g_a, clip[warmup:], 16, device)
        for model, backend in tqdm([(m, b) for m in models for b in backends], desc=f"models @ {res}", leave=False):
            codec = Codec(model, device=device, backend=backend)
            q = quality or codec.quality
            name = f"{model} q{q}" + ("" if backend == "torch" else f" [{backend}]")
            rows[name] = _bench_pair(lambda f: codec.encode(f, quality=q), codec.decode, clip, warmup, cuda)
            rows[name].update(_bench_through_bag(codec, clip[warmup:], q, out_dir))
            if backend == "torch" and hasattr(getattr(codec, "net", None), "g_a"):
                rows[name]["analysis_ms"] = _analysis_ms(codec.net.g_a, clip[warmup:], codec.net.downsampling, device)
        reference = rows[reference_name]
        for row in rows.values():
            row["encode_speedup_vs_reference"] = reference["encode_ms"]["p50"] / row["encode_ms"]["p50"]
            if "analysis_ms" in row:
                row["analysis_speedup_vs_reference"] = reference["analysis_ms"]["p50"] / row["analysis_ms"]["p50"]
        results["resolutions"][res] = rows
    results["peak_rss_mb"] = _peak_rss_mb()
    markdown = bench_markdown(results)
    if memory:
        from imgcomp.eval.bench_memory import largest_frame_memory, memory_markdown
        from imgcomp.codec import DEFAULT_MAX_OUTPUT_PIXELS

        width, height = 3840, 2160
        assert width * height == DEFAULT_MAX_OUTPUT_PIXELS
        results["largest_frame"] = largest_frame_memory(models, width, height, threads=max(1, torch.get_num_threads()))
        markdown += "\n" + memory_markdown(results["largest_frame"])
    (out_dir / "bench.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / "bench.md").write_text(markdown)
    return results


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def bench_markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        f"### Latency per frame ({m['device']}, {m.get('timing', 'perf_counter')}, {m['torch_threads']} torch threads, "
        f"{m.get('classical_threads', 1)} libavif/libjxl threads, {results['frames']} frames; "
        f"peak RSS {results['peak_rss_mb']:.0f} MB)",
        "",
    ]
    for res, rows in results["resolutions"].items():
        lines += [
            f"**{res}**",
            "",
            "| codec | encode p50 / p95 / p99 (ms) | decode p50 / p95 / p99 (ms) | encode fps | bpp "
            "| full encode vs reference | analysis transform p50 (ms) | analysis vs reference "
            "| CDR serialize p50 (ms) | end to end via MCAP bag p50 / p95 (ms) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, r in rows.items():
            e, d = r["encode_ms"], r["decode_ms"]
            ser = f"{r['serialize_ms']['p50']:.2f}" if "serialize_ms" in r else "–"
            ana = f"{r['analysis_ms']['p50']:.1f} | {r['analysis_speedup_vs_reference']:.2f}x" if "analysis_ms" in r else "– | –"
            e2e = f"{r['end_to_end_ms']['p50']:.1f} / {r['end_to_end_ms']['p95']:.1f}" if "end_to_end_ms" in r else "–"
            lines.append(
                f"| {name} | {e['p50']:.1f} / {e['p95']:.1f} / {e['p99']:.1f} | {d['p50']:.1f} / {d['p95']:.1f} / {d['p99']:.1f} "
                f"| {e['fps']:.1f} | {r['mean_bpp']:.3f} | {r['encode_speedup_vs_reference']:.2f}x | {ana} | {ser} | {e2e} |"
            )
        lines.append("")
    return "\n".join(lines)
