"""Random training crops from a folder of images held in memory."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from imgcomp.data.sources import check_training_names

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".bmp", ".webp")


def image_paths(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def load_images(folder: Path) -> list[np.ndarray]:
    paths = image_paths(folder)
    if not paths:
        raise FileNotFoundError(f"no images in {folder} (run `make data` first)")
    return [read_rgb(p) for p in paths]


def load_training_images(folder: Path) -> list[np.ndarray]:
    """`load_images` for a training folder: refuses images of the held-out sources."""
    check_training_names([p.stem for p in image_paths(folder)], f"training folder {folder}")
    return load_images(folder)


class RandomCropSampler:
    """Uniform random crops (with flips) from images sampled proportionally to their area."""

    def __init__(self, images: list[np.ndarray], crop: int, seed: int = 0) -> None:
        self.images = [im for im in images if min(im.shape[:2]) >= crop]
        if not self.images:
            raise ValueError(f"no image is at least {crop}x{crop}")
        areas = np.array([im.shape[0] * im.shape[1] for im in self.images], dtype=np.float64)
        self.weights = areas / areas.sum()
        self.crop = crop
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int) -> np.ndarray:
        """uint8 array of shape (size, 3, crop, crop)."""
        out = np.empty((size, 3, self.crop, self.crop), dtype=np.uint8)
        for i, index in enumerate(self.rng.choice(len(self.images), size=size, p=self.weights)):
            image = self.images[index]
            top = self.rng.integers(0, image.shape[0] - self.crop + 1)
            left = self.rng.integers(0, image.shape[1] - self.crop + 1)
            patch = image[top : top + self.crop, left : left + self.crop]
            if self.rng.random() < 0.5:
                patch = patch[:, ::-1]
            out[i] = patch.transpose(2, 0, 1)
        return out
