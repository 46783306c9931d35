"""Ray-cast renderer: RGB with exact depth, surface normals and semantic labels per pixel.

One primary ray per pixel, cast in bulk with numpy (float32); the nearest hit gives depth, normal,
class and texture coordinates. Shading is Lambertian: ambient plus 1-3 point lights without
shadows, over mip-mapped photo textures, scaled to the scene's exposure and gamma-encoded.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from imgcomp.multitask.scenes.camera import Camera, Intrinsics
from imgcomp.multitask.scenes.geometry import Room
from imgcomp.multitask.scenes.scene import Material, Scene, sample_scene
from imgcomp.multitask.scenes.textures import TexturePool, default_pool

# Every ray leaves the room through a floor, wall or ceiling pixel, so every pixel has one of
# these classes: there is no "unknown" or ignore id.
CLASSES = ("floor", "wall", "ceiling", "box", "cylinder", "sphere")
CLASS_ID = {name: i for i, name in enumerate(CLASSES)}
# Room.FACES order: four walls, floor, ceiling.
_FACE_CLASS = np.array([CLASS_ID["wall"]] * 4 + [CLASS_ID["floor"], CLASS_ID["ceiling"]], dtype=np.uint8)

# Seeds of the fixed splits: training frames count up from TRAIN_FIRST_SEED, test frames from
# TEST_FIRST_SEED; a training run may use at most TEST_FIRST_SEED frames.
TRAIN_FIRST_SEED = 0
TEST_FIRST_SEED = 1_000_000

_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
_F = np.float32


@dataclass(frozen=True, eq=False)
class RenderedFrame:
    """One frame and its labels.

    rgb: uint8 (H, W, 3), gamma-encoded.
    depth: float32 (H, W), metres along the optical axis (camera-frame z), > 0 everywhere.
    normals: float32 (H, W, 3), unit surface normals in the camera frame (x right, y down,
        z forward), facing the camera.
    labels: uint8 (H, W), indices into CLASSES.
    intrinsics: pinhole model; ``intrinsics.backproject(depth)`` gives camera-frame points.
    camera_to_world: float64 (4, 4) pose (world z up, floor at z = 0).
    """

    rgb: np.ndarray
    depth: np.ndarray
    normals: np.ndarray
    labels: np.ndarray
    intrinsics: Intrinsics
    camera_to_world: np.ndarray
    seed: int | None = None


def render_scene(
    seed: int, height: int = 256, width: int = 256, textures: TexturePool | None = None
) -> RenderedFrame:
    """Render the random scene of ``seed``: same seed and texture pool, identical arrays.

    ``textures`` defaults to photos from data/images/train, or the test fixtures without it.
    """
    pool = default_pool() if textures is None else textures
    frame = render_frame(sample_scene(seed, len(pool)), height, width, pool)
    return dataclasses.replace(frame, seed=seed)


def generate_split(
    n: int,
    first_seed: int = TRAIN_FIRST_SEED,
    height: int = 256,
    width: int = 256,
    textures: TexturePool | None = None,
) -> Iterator[RenderedFrame]:
    """Frames of seeds first_seed .. first_seed + n - 1 (test split: first_seed=TEST_FIRST_SEED)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if first_seed < TEST_FIRST_SEED < first_seed + n:
        last = first_seed + n - 1
        raise ValueError(f"seeds {first_seed}..{last} run into the test split at {TEST_FIRST_SEED}")
    pool = default_pool() if textures is None else textures
    for seed in range(first_seed, first_seed + n):
        yield render_scene(seed, height, width, pool)


def benchmark(n: int = 50, height: int = 256, width: int = 256, textures: TexturePool | None = None) -> float:
    """Frames per second of render_scene over seeds 0..n-1 (texture loading and a warm-up not counted)."""
    pool = default_pool() if textures is None else textures
    render_scene(n, height, width, pool)
    start = time.perf_counter()
    for seed in range(n):
        render_scene(seed, height, width, pool)
    return n / (time.perf_counter() - start)


