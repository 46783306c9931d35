"""Rate–distortion evaluation: our models at every level beside classical codecs, in one run.

For each codec and quality setting: bits per pixel (real bytes), PSNR (RGB, 8-bit) and MS-SSIM per
image, then averaged per setting (the usual way RD curves are drawn). Bjøntegaard delta rate
(pchip interpolation, the `bjontegaard` package) of every codec against JPEG and against our
best model, in PSNR and in MS-SSIM expressed in dB (-10·log10(1 − MS-SSIM)), and of each of our
multi-level models against each classical codec.

Two splits (`SPLITS`): ``heldout``, photos and video frames of packages that training never
read (the one that predicts unseen photos), and ``val``, photos held out by name from the
training sources (same packages, photographers and cameras: it flatters the models).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import bjontegaard
import numpy as np
from tqdm import tqdm

from imgcomp.eval.baselines import CLASSICAL, Baseline
from imgcomp.codec import Codec
from imgcomp.data.crops import image_paths, read_rgb
from imgcomp.defaults import CLASSICAL_MODELS
from imgcomp.metrics import bits_per_pixel, ms_ssim_index, psnr


@dataclass(frozen=True)
class Split:
    images: Path
    out: Path
    label: str


SPLITS = {
    "heldout": Split(
        Path("data/images/heldout"), Path("benchmarks/results/eval-heldout"),
        "held-out sources: packages and a video that training never read",
    ),
    "val": Split(Path("data/images/val"), Path("benchmarks/results/eval"), "same sources as training (photos held out by name)"),
}


@dataclass(frozen=True)
class RDPoint:
    codec: str
    setting: int
    bpp: float
    psnr: float
    ms_ssim: float

    @property
    def ms_ssim_db(self) -> float:
        if math.isnan(self.ms_ssim):
            return math.nan
        return -10.0 * math.log10(max(1.0 - self.ms_ssim, 1e-10))


@dataclass(frozen=True)
class Sweep:
    name: str
    settings: list[int]
    encode: Callable[[np.ndarray, int], bytes]
    decode: Callable[[bytes], np.ndarray]
    identity: str = ""  # what the results depend on besides the images: weights hash, library versions


def classical_sweep(codec: Baseline) -> Sweep:
    import cv2
    import imagecodecs

    versions = f"opencv {cv2.__version__}, imagecodecs {imagecodecs.__version__}"
    return Sweep(codec.name, list(codec.qualities), codec.encode, codec.decode, versions)


def model_sweep(model: str, effort: int = 0) -> Sweep:
    """Every level of `model`; with `effort` > 0 a learned model's encoder refines the latents
    (named "model@effortN" then, so the curve never passes for the one-pass encoder's; the
    classical codecs have no latents and always run as they are)."""
    codec = Codec(model)
    levels = list(range(1, codec.levels + 1))
    identity = f"weights {codec.model_hash}"
    if effort == 0 or model in CLASSICAL_MODELS:
        return Sweep(model, levels, lambda im, q: codec.encode(im, quality=q), codec.decode, identity)
    return Sweep(f"{model}@effort{effort}", levels, lambda im, q: codec.encode(im, quality=q, effort=effort), codec.decode,
                 f"{identity}, effort {effort}")


def sweep_cache_key(sweep: Sweep, images: dict[str, np.ndarray]) -> str:
    """Hash of everything a sweep's rows depend on: codec, settings, identity and image pixels."""
    digest = hashlib.sha256(json.dumps([sweep.name, sweep.settings, sweep.identity]).encode())
    for name, image in sorted(images.items()):
        digest.update(name.encode() + str(image.shape).encode() + hashlib.sha256(image.tobytes()).digest())
    return digest.hexdigest()[:24]


def cached_sweep(sweep: Sweep, images: dict[str, np.ndarray], cache: Path | None) -> tuple[list[RDPoint], list[dict]]:
    """`evaluate_sweep`, reusing the rows of an identical earlier run from `cache` (then stored there)."""
    if cache is None:
        return evaluate_sweep(sweep, images)
    path = cache / f"{sweep_cache_key(sweep, images)}.json"
    if path.exists():
        stored = json.loads(path.read_text())
        return [RDPoint(**p) for p in stored["curve"]], stored["per_image"]
    curve, rows = evaluate_sweep(sweep, images)
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"codec": sweep.name, "identity": sweep.identity, "curve": [p.__dict__ for p in curve], "per_image": rows}))
    return curve, rows


