"""Closed-loop rate control on real frames: `imgcomp bench-rate`.

Every frame of the clip is really encoded at the level `RateController` picks, and every 1 s
window of the resulting stream is compared with the target. This is the measurement behind the
README's rate-control figures (the unit tests simulate longer streams from a table of real sizes).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from imgcomp.codec import Codec
from imgcomp.stream.rate_control import RateController


def window_errors(sizes: list[int], fps: float, target_kbps: float, settle_s: float = 1.0) -> list[float]:
    """Relative error of every full 1 s window that ends after `settle_s` of stream."""
    n = max(1, round(fps))
    first_end = max(n - 1, round(settle_s * fps) + n - 1)
    return [sum(sizes[end - n + 1 : end + 1]) * 8e-3 / target_kbps - 1.0 for end in range(first_end, len(sizes))]


def run_rate_bench(
    frames: list[np.ndarray], model: str, targets_kbps: list[float], fps: float, out_dir: Path, device: str = "cpu"
) -> dict:
    codec = Codec(model, device=device)
    results: dict = {"model": model, "fps": fps, "frames": len(frames), "size": list(frames[0].shape[:2]), "targets": []}
    for target in targets_kbps:
        rc = RateController(codec.levels, target, fps_hint=fps)
        sizes, levels = [], []
        for i, frame in enumerate(tqdm(frames, desc=f"{target:g} kbit/s", leave=False)):
            stamp = i / fps
            level = rc.next_quality(stamp)
            size = len(codec.encode(frame, quality=level))
            rc.update(level, size, stamp)
            sizes.append(size)
            levels.append(level)
        errors = window_errors(sizes, fps, target)
        results["targets"].append(
            {
                "target_kbps": target,
                "mean_kbps": float(np.mean(sizes) * 8e-3 * fps),
                "worst_window_error": float(max(errors, key=abs)) if errors else float("nan"),
                "windows_within_10pct": float(np.mean([abs(e) <= 0.10 for e in errors])) if errors else float("nan"),
                "levels_used": sorted(set(levels)),
                "range_status": rc.range_status(),
            }
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "rate.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / "rate.md").write_text(rate_markdown(results))
    return results


def rate_markdown(results: dict) -> str:
    h, w = results["size"]
    lines = [
        f"### Rate control, closed loop: {results['model']}, {results['frames']} frames of {w}x{h} at {results['fps']:g} fps",
        "",
        "| target (kbit/s) | mean (kbit/s) | worst 1 s window | windows within ±10 % | levels used | range |",
        "|---:|---:|---:|---:|---|---|",
    ]
    for r in results["targets"]:
        lines.append(
            f"| {r['target_kbps']:g} | {r['mean_kbps']:.1f} | {100 * r['worst_window_error']:+.1f} % "
            f"| {100 * r['windows_within_10pct']:.0f} % | {', '.join(map(str, r['levels_used']))} | {r['range_status']} |"
        )
    return "\n".join(lines) + "\n"