def render_frame(
    scene: Scene, height: int = 256, width: int = 256, textures: TexturePool | None = None
) -> RenderedFrame:
    """Render a given scene (the camera must be inside the room and outside every object)."""
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    pool = default_pool() if textures is None else textures
    camera = scene.camera
    if not scene.room.contains(camera.position):
        raise ValueError("the camera must be inside the room")
    materials = scene.room_materials + tuple(o.material for o in scene.objects)
    if max(m.texture for m in materials) >= len(pool):
        raise ValueError(f"scene uses texture ids beyond the pool's {len(pool)} textures")

    intrinsics = camera.intrinsics(height, width)
    rays = intrinsics.rays(height, width).reshape(-1, 3)
    rotation = camera.rotation().astype(_F)
    dirs = rays @ rotation.T
    origin = np.asarray(camera.position, dtype=np.float64)

    # Nearest hit: the room's exit point unless an object is closer. Objects are only tested
    # against the rays in a pixel rectangle that holds their projected bounding sphere.
    t, face = scene.room.intersect(origin, dirs)
    hit = np.full(t.shape, -1, dtype=np.int16)
    t_image, hit_image = t.reshape(height, width), hit.reshape(height, width)
    dirs_image = dirs.reshape(height, width, 3)
    for i, obj in enumerate(scene.objects):
        window = _screen_window(*obj.shape.bounding_sphere(), camera, intrinsics, height, width)
        if window is None:
            continue
        rows, cols = window
        block = dirs_image[rows, cols]
        ti = obj.shape.intersect(origin, block.reshape(-1, 3)).reshape(block.shape[:2])
        t_block = t_image[rows, cols]
        closer = ti < t_block
        np.copyto(t_block, ti, where=closer)
        hit_image[rows, cols][closer] = i
    points = origin.astype(_F) + t[:, None] * dirs

    # Surface attributes: the room's everywhere, then each object's over its own pixels.
    normals, u, v = Room.surface(points, face)
    material = face.astype(np.int16)
    labels = np.take(_FACE_CLASS, face)
    for i, obj in enumerate(scene.objects):
        on = np.flatnonzero(hit == i)
        if on.size:
            n_obj, u[on], v[on] = obj.shape.surface(np.take(points, on, axis=0))
            _scatter_rows(normals, on, n_obj)
            material[on] = len(scene.room_materials) + i
            labels[on] = CLASS_ID[obj.shape.label]

    normals_cam = normals @ rotation  # world -> camera is the transpose
    facing = _dot(normals_cam, rays)
    away = facing > 0  # only at numerically grazing hits; every visible side faces the camera
    if away.any():
        normals_cam[away] *= -1
        normals[away] *= -1
        facing[away] *= -1

    rgb = _shade(scene, pool, materials, material, points, normals, u, v, t, -facing, rays, intrinsics.fx)
    return RenderedFrame(
        rgb=rgb.reshape(height, width, 3),
        depth=t.reshape(height, width),
        normals=normals_cam.reshape(height, width, 3),
        labels=labels.reshape(height, width),
        intrinsics=intrinsics,
        camera_to_world=camera.camera_to_world(),
    )