def evaluate_sweep(sweep: Sweep, images: dict[str, np.ndarray]) -> tuple[list[RDPoint], list[dict]]:
    averaged, per_image = [], []
    for setting in tqdm(sweep.settings, desc=sweep.name, leave=False):
        rows = []
        for name, image in images.items():
            data = sweep.encode(image, setting)
            decoded = sweep.decode(data)
            rows.append(
                {
                    "codec": sweep.name, "setting": setting, "image": name,
                    "bpp": bits_per_pixel(len(data), *image.shape[:2]),
                    "psnr": psnr(image, decoded), "ms_ssim": ms_ssim_index(image, decoded),
                }
            )
        per_image.extend(rows)
        averaged.append(
            RDPoint(
                sweep.name, setting,
                float(np.mean([r["bpp"] for r in rows])),
                float(np.mean([r["psnr"] for r in rows])),
                float(np.nanmean([r["ms_ssim"] for r in rows])) if any(np.isfinite(r["ms_ssim"]) for r in rows) else math.nan,
            )
        )
    return averaged, per_image


def bd_rate(anchor: list[RDPoint], test: list[RDPoint], metric: str) -> float | None:
    """Percent rate change of `test` against `anchor` at equal quality; None if curves barely overlap."""
    def curve(points: list[RDPoint]) -> tuple[np.ndarray, np.ndarray]:
        pts = sorted(points, key=lambda p: p.bpp)
        quality = [p.psnr if metric == "psnr" else p.ms_ssim_db for p in pts]
        # keep the monotone part: BD needs quality increasing with rate
        keep, best = [], -math.inf
        for i, q in enumerate(quality):
            if q > best:
                keep.append(i)
                best = q
        return np.array([pts[i].bpp for i in keep]), np.array([quality[i] for i in keep])

    rate_a, dist_a = curve(anchor)
    rate_t, dist_t = curve(test)
    if not (np.isfinite(dist_a).all() and np.isfinite(dist_t).all()):
        return None
    if len(rate_a) < 4 or len(rate_t) < 4:
        return None
    try:
        value = float(
            bjontegaard.bd_rate(rate_a, dist_a, rate_t, dist_t, method="pchip", require_matching_points=False, min_overlap=0.3)
        )
    except (ValueError, AssertionError):
        return None
    return value if math.isfinite(value) else None


def pick_best_model(curves: dict[str, list[RDPoint]], models: list[str], anchor: str) -> str | None:
    """The model with the lowest PSNR BD-rate against the anchor (models without one rank last)."""
    if not models:
        return None

    def key(model: str) -> float:
        value = bd_rate(curves[anchor], curves[model], "psnr") if anchor in curves else None
        return math.inf if value is None else value

    return min(models, key=key)


def bd_rates_vs_classical(curves: dict[str, list[RDPoint]], models: list[str], classical_names: list[str]) -> dict:
    """{model: {classical codec: {"psnr": %, "ms_ssim": %}}} for our models with several levels."""
    return {
        model: {c: {"psnr": bd_rate(curves[c], curves[model], "psnr"), "ms_ssim": bd_rate(curves[c], curves[model], "ms_ssim")}
                for c in classical_names}
        for model in models
        if len(curves[model]) > 1
    }


