"""`imgcomp multitask eval`: the features-only head beside the decoded- and original-image baselines.

    imgcomp multitask eval [--quality 3] [--out benchmarks/results/multitask]

One run over the pack's fixed test split (seeds from imgcomp.multitask.scenes.TEST_FIRST_SEED):

* accuracy of each shipped head at `quality` (depth AbsRel, delta < 1.25, mIoU, normals mean
  angle and % < 11.25 deg), and the latent head's gap to the decoded-image baseline;
* the same for latent vs decoded at every quality level the codec has;
* host compute per frame from the real payload bytes: entropy decoding (+ synthesis for the
  decoded baseline) + head, p50/p95 over `timing_frames` frames, one torch thread;
* a picture grid: RGB | depth | segmentation | normals, truth above the latent head's prediction.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from imgcomp.codec import Codec
from imgcomp.multitask.model import INPUTS, PAYLOAD_INPUTS, MultiTaskHead
from imgcomp.multitask.objectives import METRIC_NAMES, MetricAccumulator, relative_gap
from imgcomp.multitask.pack import DEFAULT_PACK_DIR, PackSpec, Split, load_split
from imgcomp.multitask.train import batch_tensors
from imgcomp.multitask.weights import HEADS_DIR, available_heads, load_head
from imgcomp.multitask.scenes.preview import colorize_depth, colorize_labels, colorize_normals

METRIC_LABELS = {
    "abs_rel": "depth AbsRel ↓",
    "delta1": "depth δ<1.25 ↑",
    "miou": "seg mIoU ↑",
    "normal_mean_deg": "normals mean ° ↓",
    "normal_11_25": "normals <11.25° ↑",
}
TOLERANCE = 0.10  # the features-only head may be at most 10 % (relative) worse than decoded


@dataclass
class MultiTaskReport:
    quality: int
    frames: int
    rows: dict[str, dict[str, float]] = field(default_factory=dict)  # head input -> metrics
    by_quality: dict[int, dict[str, dict[str, float]]] = field(default_factory=dict)
    timing_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    camera_timing_ms: dict[str, dict[str, float]] = field(default_factory=dict)  # 640x480 frames
    heads: dict[str, str] = field(default_factory=dict)  # input -> head name

    def gaps(self) -> dict[str, float]:
        """Latent head vs decoded baseline, relative (positive = worse), per metric."""
        return {m: relative_gap(self.rows["latent"][m], self.rows["decoded"][m], m) for m in METRIC_NAMES}

    def meets_bar(self) -> bool:
        return all(g <= TOLERANCE for g in self.gaps().values())

    def markdown(self) -> str:
        lines = [
            f"Test split: {self.frames} rendered frames (256×256), codec quality {self.quality}.",
            "",
            "| head input | " + " | ".join(METRIC_LABELS[m] for m in METRIC_NAMES) + " | host ms/frame (p50) |",
            "|---|" + "---:|" * (len(METRIC_NAMES) + 1),
        ]
        for name, metrics in self.rows.items():
            t = self.timing_ms.get(name)
            cells = [_fmt(m, metrics[m]) for m in METRIC_NAMES] + [f"{t['p50']:.1f}" if t else "–"]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        if "latent" in self.rows and "decoded" in self.rows:
            gaps = self.gaps()
            lines.append("| latent vs decoded | " + " | ".join(f"{100 * gaps[m]:+.1f} %" for m in METRIC_NAMES) + " | "
                         + (f"{self.timing_ms['latent']['p50'] - self.timing_ms['decoded']['p50']:+.1f} |" if self.timing_ms else "– |"))
            lines += ["", f"Gap: positive is worse than the decoded-image baseline; bar ≤ +{100 * TOLERANCE:.0f} % on every metric: "
                      + ("**met**" if self.meets_bar() else "**not met**") + "."]
        if self.timing_ms:
            lines += ["", "Host compute per frame from the payload bytes to the three predictions at the source size "
                      "(one torch thread, ms; decode = entropy decoding only for the latent head, entropy decoding "
                      "+ synthesis for the decoded-image head):", "",
                      "| frames | head input | decode p50 | head p50 | total p50 | total p95 |", "|---|---|---:|---:|---:|---:|"]
            for label, timing in (("256×256 test", self.timing_ms), ("640×480 rendered", self.camera_timing_ms)):
                for name, t in timing.items():
                    lines.append(f"| {label} | {name} | {t['decode_p50']:.1f} | {t['head_p50']:.1f} | {t['p50']:.1f} | {t['p95']:.1f} |")
                if {"latent", "decoded"} <= set(timing):
                    saved = timing["decoded"]["p50"] - timing["latent"]["p50"]
                    lines.append(f"| {label} | saved by skipping decoding | | | {saved:.1f} ({100 * saved / timing['decoded']['p50']:.0f} %) | |")
        if self.by_quality:
            lines += ["", "Latent head vs decoded-image head at every quality level:", "",
                      "| quality | input | " + " | ".join(METRIC_LABELS[m] for m in METRIC_NAMES) + " |",
                      "|---:|---|" + "---:|" * len(METRIC_NAMES)]
            for q, rows in self.by_quality.items():
                for name, metrics in rows.items():
                    lines.append(f"| {q} | {name} | " + " | ".join(_fmt(m, metrics[m]) for m in METRIC_NAMES) + " |")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "quality": self.quality, "frames": self.frames, "rows": self.rows, "heads": self.heads,
            "by_quality": {str(q): v for q, v in self.by_quality.items()}, "timing_ms": self.timing_ms,
            "camera_timing_ms": self.camera_timing_ms,
            "latent_vs_decoded": self.gaps() if {"latent", "decoded"} <= set(self.rows) else None,
            "meets_bar": self.meets_bar() if {"latent", "decoded"} <= set(self.rows) else None,
        }


def _fmt(metric: str, value: float) -> str:
    if metric in ("delta1", "miou", "normal_11_25"):
        return f"{100 * value:.1f} %"
    return f"{value:.3f}" if metric == "abs_rel" else f"{value:.1f}"


@torch.no_grad()
def evaluate_head(head: MultiTaskHead, split: Split, level: int, batch: int = 8) -> dict[str, float]:
    acc = MetricAccumulator(head.config.num_classes)
    index = np.arange(len(split))
    for start in range(0, len(index), batch):
        x, depth, labels, normals = batch_tensors(split, index[start:start + batch], head.config.input, level)
        out = head.predict(x, *depth.shape[-2:])
        acc.add(out["depth"], out["seg"], out["normals"], depth, labels, normals)
    return acc.result()


@torch.no_grad()
def time_paths(heads: dict[str, MultiTaskHead], payloads: list[bytes], codec: Codec) -> dict[str, dict[str, float]]:
    """Payload bytes -> predictions at the source size, per head input that a payload can feed.
    The first payload is a warm-up and not counted."""
    from imgcomp.bitstream import unpack
    from imgcomp.multitask.predictor import image_tensor

    out: dict[str, dict[str, float]] = {}
    for name in PAYLOAD_INPUTS:
        if name not in heads:
            continue
        decode_ms, head_ms = [], []
        for i, payload in enumerate(payloads):
            header = unpack(payload).header
            t0 = time.perf_counter()
            if name == "latent":
                x = codec.decode_latent(payload)
            else:
                x = image_tensor(codec.decode(payload), torch.device("cpu"))
            t1 = time.perf_counter()
            pred = heads[name].predict(x, header.height, header.width)
            pred["seg"].argmax(1)
            t2 = time.perf_counter()
            if i:
                decode_ms.append(1e3 * (t1 - t0))
                head_ms.append(1e3 * (t2 - t1))
        total = [a + b for a, b in zip(decode_ms, head_ms)]
        out[name] = {
            "decode_p50": float(np.percentile(decode_ms, 50)), "head_p50": float(np.percentile(head_ms, 50)),
            "p50": float(np.percentile(total, 50)), "p95": float(np.percentile(total, 95)), "frames": len(total),
        }
    return out


def camera_payloads(codec: Codec, quality: int, frames: int, height: int = 480, width: int = 640) -> list[bytes]:
    """Test-split scenes rendered at a camera resolution and encoded (for timing only)."""
    from imgcomp.multitask.scenes import TEST_FIRST_SEED, render_scene

    return [codec.encode(render_scene(TEST_FIRST_SEED + i, height, width).rgb, quality=quality)
            for i in range(frames + 1)]


def picture_grid(head: MultiTaskHead, split: Split, level: int, frames: int = 3) -> np.ndarray:
    """Per frame (the first `frames` test frames) two rows: truth (RGB | depth | seg | normals)
    above the prediction."""
    rows = []
    for i in range(min(frames, len(split))):
        x, depth, labels, normals = batch_tensors(split, np.array([i]), head.config.input, level)
        with torch.no_grad():
            out = head.predict(x, *depth.shape[-2:])
        top = float(depth.max())
        rgb = np.asarray(split.decoded[i, level] if head.config.input == "decoded" else split.rgb[i])
        truth = [np.asarray(split.rgb[i]), colorize_depth(depth[0].numpy(), top), colorize_labels(labels[0].numpy()),
                 colorize_normals(normals[0].permute(1, 2, 0).numpy())]
        pred = [rgb if head.config.input != "latent" else _latent_preview(np.asarray(split.rgb[i])),
                colorize_depth(out["depth"][0, 0].numpy(), top),
                colorize_labels(out["seg"][0].argmax(0).numpy().astype(np.uint8)),
                colorize_normals(out["normals"][0].permute(1, 2, 0).numpy())]
        for panels in (truth, pred):
            rows.append(np.concatenate([np.pad(p, ((2, 2), (2, 2), (0, 0)), constant_values=255) for p in panels], axis=1))
    return np.concatenate(rows, axis=0)


def _latent_preview(rgb: np.ndarray) -> np.ndarray:
    """Grey panel in the prediction row's RGB slot: the latent head never sees pixels."""
    panel = np.full_like(rgb, 235)
    cv2.putText(panel, "latent only", (10, rgb.shape[0] // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (60, 60, 60), 2)
    return panel


def run_multitask_eval(
    quality: int = 3,
    out_dir: Path = Path("benchmarks/results/multitask"),
    pack: Path | None = None,
    heads_dir: Path = HEADS_DIR,
    timing_frames: int = 50,
    sweep: bool = True,
    camera_frames: int = 20,
) -> MultiTaskReport:
    torch.set_num_threads(1)
    names = available_heads(heads_dir)
    if not names:
        raise FileNotFoundError(f"no multi-task heads in {heads_dir}")
    loaded = {}
    codec_name = None
    for name in names:
        head, entry = load_head(name, heads_dir)
        loaded[entry["input"]] = (name, head, entry)
        codec_name = entry["codec"]
    folder = Path(pack) if pack else PackSpec(model=codec_name).folder(DEFAULT_PACK_DIR)
    split = load_split(folder / "test")
    if split.meta["model"] != codec_name:
        raise ValueError(f"{folder} was coded with {split.meta['model']}, the heads read {codec_name}")
    level = split.level_index(quality)
    report = MultiTaskReport(quality=quality, frames=len(split))
    order = [k for k in INPUTS if k in loaded]
    for key in tqdm(order, desc="heads"):
        name, head, _ = loaded[key]
        report.heads[key] = name
        report.rows[key] = evaluate_head(head, split, level)
    if sweep and {"latent", "decoded"} <= set(loaded):
        for q in tqdm(range(1, split.meta["levels"] + 1), desc="quality sweep"):
            report.by_quality[q] = {k: evaluate_head(loaded[k][1], split, split.level_index(q)) for k in ("latent", "decoded")}
    codec = Codec(codec_name)
    heads = {k: v[1] for k, v in loaded.items()}
    payloads = [split.payload(i % len(split), quality) for i in range(timing_frames + 1)]
    report.timing_ms = time_paths(heads, payloads, codec)
    if camera_frames:
        report.camera_timing_ms = time_paths(heads, camera_payloads(codec, quality, camera_frames), codec)

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "multitask.json").write_text(json.dumps(report.to_json(), indent=1) + "\n")
    (out_dir / "multitask.md").write_text("# Multi-task perception from the features\n\n" + report.markdown() + "\n")
    grid_head = loaded["latent"][1] if "latent" in loaded else loaded[order[0]][1]
    grid = picture_grid(grid_head, split, level)
    cv2.imwrite(str(out_dir / "grid.jpg"), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return report


__all__ = ["MultiTaskReport", "evaluate_head", "picture_grid", "run_multitask_eval", "time_paths"]