def _shade(
    scene: Scene,
    pool: TexturePool,
    materials: tuple[Material, ...],
    material: np.ndarray,
    points: np.ndarray,
    normals: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    depth: np.ndarray,
    facing: np.ndarray,
    rays: np.ndarray,
    fx: float,
) -> np.ndarray:
    """Linear-light Lambertian shading, exposure and gamma: (N, 3) uint8.

    Colours are (N, 4) float32 rows with an unused 4th channel: aligned rows are faster.
    """
    # Texture coordinates (tiles) = rotation / tile * (u, v) + offset, per material.
    mapping = np.array(
        [
            (np.cos(m.rotation) / m.tile, -np.sin(m.rotation) / m.tile, m.offset[0], m.texture,
             np.sin(m.rotation) / m.tile, np.cos(m.rotation) / m.tile, m.offset[1], 1.0 / m.tile)
            for m in materials
        ],
        dtype=_F,
    )  # fmt: skip
    uu, uv, u0, texture, vu, vv, v0, per_metre = np.take(mapping, material, axis=0).T
    tu = uu * u + uv * v + u0
    tv = vu * u + vv * v + v0
    texture = texture.astype(np.int32)

    # Mip level from the pixel's footprint on the surface (metres) over the texel size.
    ray_len = np.sqrt(_dot(rays, rays))
    cos_view = np.maximum(facing / ray_len, _F(0.05))
    footprint = depth * ray_len / (_F(fx) * np.sqrt(cos_view))
    level = np.log2(np.maximum(footprint * per_metre * _F(pool.size), _F(1e-6)))
    level = np.clip(np.rint(level), 0, pool.levels - 1).astype(np.int32)
    albedo = pool.sample(texture, tu, tv, level)

    # albedo = (mean + contrast * (texture - mean)) * tint = offset + gain * texture, per material.
    means = pool.means[[m.texture for m in materials]].astype(np.float64)
    tints = np.array([m.tint for m in materials])
    neutral = np.array([m.neutral for m in materials])
    tints[neutral] *= (means[neutral] @ _LUMA)[:, None] / np.maximum(means[neutral], 1e-4)
    contrast = np.array([m.contrast for m in materials])[:, None]
    gain = np.zeros((len(materials), 4), dtype=_F)
    gain[:, :3] = contrast * tints
    offset = np.zeros_like(gain)
    offset[:, :3] = (1 - contrast) * means * tints
    albedo *= np.take(gain, material, axis=0)
    albedo += np.take(offset, material, axis=0)

    irradiance = np.full_like(albedo, scene.ambient)
    if scene.lights:
        weights = np.empty((len(points), len(scene.lights)), dtype=_F)
        for k, light in enumerate(scene.lights):
            to_light = np.asarray(light.position, dtype=_F) - points
            d2 = _dot(to_light, to_light)
            cos = _dot(normals, to_light) / np.sqrt(d2)
            weights[:, k] = np.maximum(cos, 0) / (d2 + _F(0.25))
        colors = np.zeros((len(scene.lights), 4), dtype=_F)
        colors[:, :3] = [light.color for light in scene.lights]
        irradiance += weights @ colors
    albedo *= irradiance
    linear = albedo

    luminance = float((linear[::7, :3] @ _LUMA).mean())
    linear *= _F(scene.exposure / max(luminance, 1e-6))
    np.clip(linear, 0, 1, out=linear)
    encoded = np.sqrt(linear[:, :3])  # display gamma 2, as textures.GAMMA
    encoded *= _F(255.0)
    encoded += _F(0.5)
    return encoded.astype(np.uint8)


def _screen_window(
    center: tuple[float, float, float],
    radius: float,
    camera: Camera,
    intrinsics: Intrinsics,
    height: int,
    width: int,
) -> tuple[slice, slice] | None:
    """Pixel rows and columns that hold a sphere's projection (conservative); None if out of view."""
    c = camera.rotation().T @ (np.asarray(center) - camera.position)
    near, far = c[2] - radius, c[2] + radius
    if far <= 0:
        return None
    if near <= 1e-3:  # reaches behind the camera: no simple bound
        return slice(0, height), slice(0, width)
    bounds = []
    for axis, focal, principal, size in (
        (1, intrinsics.fy, intrinsics.cy, height),
        (0, intrinsics.fx, intrinsics.cx, width),
    ):
        lo, hi = c[axis] - radius, c[axis] + radius
        # Extremes of x/z over the sphere's bounding box, z in [near, far].
        lo_ratio = lo / near if lo <= 0 else lo / far
        hi_ratio = hi / near if hi >= 0 else hi / far
        first = max(0, math.floor(focal * lo_ratio + principal))
        last = min(size, math.ceil(focal * hi_ratio + principal) + 1)
        if first >= last:
            return None
        bounds.append(slice(first, last))
    return bounds[0], bounds[1]


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot products of (N, 3) arrays."""
    return a[:, 0] * b[:, 0] + a[:, 1] * b[:, 1] + a[:, 2] * b[:, 2]


def _scatter_rows(dst: np.ndarray, index: np.ndarray, rows: np.ndarray) -> None:
    """dst[index] = rows for C-contiguous (N, 3) arrays, through a one-item-per-row view (faster)."""
    item = np.dtype((np.void, dst.itemsize * dst.shape[1]))
    dst.view(item).reshape(-1)[index] = np.ascontiguousarray(rows, dtype=dst.dtype).view(item).reshape(-1)