def run_eval(
    image_dir: Path,
    out_dir: Path,
    models: list[str],
    classical: list[str] = ("jpeg", "webp", "avif", "avif420", "jpegxl"),
    max_images: int | None = None,
    label: str = "",
    cache: Path | None = None,
    effort: int = 0,
) -> dict:
    """Evaluate `models` and `classical` on the images of `image_dir`; write rd.json, rd.md and
    rd.png to `out_dir`. With `cache`, a sweep already measured on the same pixels with the same
    weights or library versions is read back instead of measured again (`sweep_cache_key`)."""
    paths = image_paths(image_dir)[:max_images]
    if not paths:
        raise FileNotFoundError(f"no images in {image_dir} (run `make data`)")
    images = {p.stem: read_rgb(p) for p in paths}
    sweeps = [model_sweep(m, effort) for m in models] + [classical_sweep(CLASSICAL[c]) for c in classical]
    curves: dict[str, list[RDPoint]] = {}
    per_image: list[dict] = []
    for sweep in tqdm(sweeps, desc="codecs"):
        curves[sweep.name], rows = cached_sweep(sweep, images, cache)
        per_image.extend(rows)

    jpeg = CLASSICAL["jpeg"].name
    # the best learned model is the second anchor; the classical codecs (imgcomp.classical) are measured against it
    learned = [sweep.name for sweep, model in zip(sweeps, models) if model not in CLASSICAL_MODELS]
    best_model = pick_best_model(curves, learned, jpeg)
    bd = {
        name: {
            "vs_jpeg_psnr": bd_rate(curves[jpeg], curve, "psnr") if jpeg in curves else None,
            "vs_jpeg_msssim": bd_rate(curves[jpeg], curve, "ms_ssim") if jpeg in curves else None,
            "vs_best_model_psnr": bd_rate(curves[best_model], curve, "psnr") if best_model else None,
        }
        for name, curve in curves.items()
    }
    vs_classical = bd_rates_vs_classical(curves, [sweep.name for sweep in sweeps[: len(models)]], [CLASSICAL[c].name for c in classical])
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {
        "split": label,
        "images": sorted(images),
        "image_sizes": {name: list(image.shape[:2]) for name, image in sorted(images.items())},
        "image_dir": str(image_dir),
        "effort": effort,
        "best_model": best_model,
        "curves": {k: [p.__dict__ for p in v] for k, v in curves.items()},
        "bd_rate_percent": bd,
        "bd_rate_vs_classical_percent": vs_classical,
        "per_image": per_image,
    }
    (out_dir / "rd.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / "rd.md").write_text(markdown_report(curves, bd, best_model, len(images), image_dir, label, vs_classical))
    plot_rd(curves, out_dir / "rd.png", f"{len(images)} images of {image_dir}" + (f": {label}" if label else ""))
    return result


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f} %"


def markdown_report(
    curves: dict[str, list[RDPoint]], bd: dict, best_model: str | None, n_images: int, image_dir: Path,
    label: str = "", vs_classical: dict | None = None,
) -> str:
    lines = [
        f"### Rate–distortion on {n_images} images of `{image_dir}`" + (f" ({label})" if label else ""),
        "",
        "BD-rate: rate change at equal quality (negative = fewer bits). MS-SSIM BD-rate uses -10·log10(1-MS-SSIM).",
        "n/a: fewer than 4 points (a fixed-rate model) or curves that overlap too little.",
        "",
        f"| codec | BD-rate vs JPEG (PSNR) | BD-rate vs JPEG (MS-SSIM) | BD-rate vs {best_model} (PSNR) |",
        "|---|---:|---:|---:|",
    ]
    for name, row in bd.items():
        lines.append(f"| {name} | {_fmt(row['vs_jpeg_psnr'])} | {_fmt(row['vs_jpeg_msssim'])} | {_fmt(row['vs_best_model_psnr'])} |")
    if vs_classical:
        anchors = list(next(iter(vs_classical.values())))
        lines += [
            "", "BD-rate of each of our models against each classical codec, PSNR / MS-SSIM:", "",
            "| model | " + " | ".join(anchors) + " |", "|---|" + "---:|" * len(anchors),
        ]
        for model, row in vs_classical.items():
            cells = [f"{_fmt(row[a]['psnr'])} / {_fmt(row[a]['ms_ssim'])}" for a in anchors]
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines += ["", "| codec | setting | bpp | PSNR (dB) | MS-SSIM |", "|---|---:|---:|---:|---:|"]
    for name, points in curves.items():
        for p in points:
            lines.append(f"| {name} | {p.setting} | {p.bpp:.3f} | {p.psnr:.2f} | {p.ms_ssim:.4f} |")
    return "\n".join(lines) + "\n"


def plot_rd(curves: dict[str, list[RDPoint]], path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    colours = plt.get_cmap("tab20").colors  # 20 distinct colours: up to 15 curves here
    for i, (name, points) in enumerate(curves.items()):
        pts = sorted(points, key=lambda p: p.bpp)
        style = "--." if any(name == c.name for c in CLASSICAL.values()) else ":s" if name in CLASSICAL_MODELS else ("-o" if len(pts) > 1 else "x")
        colour = colours[(2 * i) % 20 + (2 * i) // 20 % 2]
        axes[0].plot([p.bpp for p in pts], [p.psnr for p in pts], style, label=name, markersize=4, color=colour)
        axes[1].plot([p.bpp for p in pts], [p.ms_ssim_db for p in pts], style, label=name, markersize=4, color=colour)
    axes[0].set_ylabel("PSNR (dB)")
    axes[1].set_ylabel("MS-SSIM (dB)")
    for ax in axes:
        ax.set_xlabel("bits per pixel")
        ax.set_xlim(0, 2.0)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
