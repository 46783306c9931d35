"""Scene description and the random indoor-scene sampler.

``sample_scene(seed, n_textures)`` draws everything from generators seeded by ``seed`` alone, so a
seed fixes the scene whatever the global RNG state or call order. Geometry, camera and lights use
one stream and materials another: the same seed gives the same room, furniture and view with any
texture pool (only texture choices depend on the pool's size) and at any image size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from imgcomp.multitask.scenes.camera import Camera
from imgcomp.multitask.scenes.geometry import Box, Cylinder, Room, Shape, Sphere, footprint, footprint_extent

CAMERA_HEIGHT = (0.3, 2.0)  # metres above the floor
CAMERA_PITCH = (-30.0, 15.0)  # degrees
CAMERA_ROLL = 5.0  # |roll| <= this, degrees
CAMERA_HFOV = (55.0, 90.0)  # degrees
CAMERA_CLEARANCE = 0.3  # metres between the camera and any surface
ROOM_SIZE = ((3.0, 8.0), (3.0, 8.0), (2.4, 3.5))  # width, depth, height ranges in metres
OBJECT_COUNT = (2, 8)
GAP = 0.03  # metres between neighbouring objects' footprint circles


@dataclass(frozen=True)
class Material:
    """Photo texture on a surface.

    ``tile`` is the side of one texture tile in metres; ``offset`` shifts the texture (in tiles)
    and ``rotation`` (radians) turns it on the surface; ``contrast`` scales the texture's
    deviation from its mean colour (1 = photo as is) and ``tint`` multiplies linear RGB;
    ``neutral`` first turns the texture's mean colour grey (painted walls, ceilings).
    """

    texture: int
    tile: float
    offset: tuple[float, float] = (0.0, 0.0)
    rotation: float = 0.0
    contrast: float = 1.0
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    neutral: bool = False


@dataclass(frozen=True)
class Light:
    """Point light; irradiance at distance d is ``color * cos / (d^2 + 0.25)`` (no shadows)."""

    position: tuple[float, float, float]
    color: tuple[float, float, float]


@dataclass(frozen=True)
class SceneObject:
    shape: Shape
    material: Material


@dataclass(frozen=True)
class Scene:
    """A room with furniture, lights and a camera.

    ``room_materials`` follows ``Room.FACES``: four walls, floor, ceiling. ``ambient`` is the
    irradiance every surface receives in addition to the lights; ``exposure`` is the mean linear
    luminance the renderer scales the image to.
    """

    room: Room
    room_materials: tuple[Material, Material, Material, Material, Material, Material]
    objects: tuple[SceneObject, ...]
    lights: tuple[Light, ...]
    ambient: float
    exposure: float
    camera: Camera


def sample_scene(seed: int, n_textures: int) -> Scene:
    """The random scene of ``seed`` (>= 0), with texture ids below ``n_textures``.

    Room 3-8 x 3-8 x 2.4-3.5 m; 2-8 boxes (half against a wall), vertical cylinders and spheres
    on the floor or on boxes, apart from each other and >= 0.3 m from the camera; camera 0.3-2 m
    high, >= 0.3 m from the walls, any yaw (mostly towards some object), pitch -30..+15 deg,
    roll within +-5 deg, horizontal field of view 55-90 deg; 1-3 point lights near the ceiling.
    """
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if n_textures < 1:
        raise ValueError("need at least one texture")
    rng = np.random.default_rng([seed, 0])  # geometry, camera, lights
    mat_rng = np.random.default_rng([seed, 1])  # materials

    room = Room(*(float(rng.uniform(lo, hi)) for lo, hi in ROOM_SIZE))
    position = (
        float(rng.uniform(CAMERA_CLEARANCE, room.width - CAMERA_CLEARANCE)),
        float(rng.uniform(CAMERA_CLEARANCE, room.depth - CAMERA_CLEARANCE)),
        float(rng.uniform(*CAMERA_HEIGHT)),
    )
    shapes = _sample_furniture(rng, room, position)

    hfov = math.radians(rng.uniform(*CAMERA_HFOV))
    if rng.random() < 0.85:  # mostly look towards some object, so that furniture is in view
        x, y, _ = shapes[rng.integers(len(shapes))].center
        yaw = math.atan2(y - position[1], x - position[0]) + rng.uniform(-hfov / 4, hfov / 4)
    else:
        yaw = rng.uniform(-math.pi, math.pi)
    yaw = (yaw + math.pi) % (2 * math.pi) - math.pi
    camera = Camera(
        position=position,
        yaw=float(yaw),
        pitch=math.radians(rng.uniform(*CAMERA_PITCH)),
        roll=math.radians(float(np.clip(rng.normal(0.0, CAMERA_ROLL / 2), -CAMERA_ROLL, CAMERA_ROLL))),
        hfov=hfov,
    )

    lights = []
    strength = rng.uniform(1.0, 2.5) * room.height**2
    for _ in range(rng.integers(1, 4)):
        warmth = rng.uniform(-0.12, 0.12)
        power = strength * rng.uniform(0.5, 1.0)
        lights.append(
            Light(
                position=(
                    float(rng.uniform(0.2, room.width - 0.2)),
                    float(rng.uniform(0.2, room.depth - 0.2)),
                    float(room.height - rng.uniform(0.1, 0.4)),
                ),
                color=tuple(float(power * (1 + k * warmth)) for k in (1, 0, -1)),
            )
        )

    wall = _material(mat_rng, n_textures, planar=True, contrast=(0.4, 1.0), neutral=mat_rng.random() < 0.5)
    walls = [wall] * 4
    if mat_rng.random() < 0.25:  # accent wall
        walls[mat_rng.integers(4)] = _material(mat_rng, n_textures, planar=True, contrast=(0.6, 1.0))
    floor = _material(mat_rng, n_textures, planar=True, contrast=(0.7, 1.0), rotate=True)
    ceiling = _material(mat_rng, n_textures, planar=True, contrast=(0.1, 0.4), rotate=True, neutral=True)
    objects = tuple(SceneObject(s, _material(mat_rng, n_textures, shape=s)) for s in shapes)
    return Scene(
        room=room,
        room_materials=(*walls, floor, ceiling),
        objects=objects,
        lights=tuple(lights),
        ambient=float(rng.uniform(0.1, 0.35) * strength / room.height**2),
        exposure=float(rng.uniform(0.12, 0.25)),
        camera=camera,
    )


def _material(
    rng: np.random.Generator,
    n_textures: int,
    planar: bool = False,
    shape: Shape | None = None,
    contrast: tuple[float, float] = (0.6, 1.0),
    rotate: bool = False,
    neutral: bool = False,
) -> Material:
    tile = float(rng.uniform(0.8, 2.5) if planar else rng.uniform(0.4, 2.0))
    if isinstance(shape, Cylinder | Sphere):
        # Cylindrical and spherical maps wrap around: an even number of mirrored tiles meets seamlessly.
        circumference = 2 * math.pi * shape.radius
        tile = circumference / (2 * max(1, round(circumference / (2 * tile))))
    elif isinstance(shape, Box):
        tile = float(min(tile, 2.5 * max(shape.half)))
    tint = 1.0 + rng.uniform(-0.15, 0.15, size=3) if not planar else 1.0 + rng.uniform(-0.05, 0.05, size=3)
    return Material(
        texture=int(rng.integers(n_textures)),
        tile=tile,
        offset=(float(rng.uniform(0, 2)), float(rng.uniform(0, 2))),
        rotation=float(rng.uniform(0, 2 * math.pi)) if rotate else 0.0,
        contrast=float(rng.uniform(*contrast)),
        tint=tuple(float(t) for t in tint / tint.mean()),
        neutral=neutral,
    )


def _sample_furniture(
    rng: np.random.Generator, room: Room, camera: tuple[float, float, float]
) -> list[Shape]:
    """2..8 non-overlapping boxes, cylinders and spheres on the floor or on top of boxes.

    Each object is retried at shrinking size until it fits (the drawn count fitted for each of
    the first 20 000 training and 2 000 test seeds).
    """
    target = int(rng.integers(OBJECT_COUNT[0], OBJECT_COUNT[1] + 1))
    shapes: list[Shape] = []
    for _ in range(target):
        kind = rng.choice(3, p=(0.4, 0.3, 0.3))
        supports = [s for s in shapes if isinstance(s, Box)]
        stacked = bool(supports) and rng.random() < 0.3
        support = supports[rng.integers(len(supports))] if stacked else None
        for attempt in range(60):
            scale = 0.85 ** (attempt // 6)
            shape = _propose(rng, kind, room, support, scale)
            if _fits(shape, room, camera, shapes, support):
                shapes.append(shape)
                break
    return shapes


def _propose(rng: np.random.Generator, kind: int, room: Room, support: Box | None, scale: float) -> Shape:
    if support is None:
        base = 0.0
        x, y = rng.uniform(0, room.width), rng.uniform(0, room.depth)
    else:
        base = support.z_range[1]
        lx, ly = (rng.uniform(-0.8, 0.8) * h for h in support.half[:2])
        c, s = math.cos(support.yaw), math.sin(support.yaw)
        x, y = support.center[0] + c * lx - s * ly, support.center[1] + s * lx + c * ly
    small = support is not None
    if kind == 0:
        hx, hy = (rng.uniform(0.06, 0.3) if small else rng.uniform(0.15, 0.8) for _ in range(2))
        height = rng.uniform(0.08, 0.5) if small else rng.uniform(0.3, 1.9)
        yaw = rng.uniform(-math.pi, math.pi)
        hx, hy, height = hx * scale, hy * scale, height * scale
        if not small and rng.random() < 0.5:  # against a wall, turned square to it
            wall = rng.integers(4)
            yaw = wall * math.pi / 2
            # After turning by yaw, the box's local y half extent faces the wall.
            if wall == 0:
                y = hy + 0.01
            elif wall == 1:
                x = room.width - hy - 0.01
            elif wall == 2:
                y = room.depth - hy - 0.01
            else:
                x = hy + 0.01
            yaw += rng.choice((0.0, math.pi))
        return Box(center=(float(x), float(y), base + height / 2), half=(hx, hy, height / 2), yaw=float(yaw))
    if kind == 1:
        radius = (rng.uniform(0.04, 0.2) if small else rng.uniform(0.08, 0.45)) * scale
        height = (rng.uniform(0.1, 0.5) if small else rng.uniform(0.2, 1.5)) * scale
        return Cylinder(x=float(x), y=float(y), radius=radius, z0=base, z1=base + height)
    radius = (rng.uniform(0.05, 0.25) if small else rng.uniform(0.1, 0.5)) * scale
    return Sphere(center=(float(x), float(y), base + radius), radius=radius)


def _fits(
    shape: Shape,
    room: Room,
    camera: tuple[float, float, float],
    shapes: list[Shape],
    support: Box | None,
) -> bool:
    xmin, xmax, ymin, ymax = footprint_extent(shape)
    z0, z1 = shape.z_range
    if xmin < 0.005 or ymin < 0.005 or xmax > room.width - 0.005 or ymax > room.depth - 0.005:
        return False
    if z1 > room.height - 0.5:
        return False
    x, y, r = footprint(shape)
    if support is not None:
        lx, ly, _ = support.local_point((x, y, 0.0))
        if abs(lx) + r > support.half[0] or abs(ly) + r > support.half[1]:
            return False
    # The camera keeps its distance from the shape's bounding cylinder.
    if z0 - CAMERA_CLEARANCE < camera[2] < z1 + CAMERA_CLEARANCE:
        if math.hypot(camera[0] - x, camera[1] - y) < r + CAMERA_CLEARANCE:
            return False
    for other in shapes:
        o0, o1 = other.z_range
        if z0 < o1 - 1e-6 and o0 < z1 - 1e-6:
            ox, oy, orad = footprint(other)
            if math.hypot(x - ox, y - oy) < r + orad + GAP:
                return False
    return True
