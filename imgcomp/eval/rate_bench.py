"""Closed-loop rate control on real frames: `imgcomp bench-rate`.

Every frame of the clip is really encoded by the encoder node's own `EncoderCore` at the level
(and, for P-frames, the rate-distortion multiplier) `RateController` picks, and every 1 s window
of the resulting stream is compared with the target. `keyframe_interval` 0 sends key frames only;
N > 0 is the temporal mode (a key frame every N frames, latent P-frames in between), written to
`rate_kf<N>.json/md` beside the intra `rate.json/md`. This is the measurement behind the README's
rate-control figures (the unit tests simulate longer intra streams from a table of real sizes,
and run the temporal mode in closed loop on a short committed clip).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from imgcomp.codec import Codec
from imgcomp.stream.encoder_core import EncoderCore
from imgcomp.stream.fields import ImageFields


def window_errors(sizes: list[int], fps: float, target_kbps: float, settle_s: float = 1.0) -> list[float]:
    """Relative error of every full 1 s window that ends after `settle_s` of stream."""
    n = max(1, round(fps))
    first_end = max(n - 1, round(settle_s * fps) + n - 1)
    return [sum(sizes[end - n + 1 : end + 1]) * 8e-3 / target_kbps - 1.0 for end in range(first_end, len(sizes))]


def result_name(keyframe_interval: int) -> str:
    return "rate" if keyframe_interval == 0 else f"rate_kf{keyframe_interval}"


def run_rate_bench(
    frames: list[np.ndarray], model: str, targets_kbps: list[float], fps: float, out_dir: Path, device: str = "cpu",
    keyframe_interval: int = 0,
) -> dict:
    codec = Codec(model, device=device)
    h, w = frames[0].shape[:2]
    results: dict = {"model": model, "fps": fps, "frames": len(frames), "size": [h, w],
                     "keyframe_interval": keyframe_interval, "targets": []}
    for target in targets_kbps:
        core = EncoderCore(lambda _name: codec, model=model, target_kbps=target, fps_hint=fps,
                           keyframe_interval=keyframe_interval)
        sizes, levels, keys = [], [], 0
        for i, frame in enumerate(tqdm(frames, desc=f"{target:g} kbit/s", leave=False)):
            out = core.process(ImageFields(frame.tobytes(), h, w, "rgb8", 3 * w), now=i / fps)
            if not hasattr(out, "data"):
                raise RuntimeError(f"frame {i} was rejected: {out}")
            sizes.append(len(out.data))
            levels.append(out.quality)
            keys += out.frame_type == 0
        errors = window_errors(sizes, fps, target)
        diagnostics = core.diagnostics()
        results["targets"].append(
            {
                "target_kbps": target,
                "mean_kbps": float(np.mean(sizes) * 8e-3 * fps),
                "worst_window_error": float(max(errors, key=abs)) if errors else float("nan"),
                "windows_within_10pct": float(np.mean([abs(e) <= 0.10 for e in errors])) if errors else float("nan"),
                "window_errors": [round(e, 4) for e in errors],
                "levels_used": sorted(set(levels)),
                "keyframes": keys,
                "key_reasons": diagnostics["key_reasons"],
                "range_status": diagnostics.get("rate_range", "off"),
            }
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    name = result_name(keyframe_interval)
    (out_dir / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / f"{name}.md").write_text(rate_markdown(results))
    return results


def rate_markdown(results: dict) -> str:
    h, w = results["size"]
    interval = results.get("keyframe_interval", 0)
    mode = f"temporal mode, a key frame every {interval} frames" if interval else "key frames only"
    lines = [
        f"### Rate control, closed loop: {results['model']}, {results['frames']} frames of {w}x{h} at "
        f"{results['fps']:g} fps, {mode}",
        "",
        "| target (kbit/s) | mean (kbit/s) | worst 1 s window | windows within ±10 % | levels used | key frames | range |",
        "|---:|---:|---:|---:|---|---:|---|",
    ]
    for r in results["targets"]:
        lines.append(
            f"| {r['target_kbps']:g} | {r['mean_kbps']:.1f} | {100 * r['worst_window_error']:+.1f} % "
            f"| {100 * r['windows_within_10pct']:.0f} % | {', '.join(map(str, r['levels_used']))} "
            f"| {r.get('keyframes', results['frames'])} | {r['range_status']} |"
        )
    if interval:
        lines += ["", "Key frames by reason: " + "; ".join(f"{r['target_kbps']:g}: {r['key_reasons']}" for r in results["targets"])]
    return "\n".join(lines) + "\n"
