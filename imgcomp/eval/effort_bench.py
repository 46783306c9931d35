"""`imgcomp bench-effort`: what the encoder's effort mode buys, per second of encode time.

For every model, effort and quality level, each image (centre-cropped to `crop`) is encoded with
`Codec.encode(..., effort=N)`, timed, decoded with the plain decoder and measured (real bytes,
PSNR, MS-SSIM), exactly as `imgcomp eval` measures. Per model and effort the per-level means
form an RD curve; its Bjøntegaard delta rate against effort 0's curve is the saving at equal
PSNR (models trained on MSE) or equal MS-SSIM (the MS-SSIM model), the other metric beside it.

Every measured row is appended to `points.jsonl` as it is made, so an interrupted run continues
where it stopped (`--resume`); `effort.json` and `effort.md` are written at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

from typing import TYPE_CHECKING, Any, Callable

from imgcomp.defaults import MAX_EFFORT

if TYPE_CHECKING:  # numpy, torch and the codec load when the command runs, not with the parser
    import numpy as np


DEFAULT_MODELS = ("hyperprior-mse", "hyperprior-msssim", "factorized-mse")


def centre_crop(image: np.ndarray, height: int, width: int) -> np.ndarray:
    import numpy as np

    h, w = image.shape[:2]
    top, left = max(0, (h - height) // 2), max(0, (w - width) // 2)
    return np.ascontiguousarray(image[top : top + height, left : left + width])


def _key(row: dict) -> tuple:
    return row["model"], row["effort"], row["level"], row["image"]


def _load_points(path: Path) -> dict[tuple, dict]:
    if not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {_key(r): r for r in rows}


def measure(
    models: list[str], images: dict[str, np.ndarray], efforts: list[int], levels: list[int] | None,
    points_path: Path, log: Callable[[str], Any] = print,
) -> list[dict]:
    """Encode, decode and measure every (model, effort, level, image) not in `points_path` yet."""
    from imgcomp.codec import Codec
    from imgcomp.metrics import bits_per_pixel, ms_ssim_index, psnr

    done = _load_points(points_path)
    points_path.parent.mkdir(parents=True, exist_ok=True)
    for model in models:
        codec = Codec(model)
        for effort in efforts:
            for level in levels or range(1, codec.levels + 1):
                for name, image in images.items():
                    key = (model, effort, level, name)
                    if key in done:
                        continue
                    started = time.perf_counter()
                    payload = codec.encode(image, quality=level, effort=effort)
                    seconds = time.perf_counter() - started
                    decoded = codec.decode(payload)
                    row = {
                        "model": model, "effort": effort, "level": level, "image": name,
                        "height": image.shape[0], "width": image.shape[1], "bytes": len(payload),
                        "bpp": bits_per_pixel(len(payload), *image.shape[:2]),
                        "psnr": psnr(image, decoded), "ms_ssim": ms_ssim_index(image, decoded),
                        "encode_s": seconds, "load": os.getloadavg()[0],
                    }
                    with points_path.open("a") as f:
                        f.write(json.dumps(row) + "\n")
                    done[key] = row
                    log(f"{model} effort {effort} q{level} {name}: {row['bpp']:.3f} bpp {row['psnr']:.2f} dB "
                        f"MS-SSIM {row['ms_ssim']:.4f} encode {seconds:.1f} s")
    return [done[k] for k in sorted(done)]


def primary_metric(codec_distortion: str) -> str:
    return "ms_ssim" if codec_distortion == "ms-ssim" else "psnr"


def summarise(rows: list[dict], distortions: dict[str, str]) -> dict:
    """Curves, BD-rates against effort 0 and encode times, per model and effort."""
    import numpy as np

    from imgcomp.eval.rd import RDPoint, bd_rate
    from imgcomp.models.refine import EFFORTS

    summary: dict = {}
    for model in sorted({r["model"] for r in rows}):
        mine = [r for r in rows if r["model"] == model]
        images = sorted({r["image"] for r in mine})
        curves: dict[int, list[RDPoint]] = {}
        times: dict[int, float] = {}
        for effort in sorted({r["effort"] for r in mine}):
            at = [r for r in mine if r["effort"] == effort]
            levels = sorted({r["level"] for r in at})
            # only levels measured on every image, so all efforts average the same set
            levels = [lv for lv in levels if len({r["image"] for r in at if r["level"] == lv}) == len(images)]
            curves[effort] = [
                RDPoint(f"{model}@{effort}", lv, *(
                    float(np.mean([r[k] for r in at if r["level"] == lv])) for k in ("bpp", "psnr", "ms_ssim")
                ))
                for lv in levels
            ]
            times[effort] = float(np.mean([r["encode_s"] for r in at if r["level"] in levels]))
        base = curves.get(0)
        entries = []
        for effort, curve in curves.items():
            bd_psnr = bd_rate(base, curve, "psnr") if base else None
            bd_msssim = bd_rate(base, curve, "ms_ssim") if base else None
            primary = bd_msssim if primary_metric(distortions.get(model, "mse")) == "ms_ssim" else bd_psnr
            extra = times[effort] - times.get(0, math.nan)
            entries.append({
                "effort": effort,
                "steps": EFFORTS[effort].steps if effort else 0,
                "rounding": EFFORTS[effort].rounding if effort else "",
                "encode_s_per_image": times[effort],
                "encode_ratio_vs_effort0": times[effort] / times[0] if 0 in times and times[0] > 0 else None,
                "bd_rate_vs_effort0_psnr": bd_psnr,
                "bd_rate_vs_effort0_msssim": bd_msssim,
                "bd_rate_vs_effort0_primary": primary,
                "percent_gained_per_extra_second": (-primary / extra) if (primary is not None and effort and extra > 0) else None,
                "curve": [p.__dict__ for p in curve],
            })
        loads = [r["load"] for r in mine if "load" in r]
        summary[model] = {
            "distortion": distortions.get(model, "mse"), "images": images, "efforts": entries,
            "sizes": sorted({f"{r['width']}x{r['height']}" for r in mine}),
            "load_range": [min(loads), max(loads)] if loads else None,
        }
    return summary


def _fmt(value: float | None, spec: str = "+.1f", unit: str = " %") -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:{spec}}{unit}"


def markdown(summary: dict, meta: dict) -> str:
    efforts = "; ".join(f"{k}: {v['steps']} steps ({v['sga_steps']} SGA + {v['ste_steps']} STE)" for k, v in meta["efforts"].items())
    lines = [
        f"### Effort mode: BD-rate gained per second of encode ({meta['split']})",
        "",
        f"Images of `{meta['image_dir']}`, centre-cropped; every level of every model; real bytes, decoded by the "
        f"unchanged decoder. Efforts {efforts}. BD-rate: rate change at equal quality against the same model at "
        "effort 0 (negative = fewer bits); the primary metric is PSNR for the MSE models and MS-SSIM (dB) for the "
        "MS-SSIM model. Encode seconds: wall time per image on this machine while other jobs shared its cores "
        "(load averages below): compare times within one model's rows.",
        "",
        "| model | images | effort | refinement steps | encode s / image | x effort 0 | BD-rate (PSNR) | BD-rate (MS-SSIM) | % bits saved per extra encode second |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for model, entry in summary.items():
        for e in entry["efforts"]:
            lines.append(
                f"| {model} | {len(entry['images'])} | {e['effort']} | {e['rounding'] or '-'} | {e['encode_s_per_image']:.2f} | "
                f"{_fmt(e['encode_ratio_vs_effort0'], '.0f', 'x')} | {_fmt(e['bd_rate_vs_effort0_psnr'])} | "
                f"{_fmt(e['bd_rate_vs_effort0_msssim'])} | {_fmt(e['percent_gained_per_extra_second'], '.2f', '')} |"
            )
    lines += ["", "Images and the machine's load average (1 min) while each model's rows were measured:", ""]
    for model, entry in summary.items():
        load = entry["load_range"]
        lines.append(f"- {model}: {', '.join(entry['images'])} ({', '.join(entry['sizes'])})"
                     + (f"; load {load[0]:.1f}-{load[1]:.1f} on 2 cores" if load else ""))
    lines += ["", "Runs that measured the rows (`points.jsonl`, `runs.jsonl`):", ""]
    for run in meta["runs"]:
        lines.append(f"- `{run['command']}` ({run['threads']} torch thread(s), load average {run['load_start']:.1f} "
                     f"at the start, {run['load_end']:.1f} at the end; images: {', '.join(run['images'])})")
    lines += ["", "| model | effort | level | bpp | PSNR (dB) | MS-SSIM |", "|---|---:|---:|---:|---:|---:|"]
    for model, entry in summary.items():
        for e in entry["efforts"]:
            for p in e["curve"]:
                lines.append(f"| {model} | {e['effort']} | {p['setting']} | {p['bpp']:.4f} | {p['psnr']:.2f} | {p['ms_ssim']:.4f} |")
    return "\n".join(lines) + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    p.add_argument("--images", type=Path, default=Path("data/images/val"))
    p.add_argument("--split", default="validation split, same sources as training",
                   help="what the images are, for the report (say whether they share sources with training)")
    p.add_argument("--max-images", type=int, default=5)
    p.add_argument("--image-names", nargs="+", help="these images of --images (file stems) instead of the first --max-images")
    p.add_argument("--crop", default="512x384", help="WIDTHxHEIGHT centre crop (smaller images stay as they are)")
    p.add_argument("--efforts", nargs="+", type=int, default=list(range(MAX_EFFORT + 1)))
    p.add_argument("--levels", nargs="*", type=int, help="quality levels (default: all)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/effort"))
    p.add_argument("--resume", action="store_true", help="keep the rows already in OUT/points.jsonl")
    p.add_argument("--report-only", action="store_true",
                   help="measure nothing: write effort.md/json from the rows in OUT/points.jsonl (runs in OUT/runs.jsonl)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (0: torch's default; 1 is faster on a machine other jobs share)")


def _command() -> str:
    return "python -m imgcomp " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["bench-effort"] else "python -m imgcomp bench-effort"


def run_from_args(args: argparse.Namespace) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from imgcomp.defaults import check_effort
    from imgcomp.models.refine import EFFORTS
    from imgcomp.models.registry import model_entry

    for effort in args.efforts:
        check_effort(effort)
    points, runs = args.out / "points.jsonl", args.out / "runs.jsonl"
    if not args.report_only:
        if not args.resume:
            for path in (points, runs):
                path.unlink(missing_ok=True)
        images = _load_images(args)
        run = {"command": _command(), "models": args.models, "images": sorted(images), "crop": args.crop,
               "threads": torch.get_num_threads(), "load_start": os.getloadavg()[0], "started": time.time()}
        measure(args.models, images, sorted(set(args.efforts)), args.levels, points, log=lambda line: print(line, flush=True))
        run.update(load_end=os.getloadavg()[0], finished=time.time())
        args.out.mkdir(parents=True, exist_ok=True)
        with runs.open("a") as f:
            f.write(json.dumps(run) + "\n")
    rows = [r for r in _load_points(points).values() if r["model"] in args.models]
    if not rows:
        raise FileNotFoundError(f"no measured rows for {', '.join(args.models)} in {points}")
    models = sorted({r["model"] for r in rows})
    summary = summarise(rows, {m: model_entry(m).get("distortion", "mse") for m in models})
    meta = {
        "command": _command(), "split": args.split, "image_dir": str(args.images),
        "runs": [json.loads(line) for line in runs.read_text().splitlines() if line.strip()] if runs.exists() else [],
        "efforts": {str(k): {**v.__dict__, "steps": v.steps} for k, v in EFFORTS.items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "effort.json").write_text(json.dumps({"meta": meta, "models": summary}, indent=2) + "\n")
    (args.out / "effort.md").write_text(markdown(summary, meta))
    print((args.out / "effort.md").read_text())
    return 0


def _load_images(args: argparse.Namespace) -> dict[str, np.ndarray]:
    from imgcomp.data.crops import image_paths, read_rgb

    width, height = (int(v) for v in args.crop.lower().split("x"))
    paths = image_paths(args.images)
    if args.image_names:
        missing = sorted(set(args.image_names) - {p.stem for p in paths})
        if missing:
            raise FileNotFoundError(f"no image named {', '.join(missing)} in {args.images}")
        paths = [p for p in paths if p.stem in set(args.image_names)]
    else:
        paths = paths[: args.max_images]
    if not paths:
        raise FileNotFoundError(f"no images in {args.images} (run `make data`)")
    return {p.stem: centre_crop(read_rgb(p), height, width) for p in paths}
