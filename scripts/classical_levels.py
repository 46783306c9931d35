"""Measure what the classical codecs' quality levels cost, and pick them (imgcomp.classical.formats.LEVELS).

For each codec, every library quality setting of a grid is coded on the validation photos
(data/images/val, as `imgcomp eval` uses them) and on real camera frames (vtest.avi at 640x480;
the committed 192x144 clip where data/ is absent). Level q is then the setting whose mean bpp on
the photos is nearest (in log) to `hyperprior-mse` level 1's (its model card), then each level
one mean hyperprior-mse step (x1.28) above the one before: the same span of rates as that model. `--presets` times the speed presets instead (640x480 frames,
one thread) with their BD-rate against the slowest.

    PYTHONPATH=. python scripts/classical_levels.py [--presets] [--out benchmarks/results/classical]
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import cv2
import numpy as np

from imgcomp.classical.formats import FORMATS, LEVELS, avif_encode, jpegxl_encode, webp_encode
from imgcomp.data.crops import image_paths, read_rgb
from imgcomp.eval.rd import RDPoint, bd_rate
from imgcomp.metrics import psnr

REPO = Path(__file__).resolve().parents[1]
TARGETS = (0.209, 0.299, 0.384, 0.471, 0.571, 0.712)  # hyperprior-mse levels 1..6 on data/images/val (model card)
GRID = {"jpeg": range(5, 96, 5), "webp": range(0, 96, 5), "avif": range(0, 96, 5), "jxl": range(0, 96, 5)}
PRESETS = {
    "avif": ("speed", (6, 8, 10), avif_encode, "speed"),
    "jxl": ("effort", (1, 3, 5, 7), jpegxl_encode, "effort"),
    "webp": ("method", (0, 2, 4, 6), webp_encode, "method"),
}


def camera_frames(count: int = 12) -> tuple[list[np.ndarray], str]:
    from imgcomp.video import read_video

    video = REPO / "data" / "video" / "vtest.avi"
    if not video.exists():
        video = REPO / "test" / "fixtures" / "vtest_100f_192x144.avi"
    frames, _ = read_video(video, max_frames=10 * count)
    picked = frames[:: max(1, len(frames) // count)][:count]
    if video.name == "vtest.avi":
        picked = [cv2.resize(f, (640, 480), interpolation=cv2.INTER_AREA) for f in picked]
    return picked, f"{video.relative_to(REPO)} ({picked[0].shape[1]}x{picked[0].shape[0]}, {len(picked)} frames)"


def measure(fmt, images: list[np.ndarray], setting: int) -> tuple[float, float]:
    """Mean bpp and PSNR of `images` at one library setting."""
    bpp, quality = [], []
    for image in images:
        data = fmt.encode(image, setting)
        bpp.append(8 * len(data) / (image.shape[0] * image.shape[1]))
        quality.append(psnr(image, fmt.decode(data, 3)[..., :3]))
    return float(np.mean(bpp)), float(np.mean(quality))


def pick_levels(sweep: dict[int, float]) -> tuple[int, ...]:
    """Level 1 nearest to hyperprior-mse level 1; then hyperprior-mse's mean step between levels,
    so every codec spans the same rate ratio (a codec that cannot go as low starts higher)."""
    settings = sorted(sweep)
    step = (TARGETS[-1] / TARGETS[0]) ** (1 / (len(TARGETS) - 1))
    chosen = [min(settings, key=lambda s: abs(math.log(sweep[s] / TARGETS[0])))]
    for k in range(1, len(TARGETS)):
        target = sweep[chosen[0]] * step**k
        allowed = [s for s in settings if s > chosen[-1]]
        chosen.append(min(allowed, key=lambda s: abs(math.log(sweep[s] / target))))
    return tuple(chosen)


def levels_report(photos: list[np.ndarray], frames: list[np.ndarray], frames_source: str) -> str:
    lines = [
        "### Classical codecs: quality levels",
        "",
        f"Photos: the {len(photos)} validation photos (data/images/val); frames: {frames_source}. "
        "Level 1: the setting nearest to hyperprior-mse level 1's bpp on the photos; each next level one mean "
        "hyperprior-mse step (x1.28) higher. Target: that rate.",
        "",
        "| codec | level | library setting | target bpp (photos) | hyperprior-mse bpp (photos) | bpp (photos) | PSNR (photos, dB) | bpp (frames) | in formats.LEVELS |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, fmt in FORMATS.items():
        sweep = {s: measure(fmt, photos, s)[0] for s in GRID[name]}
        picked = pick_levels(sweep)
        step = (TARGETS[-1] / TARGETS[0]) ** (1 / (len(TARGETS) - 1))
        for level, setting in enumerate(picked, 1):
            bpp, quality = measure(fmt, photos, setting)
            frame_bpp, _ = measure(fmt, frames, setting)
            same = "yes" if LEVELS[name][level - 1] == setting else f"no ({LEVELS[name][level - 1]})"
            lines.append(
                f"| {name} | {level} | {setting} | {sweep[picked[0]] * step ** (level - 1):.3f} | {TARGETS[level - 1]:.3f} | {bpp:.3f} | {quality:.2f} | {frame_bpp:.3f} | {same} |"
            )
        print(f"{name}: {picked}", flush=True)
    return "\n".join(lines) + "\n"


def presets_report(photos: list[np.ndarray], frames: list[np.ndarray]) -> str:
    from imgcomp.classical.formats import Format

    lines = [
        "### Classical codecs: speed presets (640x480 frames, one thread)",
        "",
        "| codec | preset | encode p50 (ms) | decode p50 (ms) | BD-rate (PSNR) vs the slowest preset, photos |",
        "|---|---|---:|---:|---:|",
    ]
    for name, (label, values, encode, keyword) in PRESETS.items():
        fmt = FORMATS[name]
        curves, rows = {}, {}
        for value in values:
            variant = Format(name, "", lambda im, q, v=value: encode(im, q, **{keyword: v}), fmt.declared_size, fmt.decode, fmt.library)
            curves[value] = [RDPoint(name, s, *measure(variant, photos, s), math.nan) for s in (20, 35, 50, 65, 80)]
            enc, dec = [], []
            for frame in frames:
                start = time.perf_counter()
                data = variant.encode(frame, 50)
                enc.append(time.perf_counter() - start)
                start = time.perf_counter()
                fmt.decode(data, 3)
                dec.append(time.perf_counter() - start)
            rows[value] = (1e3 * float(np.median(enc)), 1e3 * float(np.median(dec)))
        slowest = max(values, key=lambda v: rows[v][0])
        for value in values:
            bd = bd_rate(curves[slowest], curves[value], "psnr")
            bd_text = "n/a" if bd is None else f"{bd:+.1f} %"
            lines.append(f"| {name} | {label} {value} | {rows[value][0]:.1f} | {rows[value][1]:.1f} | {bd_text} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", action="store_true", help="time the speed presets instead")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "classical")
    args = parser.parse_args()
    photos = [read_rgb(p) for p in image_paths(REPO / "data" / "images" / "val")]
    if not photos:
        raise SystemExit("no photos in data/images/val: run `make data`")
    frames, frames_source = camera_frames()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.presets:
        path, text = args.out / "presets.md", presets_report(photos, frames)
    else:
        path, text = args.out / "levels.md", levels_report(photos, frames, frames_source)
    command = "PYTHONPATH=. python scripts/classical_levels.py" + (" --presets" if args.presets else "")
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    path.write_text(f"`{command}` (load average over 1, 5, 15 min when it ended: {load}; {os.cpu_count()} CPUs)\n\n{text}")
    print(path.read_text())


if __name__ == "__main__":
    main()
