"""`imgcomp compare`: the study's comparison table, measured on our validation photos.

For each input size (the study's 504x504 and 1008x1008 crops, and 640x480) every validation
photo large enough is downscaled (never upscaled) until its short side fits the crop, then
centre-cropped. Every model encodes each crop through `Codec` (real payloads in the container)
and decodes it. Columns follow the study: model size, bits per pixel (raw features as the study
sent them, and as coded here), compression ratio, PSNR, SSIM, MS-SSIM, encode and decode ms,
and T200, the seconds to encode and decode 200 frames end to end (on a 2-core CPU it is
extrapolated from the measured frames and labelled so). A picture grid shows the same crops
reconstructed by every model.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from imgcomp.codec import Codec
from imgcomp.data.crops import image_paths, read_rgb
from imgcomp.metrics import ms_ssim_index, psnr, ssim_index
from imgcomp.models.registry import WEIGHTS_DIR, model_entry

SIZES = {"504x504": (504, 504), "1008x1008": (1008, 1008), "640x480": (640, 480)}  # (width, height)


def comparison_crops(image_dir: Path, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Centre crops of `size` (w, h) from every image that covers it without upscaling."""
    width, height = size
    crops = {}
    for path in image_paths(image_dir):
        image = read_rgb(path)
        h, w = image.shape[:2]
        scale = max(width / w, height / h)
        if scale > 1.0:
            continue
        resized = cv2.resize(image, (max(width, round(w * scale)), max(height, round(h * scale))), interpolation=cv2.INTER_AREA)
        top, left = (resized.shape[0] - height) // 2, (resized.shape[1] - width) // 2
        crops[path.stem] = np.ascontiguousarray(resized[top : top + height, left : left + width])
    return crops


@dataclass
class Row:
    model: str
    family: str
    size_kb: float
    parameters: int
    raw_bpp: float | None  # None: an entropy-coded model has no raw feature form
    coded_bpp: float
    compression_ratio: float
    psnr: float
    ssim: float
    ms_ssim: float
    encode_ms: float
    decode_ms: float
    t200_s: float
    frames: int


def measure(codec: Codec, crops: dict[str, np.ndarray], warmup: int = 1) -> tuple[Row, dict[str, np.ndarray]]:
    entry = model_entry(codec.model_name)
    for image in list(crops.values())[:warmup]:
        codec.decode(codec.encode(image))
    raw, coded, p, s, m, enc, dec = [], [], [], [], [], [], []
    reconstructions = {}
    for name, image in crops.items():
        h, w = image.shape[:2]
        start = time.perf_counter()
        payload = codec.encode(image)
        middle = time.perf_counter()
        out = codec.decode(payload)
        end = time.perf_counter()
        enc.append(1e3 * (middle - start))
        dec.append(1e3 * (end - middle))
        coded.append(8 * len(payload) / (h * w))
        if hasattr(codec.net, "raw_bits"):
            raw.append(codec.net.raw_bits(h, w) / (h * w))
        p.append(psnr(image, out))
        s.append(ssim_index(image, out))
        m.append(ms_ssim_index(image, out))
        reconstructions[name] = out
    coded_bpp = float(np.mean(coded))
    row = Row(
        model=codec.model_name,
        family=entry["family"],
        size_kb=(WEIGHTS_DIR / entry["file"]).stat().st_size / 1024,
        parameters=int(sum(t.numel() for t in codec.net.parameters())),
        raw_bpp=float(np.mean(raw)) if raw else None,
        coded_bpp=coded_bpp,
        compression_ratio=24.0 / coded_bpp,
        psnr=float(np.mean(p)),
        ssim=float(np.mean(s)),
        ms_ssim=float(np.mean(m)),
        encode_ms=float(np.median(enc)),
        decode_ms=float(np.median(dec)),
        t200_s=200 * float(np.mean(enc) + np.mean(dec)) / 1e3,
        frames=len(crops),
    )
    return row, reconstructions


