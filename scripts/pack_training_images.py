"""Copy data/images/{train,val} to .pack/images as lossless WebP: the same pixels in about two
thirds of the bytes, so that the training photos fit what the GPU tool carries (64 MiB)."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np


def pack(source: Path, target: Path) -> int:
    total = 0
    for split in ("train", "val"):
        (target / split).mkdir(parents=True, exist_ok=True)
        for path in sorted((source / split).glob("*.png")):
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            out = target / split / f"{path.stem}.webp"
            cv2.imwrite(str(out), image, [cv2.IMWRITE_WEBP_QUALITY, 101])  # > 100: lossless
            if not np.array_equal(cv2.imread(str(out), cv2.IMREAD_COLOR), image):
                raise RuntimeError(f"{out} is not lossless")
            total += out.stat().st_size
    return total


if __name__ == "__main__":
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("data/images")
    target = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(".pack/images")
    print(f"{pack(source, target) / 2**20:.1f} MiB in {target}")
