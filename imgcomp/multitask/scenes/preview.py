"""Contact sheets of rendered frames: RGB | depth | labels | normals, one row per frame.

    python -m imgcomp.multitask.scenes.preview --out /tmp/scenes_sheet.png --seeds 0 1 2 3
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import cv2
import numpy as np

from imgcomp.multitask.scenes.render import CLASSES, RenderedFrame, render_scene

# floor, wall, ceiling, box, cylinder, sphere
PALETTE = np.array(
    [[140, 90, 40], [170, 170, 170], [240, 240, 200], [40, 110, 220], [40, 190, 80], [220, 50, 50]],
    dtype=np.uint8,
)
assert len(PALETTE) == len(CLASSES)


def colorize_depth(depth: np.ndarray, max_depth: float | None = None) -> np.ndarray:
    """Turbo colour map of depth (near: blue, far: red), uint8 RGB."""
    top = float(depth.max()) if max_depth is None else max_depth
    scaled = np.clip(depth / max(top, 1e-6) * 255.0, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(scaled, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)


def colorize_labels(labels: np.ndarray) -> np.ndarray:
    return PALETTE[labels]


def colorize_normals(normals: np.ndarray) -> np.ndarray:
    """Camera-frame normals as (n + 1) / 2 in RGB (x right, y down, z forward)."""
    return np.clip((normals + 1.0) * 127.5, 0, 255).astype(np.uint8)


def contact_sheet(frames: Sequence[RenderedFrame], gap: int = 4) -> np.ndarray:
    rows = []
    for f in frames:
        panels = [f.rgb, colorize_depth(f.depth), colorize_labels(f.labels), colorize_normals(f.normals)]
        spacer = np.full((f.rgb.shape[0], gap, 3), 255, dtype=np.uint8)
        rows.append(np.concatenate([x for p in panels for x in (p, spacer)][:-1], axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, gap), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.concatenate(rows, axis=0)[:-gap]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=256)
    args = parser.parse_args(argv)
    sheet = contact_sheet([render_scene(s, args.height, args.width) for s in args.seeds])
    if not cv2.imwrite(args.out, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise SystemExit(f"cannot write {args.out}")


if __name__ == "__main__":
    main()