def run_compare(
    models: list[str], image_dir: Path, out_dir: Path, sizes: list[str] = list(SIZES), grid_crops: int = 3
) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict = {"image_dir": str(image_dir), "sizes": {}}
    codecs = {m: Codec(m) for m in models}
    for size_name in sizes:
        crops = comparison_crops(image_dir, SIZES[size_name])
        if not crops:
            continue
        rows, recon = [], {}
        for model in tqdm(models, desc=f"compare @ {size_name}", leave=False):
            row, recon[model] = measure(codecs[model], crops)
            rows.append(asdict(row))
        result["sizes"][size_name] = {"images": sorted(crops), "rows": rows}
        if size_name == sizes[0]:
            write_grid(crops, recon, models, out_dir / "grid.jpg", grid_crops)
    (out_dir / "compare.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / "compare.md").write_text(compare_markdown(result))
    return result


def _label(image: np.ndarray, text: str) -> np.ndarray:
    out = image.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 18), (0, 0, 0), -1)
    cv2.putText(out, text, (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def write_grid(crops: dict[str, np.ndarray], recon: dict[str, dict[str, np.ndarray]], models: list[str], path: Path, rows: int, tile: int = 240) -> None:
    """Rows: crops; columns: original, then each model. 1:1 centre tiles, so detail is visible."""
    lines = []
    for name in sorted(crops)[:rows]:
        image = crops[name]
        top, left = (image.shape[0] - tile) // 2, (image.shape[1] - tile) // 2
        cut = lambda a: a[top : top + tile, left : left + tile]  # noqa: E731
        cells = [_label(cut(image), f"original {name}")] + [_label(cut(recon[m][name]), m) for m in models]
        lines.append(np.concatenate(cells, axis=1))
    grid = np.concatenate(lines, axis=0)
    cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])


def compare_markdown(result: dict) -> str:
    lines = []
    for size_name, block in result["sizes"].items():
        lines += [
            f"**{size_name}** ({len(block['images'])} validation crops; T200 extrapolated from them, this CPU)",
            "",
            "| model | family | params | size (KB) | raw bpp | coded bpp | coded / raw | ratio | PSNR (dB) | SSIM | MS-SSIM "
            "| encode ms | decode ms | T200 (s) |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in block["rows"]:
            raw = f"{r['raw_bpp']:.3f}" if r["raw_bpp"] is not None else "–"
            saving = f"{r['coded_bpp'] / r['raw_bpp']:.2f}" if r["raw_bpp"] else "–"
            lines.append(
                f"| {r['model']} | {r['family']} | {r['parameters'] / 1e3:.0f}k | {r['size_kb']:.0f} | {raw} | {r['coded_bpp']:.3f} "
                f"| {saving} | {r['compression_ratio']:.1f} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['ms_ssim']:.4f} "
                f"| {r['encode_ms']:.0f} | {r['decode_ms']:.0f} | {r['t200_s']:.1f} |"
            )
        lines.append("")
    return "\n".join(lines)


def update_fixed_rate_cards(result: dict) -> list[Path]:
    """Write each compared fixed-rate model's measured rows into its model card."""
    import torch

    from imgcomp.models.registry import arch_from, load_manifest, write_model_card
    from imgcomp.models.fixed_rate import FIXED_RATE_FAMILIES

    written = []
    manifest = load_manifest()
    for name, entry in manifest.items():
        if entry["family"] not in FIXED_RATE_FAMILIES:
            continue
        rows = []
        for size_name, block in result["sizes"].items():
            for r in block["rows"]:
                if r["model"] == name:
                    rows.append(
                        f"| {size_name} | {r['frames']} | {r['raw_bpp']:.3f} | {r['coded_bpp']:.3f} | {r['psnr']:.2f} "
                        f"| {r['ssim']:.4f} | {r['ms_ssim']:.4f} |"
                    )
        if not rows:
            continue
        text = "\n".join(
            [
                "Centre crops of the validation photos (`imgcomp compare --cards`), real payloads:",
                "",
                "| size | crops | raw bpp | coded bpp | PSNR (dB) | SSIM | MS-SSIM |",
                "|---|---:|---:|---:|---:|---:|---:|",
                *rows,
            ]
        )
        payload = torch.load(WEIGHTS_DIR / entry["file"], map_location="cpu", weights_only=True)
        written.append(write_model_card(WEIGHTS_DIR, name, entry, arch_from(payload["arch"]), text))
    return written
