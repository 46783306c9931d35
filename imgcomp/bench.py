"""Per-frame latency benchmark: our models beside OpenCV JPEG and CompressAI's reference
`bmshj2018-factorized` architecture (N=128, M=192), measured in the same run on the same frames.

The reference is timed with its architecture only (randomly initialised: no weights can be
downloaded here); encode time does not depend on the weight values, and its entropy coding
runs through the same CompressAI rANS coder.
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

from imgcomp.baselines import JPEG
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


def _time_ms(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return 1e3 * (time.perf_counter() - start)


def _summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50": float(np.percentile(samples, 50)),
        "p95": float(np.percentile(samples, 95)),
        "p99": float(np.percentile(samples, 99)),
        "fps": float(1e3 / np.mean(samples)),
    }


def _bench_pair(encode: Callable[[np.ndarray], bytes], decode: Callable[[bytes], object], frames: list[np.ndarray], warmup: int) -> dict:
    for frame in frames[:warmup]:
        decode(encode(frame))
    enc, dec, sizes = [], [], []
    for frame in frames:
        holder: dict[str, bytes] = {}
        enc.append(_time_ms(lambda: holder.__setitem__("b", encode(frame))))
        sizes.append(len(holder["b"]))
        dec.append(_time_ms(lambda: decode(holder["b"])))
    h, w = frames[0].shape[:2]
    return {"encode_ms": _summary(enc), "decode_ms": _summary(dec), "mean_bpp": float(8 * np.mean(sizes) / (h * w))}


def _reference_codec() -> tuple[Callable[[np.ndarray], bytes], Callable[[bytes], object]]:
    net = bmshj2018_factorized(quality=4, pretrained=False).eval()  # qualities 1-5 use N=128, M=192
    net.update(force=True)
    shapes: dict[str, tuple[int, int]] = {}

    @torch.no_grad()
    def encode(frame: np.ndarray) -> bytes:
        x = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255
        x, _ = pad_to_multiple(x, 16)
        out = net.compress(x)
        shapes["shape"] = out["shape"]
        return out["strings"][0][0]

    @torch.no_grad()
    def decode(data: bytes) -> object:
        return net.decompress([[data]], shapes["shape"])["x_hat"]

    return encode, decode


def run_bench(
    models: list[str],
    out_dir: Path,
    resolutions: list[str] = ("640x480",),
    frames: int = 30,
    warmup: int = 3,
    video: Path | None = Path("data/video/vtest.avi"),
    quality: int | None = None,
    device: str = "cpu",
) -> dict:
    fallback = Path(__file__).resolve().parent.parent / "test" / "fixtures" / "images" / "vtest_frame0.png"
    results: dict = {
        "machine": {"cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(), "device": device},
        "frames": frames,
        "resolutions": {},
    }
    ref_encode, ref_decode = _reference_codec()
    for res in resolutions:
        clip = _frames(video, fallback, RESOLUTIONS[res], frames + warmup)
        rows = {"OpenCV JPEG q90": _bench_pair(lambda f: JPEG.encode(f, 90), JPEG.decode, clip, warmup)}
        rows["CompressAI bmshj2018-factorized (N=128, M=192)"] = _bench_pair(ref_encode, ref_decode, clip, warmup)
        for model in tqdm(models, desc=f"models @ {res}", leave=False):
            codec = Codec(model, device=device)
            q = quality or codec.quality
            rows[f"{model} q{q}"] = _bench_pair(lambda f: codec.encode(f, quality=q), codec.decode, clip, warmup)
        reference = rows["CompressAI bmshj2018-factorized (N=128, M=192)"]["encode_ms"]["p50"]
        for row in rows.values():
            row["encode_speedup_vs_reference"] = reference / row["encode_ms"]["p50"]
        results["resolutions"][res] = rows
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / "bench.md").write_text(bench_markdown(results))
    return results


def bench_markdown(results: dict) -> str:
    m = results["machine"]
    lines = [f"### Latency per frame ({m['device']}, {m['torch_threads']} torch threads, {results['frames']} frames)", ""]
    for res, rows in results["resolutions"].items():
        lines += [
            f"**{res}**",
            "",
            "| codec | encode p50 / p95 (ms) | decode p50 / p95 (ms) | encode fps | bpp | encode speed vs reference |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, r in rows.items():
            e, d = r["encode_ms"], r["decode_ms"]
            lines.append(
                f"| {name} | {e['p50']:.1f} / {e['p95']:.1f} | {d['p50']:.1f} / {d['p95']:.1f} | {e['fps']:.1f} | "
                f"{r['mean_bpp']:.3f} | {r['encode_speedup_vs_reference']:.2f}x |"
            )
        lines.append("")
    return "\n".join(lines)
