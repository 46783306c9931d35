"""Texture pool: square crops of real photos as linear-light mip pyramids, sampled in bulk."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from imgcomp.data.crops import image_paths, read_rgb

# Display gamma of photos and rendered frames: 2 (close to sRGB's ~2.2) makes decoding one multiply.
GAMMA = 2.0
_F = np.float32
_REPO = Path(__file__).resolve().parents[3]


def texture_folders() -> tuple[Path, ...]:
    """Where textures may be, in order: $IMGCOMP_DATA/images/train, ./data/images/train, the
    checkout's data/images/train and test fixtures. An installed package (colcon, pip) has no
    checkout next to it, so the data folder is found from the environment or the working folder."""
    roots = [Path(os.environ["IMGCOMP_DATA"])] if os.environ.get("IMGCOMP_DATA") else []
    roots += [Path.cwd() / "data", _REPO / "data"]
    fixtures = [Path.cwd() / "test" / "fixtures" / "images", _REPO / "test" / "fixtures" / "images"]
    return tuple(dict.fromkeys([root / "images" / "train" for root in roots] + fixtures))
# prepare.py stores each photo at several downscales as <stem>_s<k>.png; one per photo is enough.
_SCALE_SUFFIX = re.compile(r"_s\d+$")


class TexturePool:
    """Square photo textures, each a mip pyramid, stored as packed 8-bit RGBA in one flat array.

    Mip levels are averaged in linear light and stored gamma-encoded (``GAMMA``). Texture
    coordinates are in tiles (one tile = one texture side) and repeat mirrored, so tiles join
    without seams. Lookups are bilinear at a per-sample mip level and return linear RGB.
    """

    def __init__(self, images: Sequence[np.ndarray], size: int = 256) -> None:
        if not images:
            raise ValueError("a texture pool needs at least one image")
        if size < 2 or size & (size - 1):
            raise ValueError(f"texture size must be a power of two >= 2, got {size}")
        self.size = size
        self.levels = size.bit_length()  # sides size, size/2, ..., 1
        sides = [size >> k for k in range(self.levels)]
        self.level_offset = np.cumsum([0] + [s * s for s in sides[:-1]]).astype(np.int32)
        self.level_side = np.array(sides, dtype=np.int32)
        per_texture = sum(s * s for s in sides)
        if len(images) * per_texture >= 2**31:
            raise ValueError("texture pool too large for int32 texel indices")
        # One uint32 per texel (RGB + padding byte): single-word gathers are the fast kind.
        rgba = np.zeros((len(images) * per_texture, 4), dtype=np.uint8)
        self.means = np.empty((len(images), 3), dtype=np.float32)  # linear RGB
        for i, image in enumerate(images):
            level = _linear(_square(image, size))
            self.means[i] = level.reshape(-1, 3).mean(axis=0)
            base = i * per_texture
            for k, side in enumerate(sides):
                start = base + int(self.level_offset[k])
                rgba[start : start + side * side, :3] = _encode(level).reshape(-1, 3)
                if side > 1:
                    level = cv2.resize(level, (side // 2, side // 2), interpolation=cv2.INTER_AREA)
        self.texels = rgba.view(np.uint32).reshape(-1)
        self.texture_base = np.arange(len(images), dtype=np.int32) * per_texture

    @classmethod
    def from_folder(cls, path: str | Path, size: int = 256, max_images: int | None = 64) -> TexturePool:
        """Centre square crops of up to ``max_images`` photos, spread evenly over the sorted folder.

        Of several downscales of one photo (``<stem>_s<k>``) only the largest is used.
        """
        largest: dict[str, tuple[int, Path]] = {}
        for p in image_paths(Path(path)):
            stem = _SCALE_SUFFIX.sub("", p.stem)
            area = _png_area(p)
            if stem not in largest or area > largest[stem][0]:
                largest[stem] = (area, p)
        paths = [largest[k][1] for k in sorted(largest)]
        if not paths:
            raise FileNotFoundError(f"no images in {path}")
        if max_images is not None and len(paths) > max_images:
            paths = [paths[int(i)] for i in np.linspace(0, len(paths) - 1, max_images).round()]
        return cls([read_rgb(p) for p in paths], size=size)

    def __len__(self) -> int:
        return len(self.texture_base)

    def sample(self, texture: np.ndarray, u: np.ndarray, v: np.ndarray, level: np.ndarray) -> np.ndarray:
        """Bilinear lookups -> (N, 4) float32 linear RGB (4th column unused).

        texture, level: (N,) int32 texture ids and mip levels; u, v: (N,) float32 in tiles.
        Filtering happens on the stored gamma-encoded values, as with non-sRGB GPU textures.
        """
        n = len(texture)
        side = np.take(self.level_side, level)
        period = 2 * side - 1
        base = np.take(self.texture_base, texture) + np.take(self.level_offset, level)
        xy = np.stack([u, v]) * side.astype(np.float32) - _F(0.5)
        corner = np.floor(xy)
        weight = xy - corner
        first = corner.astype(np.int32)
        texel = np.stack([first, first + 1])  # (x0/x1 and y0/y1, u/v axis, N)
        texel &= period  # mirrored repeat: index mod 2*side, folded back over the upper half
        np.minimum(texel, period - texel, out=texel)
        rows = texel[:, 1] * side + base
        index = rows[:, None, :] + texel[None, :, 0, :]  # (row, column, N)
        c = np.take(self.texels, index).view(np.uint8).reshape(2, 2, n, 4).astype(np.float32)
        wx, wy = weight[0][:, None], weight[1][:, None]
        top = c[0, 0] + wx * (c[0, 1] - c[0, 0])
        bottom = c[1, 0] + wx * (c[1, 1] - c[1, 0])
        bottom -= top
        bottom *= wy
        top += bottom
        return _decode(top)


def default_texture_folder() -> Path:
    """data/images/train when prepared (``make data``), else the committed test fixtures."""
    folders = texture_folders()
    for folder in folders:
        if folder.is_dir() and image_paths(folder):
            return folder
    raise FileNotFoundError(
        f"no texture images in any of {[str(f) for f in folders]}: run `imgcomp data` or set IMGCOMP_DATA"
    )


@functools.lru_cache(maxsize=1)
def default_pool() -> TexturePool:
    return TexturePool.from_folder(default_texture_folder())


def _square(image: np.ndarray, size: int) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"textures must be uint8 HxWx3 RGB, got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    crop = image[top : top + s, left : left + s]
    interpolation = cv2.INTER_AREA if s >= size else cv2.INTER_CUBIC
    return cv2.resize(crop, (size, size), interpolation=interpolation)


def _linear(image: np.ndarray) -> np.ndarray:
    return ((image.astype(np.float32) / 255.0) ** GAMMA).astype(np.float32)


def _encode(linear: np.ndarray) -> np.ndarray:
    return np.round(255.0 * np.clip(linear, 0.0, 1.0) ** (1.0 / GAMMA)).astype(np.uint8)


def _decode(encoded: np.ndarray) -> np.ndarray:
    """Gamma-encoded 0..255 floats to linear 0..1, in place (GAMMA = 2: one multiply)."""
    encoded *= encoded
    encoded *= _F(1.0 / 255.0**2)
    return encoded


def _png_area(path: Path) -> int:
    """Pixel count from a PNG header without decoding (0 for other formats: any is fine then)."""
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        return 0
    return int.from_bytes(head[16:20], "big") * int.from_bytes(head[20:24], "big")
