"""Write imgcomp/weights/calibration.npz: the frames that calibrate the INT8 graphs.

Crops of photos and video frames from the training split (`data/images/train`, made by
`imgcomp data`), never the validation photos. Deterministic: the same data gives the same file.

    python scripts/make_calibration_set.py [--train data/images/train] [--count 16] [--size 256]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from imgcomp.data.crops import image_paths, read_rgb
from imgcomp.inference.quantize import CALIBRATION_FILE


def calibration_crops(train: Path, count: int, size: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """`count` crops (count x size x size x 3, uint8), one per image, from images at least `size`
    a side, and the names of those images."""
    rng = np.random.default_rng(seed)
    paths = image_paths(train)
    crops, names = [], []
    for index in rng.permutation(len(paths)):
        image = read_rgb(paths[index])
        h, w = image.shape[:2]
        if min(h, w) < size:
            continue
        top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        crops.append(image[top : top + size, left : left + size])
        names.append(paths[index].stem)
        if len(crops) == count:
            break
    if len(crops) < count:
        raise SystemExit(f"only {len(crops)} images in {train} are at least {size} px a side")
    return np.stack(crops), names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, default=Path("data/images/train"))
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out", type=Path, default=CALIBRATION_FILE)
    args = parser.parse_args()
    crops, names = calibration_crops(args.train, args.count, args.size)
    np.savez_compressed(args.out, frames=crops, sources=np.array(names))
    print(f"wrote {args.out}: {crops.shape[0]} crops of {args.size}x{args.size} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
