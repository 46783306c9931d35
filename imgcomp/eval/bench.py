"""Per-frame latency benchmark: our models beside OpenCV JPEG and CompressAI's reference
`bmshj2018-factorized` architecture (N=128, M=192), measured in the same run on the same frames.

The reference is randomly initialised (no weights can be downloaded here). Its analysis
transform costs the same whatever the weights, so the architecture comparison uses that column;
its full encode also entropy-codes a random model's high-rate latent, which a trained one would not.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from compressai.zoo import bmshj2018_factorized
from tqdm import tqdm

from imgcomp.classical import set_threads as set_classical_threads
from imgcomp.classical import threads as classical_threads
from imgcomp.eval.baselines import JPEG
from imgcomp.codec import Codec
from imgcomp.inference.errors import BackendUnavailable
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


_FEATURES_OF_NOTE = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "asimddp", "bf16")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (else what `platform` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_features() -> list[str]:
    """The SIMD features that decide which kernels the backends can use (x86 `flags`, Arm `Features`)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                present = set(line.split(":", 1)[1].split())
                return [f for f in _FEATURES_OF_NOTE if f in present]
    except OSError:
        pass
    return []


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


def _entropy_ms(codec: Codec, frames: list[np.ndarray], quality: int) -> dict[str, dict[str, float]]:
    """The coding outside the transforms, alone: `compress_analysed` (z and y rANS, integer
    prior) on the encode side, `decode_y_hat` (the same, decoding) on the decode side."""
    enc, dec = [], []
    for frame in frames:
        a = codec.analyse_image(frame, quality)
        enc.append(_time_ms(lambda: codec.net.compress_analysed(a.y, a.z)))
        parsed = codec.parse(codec.encode(frame, quality=quality))
        dec.append(_time_ms(lambda: codec.decode_y_hat(parsed)))
    return {"encode_ms": _summary(enc), "decode_ms": _summary(dec)}


def _set_threads(threads: int) -> None:
    if threads:
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
        set_classical_threads(threads)


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
    threads: tuple[int, ...] = (0,),
    bag: bool = True,
) -> dict:
    """Every (thread count, model, backend) in one run, beside JPEG and the reference at the same
    thread count; `threads` 0 keeps the libraries' defaults. Each row has its encode and decode
    speed-up over JPEG and over the reference, measured in this run."""
    if not threads or any(isinstance(t, bool) or not isinstance(t, int) or t < 0 for t in threads):
        raise ValueError(f"threads must be non-negative integers, got {list(threads)}")
    cuda = device.startswith("cuda")
    fallback = Path(__file__).resolve().parents[2] / "test" / "fixtures" / "images" / "vtest_frame0.png"
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "machine": {
            "cpu": cpu_model(),
            "cpu_features": cpu_features(),
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "classical_threads": classical_threads(),
            "device": torch.cuda.get_device_name(0) if cuda else device,
            "timing": "CUDA events" if cuda else "perf_counter",
            "load_average_before": list(os.getloadavg()),
        },
        "frames": frames,
        "threads": list(threads),  # resolutions[res][thread count] = rows
        "resolutions": {},
    }
    ref_encode, ref_decode, ref_g_a = _reference_codec(device)
    for res in resolutions:
        clip = _frames(video, fallback, RESOLUTIONS[res], frames + warmup)
        results["resolutions"][res] = {}
        for count in threads:
            _set_threads(count)
            label = f"{res}, {count or torch.get_num_threads()} threads"
            rows = {"OpenCV JPEG q90": _bench_pair(lambda f: JPEG.encode(f, 90), JPEG.decode, clip, warmup, cuda)}
            rows[REFERENCE] = _bench_pair(ref_encode, ref_decode, clip, warmup, cuda)
            rows[REFERENCE]["analysis_ms"] = _analysis_ms(ref_g_a, clip[warmup:], 16, device)
            for model, backend in tqdm([(m, b) for m in models for b in backends], desc=label, leave=False):
                try:
                    codec = Codec(model, device=device, backend=backend, threads=count)
                except BackendUnavailable as exc:
                    results.setdefault("skipped", {})[f"{model} [{backend}]"] = str(exc)
                    continue
                q = quality or codec.quality
                name = f"{model} q{q}" + ("" if backend == "torch" else f" [{backend}]")
                rows[name] = _bench_pair(lambda f: codec.encode(f, quality=q), codec.decode, clip, warmup, cuda)
                if not cuda and hasattr(getattr(codec, "net", None), "compress_analysed"):
                    rows[name]["entropy"] = _entropy_ms(codec, clip[warmup : warmup + 10], q)
                if bag:
                    rows[name].update(_bench_through_bag(codec, clip[warmup:], q, out_dir))
                if backend == "torch" and hasattr(getattr(codec, "net", None), "g_a"):
                    rows[name]["analysis_ms"] = _analysis_ms(codec.net.g_a, clip[warmup:], codec.net.downsampling, device)
            _add_ratios(rows)
            results["resolutions"][res][str(count or torch.get_num_threads())] = rows
    results["machine"]["load_average_after"] = list(os.getloadavg())
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


