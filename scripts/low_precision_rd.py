"""Rate-distortion cost of the low-precision backends against their float graphs, on the
validation photos (`imgcomp eval`'s, data/images/val), with real bytes and real decodes.

For each low-precision backend: the float backend alone, then the low-precision analysis with the
float synthesis, the float analysis with the low-precision synthesis, and both; BD-rates (PSNR and
MS-SSIM, `imgcomp.eval.rd.bd_rate`) against the float backend; and what the low-precision
synthesis does to pixels: its PSNR against the float synthesis of the same payloads and the
largest absolute difference. One thread each.

    python scripts/low_precision_rd.py --pairs onnxruntime:onnxruntime-int8 openvino:openvino-bf16 \
        --out benchmarks/results/bench/cpu
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from imgcomp.codec import Codec
from imgcomp.data.crops import image_paths, read_rgb
from imgcomp.eval.rd import Sweep, bd_rate, evaluate_sweep


def pixel_change(float_codec: Codec, low_codec: Codec, images: dict[str, np.ndarray], levels: int) -> list[dict]:
    rows = []
    for level in range(1, levels + 1):
        psnrs, worst = [], 0
        for image in images.values():
            payload = float_codec.encode(image, quality=level)
            a = float_codec.decode(payload).astype(np.int16)
            b = low_codec.decode(payload).astype(np.int16)
            mse = float(np.mean((a - b) ** 2))
            psnrs.append(10 * np.log10(255**2 / mse) if mse else float("inf"))
            worst = max(worst, int(np.abs(a - b).max()))
        rows.append({"level": level, "mean_psnr_vs_float_db": float(np.mean(psnrs)), "max_abs_diff": worst})
    return rows


def compare(base: str, low: str, images: dict[str, np.ndarray]) -> dict:
    f = Codec("hyperprior-mse", backend=base, threads=1)
    q = Codec("hyperprior-mse", backend=low, threads=1)
    levels = list(range(1, f.levels + 1))
    result: dict = {"float": base, "low": low, "variants": {}}
    curves = {}
    for name, enc, dec in (("float", f, f), ("analysis", q, f), ("synthesis", f, q), ("both", q, q)):
        sweep = Sweep(name, levels, lambda im, lv, e=enc: e.encode(im, quality=lv), dec.decode)
        curves[name], _ = evaluate_sweep(sweep, images)
    for name, points in curves.items():
        result["variants"][name] = {
            "points": [p.__dict__ for p in points],
            "bd_rate_psnr_percent": bd_rate(curves["float"], points, "psnr"),
            "bd_rate_msssim_percent": bd_rate(curves["float"], points, "ms_ssim"),
        }
    result["synthesis_pixels"] = pixel_change(f, q, images, f.levels)
    return result


def markdown(results: list[dict], images: list[str]) -> str:
    lines = [
        f"### Low-precision backends against their float graphs ({len(images)} validation photos, `hyperprior-mse`, 6 levels)",
        "",
        "BD-rate: rate change at equal quality against the float backend (negative = fewer bits).",
        "",
        "| backend | low-precision part | BD-rate (PSNR) | BD-rate (MS-SSIM) |",
        "|---|---|---:|---:|",
    ]
    for r in results:
        for name in ("analysis", "synthesis", "both"):
            v = r["variants"][name]
            fmt = lambda x: "n/a" if x is None else f"{x:+.2f} %"  # noqa: E731
            lines.append(f"| {r['low']} (vs {r['float']}) | {name} | {fmt(v['bd_rate_psnr_percent'])} | {fmt(v['bd_rate_msssim_percent'])} |")
    lines += ["", "Synthesis pixels against the float synthesis of the same payloads (mean PSNR between the two decodes; largest |difference| in 8-bit levels):", "",
              "| backend | " + " | ".join(f"q{p['level']}" for p in results[0]["synthesis_pixels"]) + " |",
              "|---|" + "---:|" * len(results[0]["synthesis_pixels"])]
    for r in results:
        lines.append(f"| {r['low']} | " + " | ".join(f"{p['mean_psnr_vs_float_db']:.1f} dB, max {p['max_abs_diff']}" for p in r["synthesis_pixels"]) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=Path("data/images/val"))
    parser.add_argument("--pairs", nargs="+", default=["onnxruntime:onnxruntime-int8", "openvino:openvino-bf16"],
                        help="float:low backend pairs")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bench/cpu"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    images = {p.stem: read_rgb(p) for p in image_paths(args.images)}
    results = [compare(*pair.split(":"), images) for pair in args.pairs]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "low_precision_rd.json").write_text(json.dumps({"images": sorted(images), "results": results}, indent=1) + "\n")
    (args.out / "low_precision_rd.md").write_text(markdown(results, sorted(images)))
    print((args.out / "low_precision_rd.md").read_text())


if __name__ == "__main__":
    main()
