"""Pinhole camera: intrinsics, pose and per-pixel rays.

Frames (right-handed):

* world: x and y horizontal, z up; the room spans [0, width] x [0, depth] x [0, height].
* camera: OpenCV convention, x right, y down, z forward along the optical axis.

Pixel ``(row v, column u)`` has its centre at image coordinates ``(u, v)``; its ray in the camera
frame is ``((u - cx) / fx, (v - cy) / fy, 1)``. Because that ray has unit z, the ray parameter of a
hit equals its depth along the optical axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels (no distortion)."""

    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def from_hfov(cls, hfov: float, height: int, width: int) -> Intrinsics:
        """Square pixels, principal point at the image centre, horizontal field of view in radians."""
        fx = width / (2.0 * math.tan(hfov / 2.0))
        return cls(fx=fx, fy=fx, cx=(width - 1) / 2.0, cy=(height - 1) / 2.0)

    def matrix(self) -> np.ndarray:
        """3x3 camera matrix K (float64)."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def rays(self, height: int, width: int) -> np.ndarray:
        """float32 (height, width, 3) camera-frame rays with z = 1."""
        out = np.empty((height, width, 3), dtype=np.float32)
        out[:, :, 0] = ((np.arange(width, dtype=np.float64) - self.cx) / self.fx)[None, :]
        out[:, :, 1] = ((np.arange(height, dtype=np.float64) - self.cy) / self.fy)[:, None]
        out[:, :, 2] = 1.0
        return out

    def backproject(self, depth: np.ndarray) -> np.ndarray:
        """Camera-frame 3-D points (HxWx3, depth's dtype) from a z-depth map."""
        return self.rays(*depth.shape).astype(depth.dtype) * depth[:, :, None]


@dataclass(frozen=True)
class Camera:
    """Camera pose in the world and horizontal field of view (radians).

    ``yaw`` turns the view about world z (0 looks along +x, pi/2 along +y), ``pitch`` tilts it up
    (positive) or down, ``roll`` turns the camera about its optical axis (positive turns the
    camera x axis towards its y axis, so the image content turns anticlockwise).
    """

    position: tuple[float, float, float]
    yaw: float
    pitch: float
    roll: float
    hfov: float

    def rotation(self) -> np.ndarray:
        """3x3 camera-to-world rotation (float64): columns are the camera x, y, z axes in the world."""
        cy, sy = math.cos(self.yaw), math.sin(self.yaw)
        cp, sp = math.cos(self.pitch), math.sin(self.pitch)
        forward = np.array([cy * cp, sy * cp, sp])
        right = np.array([sy, -cy, 0.0])
        down = np.cross(forward, right)
        cr, sr = math.cos(self.roll), math.sin(self.roll)
        right, down = cr * right + sr * down, -sr * right + cr * down
        return np.stack([right, down, forward], axis=1)

    def camera_to_world(self) -> np.ndarray:
        """4x4 homogeneous camera-to-world transform (float64)."""
        out = np.eye(4)
        out[:3, :3] = self.rotation()
        out[:3, 3] = self.position
        return out

    def intrinsics(self, height: int, width: int) -> Intrinsics:
        return Intrinsics.from_hfov(self.hfov, height, width)