REFERENCE = "CompressAI bmshj2018-factorized (N=128, M=192)"
JPEG_ROW = "OpenCV JPEG q90"


def _add_ratios(rows: dict) -> None:
    reference, jpeg = rows[REFERENCE], rows[JPEG_ROW]
    for row in rows.values():
        for side in ("encode", "decode"):
            p50 = row[f"{side}_ms"]["p50"]
            row[f"{side}_speedup_vs_reference"] = reference[f"{side}_ms"]["p50"] / p50
            row[f"{side}_time_vs_jpeg"] = p50 / jpeg[f"{side}_ms"]["p50"]
        if "analysis_ms" in row:
            row["analysis_speedup_vs_reference"] = reference["analysis_ms"]["p50"] / row["analysis_ms"]["p50"]


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def bench_markdown(results: dict) -> str:
    m = results["machine"]
    load = m.get("load_average_before"), m.get("load_average_after")
    load_text = f"; load average {load[0][0]:.2f} before, {load[1][0]:.2f} after" if all(load) else ""
    lines = [
        f"### Latency per frame ({m['device']}: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, "
        f"{' '.join(m.get('cpu_features', [])) or 'no listed SIMD features'}; {m.get('timing', 'perf_counter')}, {results['frames']} frames, "
        f"{m.get('classical_threads', 1)} libavif/libjxl threads; "
        f"peak RSS {results['peak_rss_mb']:.0f} MB{load_text})",
        "",
        "Speed-up: the reference's p50 over the row's (higher is faster). vs JPEG: the row's p50 over "
        "OpenCV JPEG's (how many times slower). Entropy: `compress_analysed` / `decode_y_hat` alone "
        "(integer prior and rANS, outside the transforms). The reference is randomly initialised.",
        "",
    ]
    runs = [(f"{res}, {n} thread{'s' if n != '1' else ''}", rows) for res, by_threads in results["resolutions"].items()
            for n, rows in by_threads.items()]
    for title, rows in runs:
        lines += [
            f"**{title}**",
            "",
            "| codec | encode p50 / p95 (ms) | decode p50 / p95 (ms) | bpp | encode / decode speed-up vs reference "
            "| encode / decode time vs JPEG | entropy enc / dec p50 (ms) | analysis transform p50 (ms) "
            "| end to end via MCAP bag p50 (ms) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, r in rows.items():
            e, d = r["encode_ms"], r["decode_ms"]
            ent = f"{r['entropy']['encode_ms']['p50']:.1f} / {r['entropy']['decode_ms']['p50']:.1f}" if "entropy" in r else "–"
            ana = f"{r['analysis_ms']['p50']:.1f}" if "analysis_ms" in r else "–"
            e2e = f"{r['end_to_end_ms']['p50']:.1f}" if "end_to_end_ms" in r else "–"
            lines.append(
                f"| {name} | {e['p50']:.1f} / {e['p95']:.1f} | {d['p50']:.1f} / {d['p95']:.1f} | {r['mean_bpp']:.3f} "
                f"| {r['encode_speedup_vs_reference']:.2f}x / {r['decode_speedup_vs_reference']:.2f}x "
                f"| {r['encode_time_vs_jpeg']:.1f}x / {r['decode_time_vs_jpeg']:.1f}x | {ent} | {ana} | {e2e} |"
            )
        lines.append("")
    for name, reason in results.get("skipped", {}).items():
        lines.append(f"- not run here: {name}: {reason}")
    if results.get("skipped"):
        lines.append("")
    return "\n".join(lines)
