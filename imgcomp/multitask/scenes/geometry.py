"""Scene primitives and vectorized ray intersection (numpy, float32).

Every primitive answers two questions for a batch of rays sharing one origin:

* ``intersect(origin, dirs) -> t``: ray parameter of the first hit in front of the origin,
  ``inf`` where the ray misses (``dirs`` need not be unit length).
* ``surface(points) -> (normals, u, v)``: outward unit world normals and surface coordinates
  in metres at hit points, for texture mapping (planar on boxes and caps, cylindrical on
  cylinder sides, spherical on spheres). Vertical surfaces use ``v = -z`` so photos stand upright.

Solids are closed and the origin must lie outside them; the room is a hollow box seen from inside.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_F = np.float32


def _inv(d: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return _F(1.0) / d


def _slab(lo: float, hi: float, o: float, inv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t1 = (_F(lo) - _F(o)) * inv
    t2 = (_F(hi) - _F(o)) * inv
    return np.minimum(t1, t2), np.maximum(t1, t2)


@dataclass(frozen=True)
class Room:
    """Axis-aligned room [0, width] x [0, depth] x [0, height] in metres, seen from inside."""

    width: float
    depth: float
    height: float

    # Faces, in the order `intersect` numbers them: x=0, x=width, y=0, y=depth, floor, ceiling.
    FACES = ("wall_x0", "wall_x1", "wall_y0", "wall_y1", "floor", "ceiling")

    def contains(self, point: tuple[float, float, float], margin: float = 0.0) -> bool:
        x, y, z = point
        return (
            margin < x < self.width - margin
            and margin < y < self.depth - margin
            and margin < z < self.height - margin
        )

    def intersect(self, origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exit distance and face index (int8, 0..5, see FACES) for rays from an origin inside the room."""
        ts = []
        for axis, size in enumerate((self.width, self.depth, self.height)):
            inv = _inv(dirs[:, axis])
            # One slab bound is behind the origin (negative t), the other is the exit.
            with np.errstate(invalid="ignore"):
                ts.append(np.maximum((_F(0.0) - _F(origin[axis])) * inv, (_F(size) - _F(origin[axis])) * inv))
        tx, ty, tz = ts
        t = np.minimum(np.minimum(tx, ty), tz)
        face = np.where(tx == t, np.int8(0), np.where(ty == t, np.int8(2), np.int8(4)))
        d = np.where(tx == t, dirs[:, 0], np.where(ty == t, dirs[:, 1], dirs[:, 2]))
        face += d > 0
        return t, face

    @staticmethod
    def surface(points: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Inward unit normals and (u, v) at points on the given faces."""
        axis = faces >> 1
        sign = np.where(faces & 1, _F(-1.0), _F(1.0))
        normals = np.empty_like(points)
        for k in range(3):
            normals[:, k] = np.where(axis == k, sign, _F(0.0))
        x, y, z = points[:, 0], points[:, 1], points[:, 2]
        u = np.where(axis == 0, y, x)
        v = np.where(axis == 2, y, -z)
        return normals, u, v


@dataclass(frozen=True)
class Box:
    """Box with half extents ``half`` around ``center``, turned by ``yaw`` about the vertical."""

    center: tuple[float, float, float]
    half: tuple[float, float, float]
    yaw: float = 0.0

    label = "box"

    @property
    def z_range(self) -> tuple[float, float]:
        return self.center[2] - self.half[2], self.center[2] + self.half[2]

    @property
    def radius(self) -> float:
        """Radius of the footprint's circumscribed circle."""
        return math.hypot(self.half[0], self.half[1])

    def bounding_sphere(self) -> tuple[tuple[float, float, float], float]:
        return self.center, math.hypot(*self.half)

    def _to_local(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c, s = _F(math.cos(self.yaw)), _F(math.sin(self.yaw))
        return c * x + s * y, c * y - s * x

    def local_point(self, point: tuple[float, float, float]) -> tuple[float, float, float]:
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        x, y, z = (p - q for p, q in zip(point, self.center))
        return c * x + s * y, c * y - s * x, z

    def intersect(self, origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        o = self.local_point(tuple(origin))
        dx, dy = self._to_local(dirs[:, 0], dirs[:, 1])
        tnear = tfar = None
        with np.errstate(invalid="ignore"):
            for d, oo, h in zip((dx, dy, dirs[:, 2]), o, self.half):
                lo, hi = _slab(-h, h, oo, _inv(d))
                tnear = lo if tnear is None else np.maximum(tnear, lo)
                tfar = hi if tfar is None else np.minimum(tfar, hi)
            hit = (tnear <= tfar) & (tnear > 0)
        return np.where(hit, tnear, _F(np.inf))

    def surface(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lx, ly = self._to_local(points[:, 0] - _F(self.center[0]), points[:, 1] - _F(self.center[1]))
        lz = points[:, 2] - _F(self.center[2])
        local = np.stack([lx, ly, lz], axis=1)
        # The face a point lies on is the one it is nearest to.
        gap = np.asarray(self.half, dtype=_F) - np.abs(local)
        axis = np.argmin(gap, axis=1)
        sign = np.sign(np.take_along_axis(local, axis[:, None], axis=1)[:, 0]).astype(_F)
        c, s = _F(math.cos(self.yaw)), _F(math.sin(self.yaw))
        normals = np.zeros_like(points)
        normals[:, 0] = np.where(axis == 0, c * sign, np.where(axis == 1, -s * sign, 0))
        normals[:, 1] = np.where(axis == 0, s * sign, np.where(axis == 1, c * sign, 0))
        normals[:, 2] = np.where(axis == 2, sign, 0)
        u = np.where(axis == 0, ly, lx)
        v = np.where(axis == 2, ly, -lz)
        return normals, u, v


@dataclass(frozen=True)
class Cylinder:
    """Vertical solid cylinder: axis through (x, y), radius, from z0 up to z1."""

    x: float
    y: float
    radius: float
    z0: float
    z1: float

    label = "cylinder"

    @property
    def z_range(self) -> tuple[float, float]:
        return self.z0, self.z1

    @property
    def center(self) -> tuple[float, float, float]:
        return self.x, self.y, (self.z0 + self.z1) / 2

    def bounding_sphere(self) -> tuple[tuple[float, float, float], float]:
        return self.center, math.hypot(self.radius, (self.z1 - self.z0) / 2)

    def intersect(self, origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        px, py, oz = _F(origin[0] - self.x), _F(origin[1] - self.y), _F(origin[2])
        dx, dy, dz = dirs[:, 0], dirs[:, 1], dirs[:, 2]
        r2 = _F(self.radius**2)
        a = np.maximum(dx * dx + dy * dy, _F(1e-12))
        b = px * dx + py * dy
        c = px * px + py * py - r2
        disc = b * b - a * c
        with np.errstate(invalid="ignore"):
            t = (-b - np.sqrt(disc)) / a  # entry through the side (nan where the ray misses)
            z = oz + t * dz
            side = (disc >= 0) & (t > 0) & (z >= _F(self.z0)) & (z <= _F(self.z1))
        best = np.where(side, t, _F(np.inf))
        if origin[2] > self.z1 or origin[2] < self.z0:
            cap = self.z1 if origin[2] > self.z1 else self.z0
            with np.errstate(divide="ignore", invalid="ignore"):
                tc = (_F(cap) - oz) / dz
                cx, cy = px + tc * dx, py + tc * dy
                on_cap = (tc > 0) & (cx * cx + cy * cy <= r2)
            best = np.where(on_cap & (tc < best), tc, best)
        return best

    def surface(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        px, py, z = points[:, 0] - _F(self.x), points[:, 1] - _F(self.y), points[:, 2]
        rho = np.sqrt(px * px + py * py)
        gap_top, gap_bottom = np.abs(z - _F(self.z1)), np.abs(z - _F(self.z0))
        gap_side = np.abs(rho - _F(self.radius))
        top = (gap_top < gap_side) & (gap_top <= gap_bottom)
        bottom = (gap_bottom < gap_side) & ~top
        side = ~(top | bottom)
        inv = _F(1.0) / np.maximum(rho, _F(1e-12))
        normals = np.zeros_like(points)
        normals[:, 0] = np.where(side, px * inv, 0)
        normals[:, 1] = np.where(side, py * inv, 0)
        normals[:, 2] = np.where(top, 1, np.where(bottom, -1, 0))
        arc = (np.arctan2(py, px) + _F(math.pi)) * _F(self.radius)
        u = np.where(side, arc, px)
        v = np.where(side, -z, py)
        return normals, u, v


@dataclass(frozen=True)
class Sphere:
    center: tuple[float, float, float]
    radius: float

    label = "sphere"

    @property
    def z_range(self) -> tuple[float, float]:
        return self.center[2] - self.radius, self.center[2] + self.radius

    def bounding_sphere(self) -> tuple[tuple[float, float, float], float]:
        return self.center, self.radius

    def intersect(self, origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        oc = (np.asarray(origin, dtype=np.float64) - self.center).astype(_F)
        a = dirs[:, 0] * dirs[:, 0] + dirs[:, 1] * dirs[:, 1] + dirs[:, 2] * dirs[:, 2]
        b = dirs @ oc
        c = _F(oc @ oc - self.radius**2)
        disc = b * b - a * c
        with np.errstate(invalid="ignore"):
            t = (-b - np.sqrt(disc)) / a
            return np.where((disc >= 0) & (t > 0), t, _F(np.inf))

    def surface(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        normals = points - np.asarray(self.center, dtype=_F)
        normals /= np.linalg.norm(normals, axis=1, keepdims=True)
        r = _F(self.radius)
        u = (np.arctan2(normals[:, 1], normals[:, 0]) + _F(math.pi)) * r
        v = np.arccos(np.clip(normals[:, 2], -1, 1)) * r
        return normals, u, v


Shape = Box | Cylinder | Sphere


def footprint(shape: Shape) -> tuple[float, float, float]:
    """(x, y, radius) of a circle containing the shape's floor-plan footprint."""
    if isinstance(shape, Box):
        return shape.center[0], shape.center[1], shape.radius
    if isinstance(shape, Cylinder):
        return shape.x, shape.y, shape.radius
    return shape.center[0], shape.center[1], shape.radius


def footprint_extent(shape: Shape) -> tuple[float, float, float, float]:
    """Exact axis-aligned floor-plan bounds (xmin, xmax, ymin, ymax)."""
    if isinstance(shape, Box):
        c, s = abs(math.cos(shape.yaw)), abs(math.sin(shape.yaw))
        ex = c * shape.half[0] + s * shape.half[1]
        ey = s * shape.half[0] + c * shape.half[1]
        x, y = shape.center[0], shape.center[1]
    else:
        x, y, ex = footprint(shape)
        ey = ex
    return x - ex, x + ex, y - ey, y + ey
