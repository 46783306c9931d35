"""Lossless coding of the fixed-rate models' features (8-bit images and binary maps).

The study sent its features raw (pickled). Here they go through JPEG XL's lossless (modular)
mode, whose context-modelled ANS coder exploits the spatial redundancy of both kinds of feature:
an 8-bit "compressed image" is image-like, and the binary maps of a lossy CAE are smooth where
the picture is. The `n` maps of a CAE are tiled into one grayscale mosaic of 0/1 values so that
one JPEG XL stream covers them all.
"""

from __future__ import annotations

import math

import numpy as np

from imgcomp.bitstream import BitstreamError
from imgcomp.models.jxl_header import jxl_size

EFFORT = 7  # JPEG XL effort: 7 is libjxl's default; higher is slower for a few % on these maps


def _grid(channels: int) -> tuple[int, int]:
    rows = int(math.floor(math.sqrt(channels)))
    while channels % rows:
        rows -= 1
    return rows, channels // rows


def encode_uint8_planes(planes: np.ndarray) -> bytes:
    """(C, H, W) uint8 -> bytes. C = 1 or 3 is coded as one grayscale or RGB image."""
    if planes.dtype != np.uint8 or planes.ndim != 3:
        raise ValueError(f"expected (C, H, W) uint8 planes, got {planes.dtype} {planes.shape}")
    import imagecodecs  # here, not at the top: training the other families must not need it

    image = planes[0] if planes.shape[0] == 1 else np.ascontiguousarray(planes.transpose(1, 2, 0))
    return bytes(imagecodecs.jpegxl_encode(image, lossless=True, effort=EFFORT))


def decode_uint8_planes(data: bytes, shape: tuple[int, int, int]) -> np.ndarray:
    """bytes -> (C, H, W) uint8, checked against the expected shape."""
    image = _decode(data, tuple(shape[1:]))
    planes = image[None] if image.ndim == 2 else image.transpose(2, 0, 1)
    if planes.shape != tuple(shape) or planes.dtype != np.uint8:
        raise BitstreamError(f"feature image is {planes.dtype} {planes.shape}, expected uint8 {tuple(shape)}")
    return np.ascontiguousarray(planes)


def encode_binary_maps(bits: np.ndarray) -> bytes:
    """(C, H, W) bool -> bytes: the maps tiled into one 0/1 grayscale mosaic."""
    if bits.ndim != 3:
        raise ValueError(f"expected (C, H, W) binary maps, got shape {bits.shape}")
    c, h, w = bits.shape
    rows, cols = _grid(c)
    mosaic = bits.astype(np.uint8).reshape(rows, cols, h, w).transpose(0, 2, 1, 3).reshape(rows * h, cols * w)
    import imagecodecs

    return bytes(imagecodecs.jpegxl_encode(mosaic, lossless=True, effort=EFFORT))


def decode_binary_maps(data: bytes, shape: tuple[int, int, int]) -> np.ndarray:
    """bytes -> (C, H, W) bool, checked against the expected shape and values."""
    c, h, w = shape
    rows, cols = _grid(c)
    mosaic = _decode(data, (rows * h, cols * w))
    if mosaic.shape != (rows * h, cols * w) or mosaic.dtype != np.uint8:
        raise BitstreamError(f"binary mosaic is {mosaic.dtype} {mosaic.shape}, expected uint8 {(rows * h, cols * w)}")
    if mosaic.max(initial=0) > 1:
        raise BitstreamError("binary feature maps hold values other than 0 and 1")
    return mosaic.reshape(rows, h, cols, w).transpose(0, 2, 1, 3).reshape(c, h, w).astype(bool)


def _decode(data: bytes, expected_hw: tuple[int, int]) -> np.ndarray:
    """Decode after checking the declared size (either orientation) against `expected_hw`, so a
    small forged stream cannot make libjxl allocate a huge image."""
    declared = jxl_size(bytes(data[:34]))
    if declared not in (tuple(expected_hw), tuple(expected_hw)[::-1]):
        raise BitstreamError(f"feature stream declares {declared[1]}x{declared[0]}, expected {expected_hw[1]}x{expected_hw[0]}")
    import imagecodecs

    try:
        return np.asarray(imagecodecs.jpegxl_decode(data))
    except Exception as exc:  # noqa: BLE001 - imagecodecs raises its own error types per codec
        raise BitstreamError(f"feature stream is not a valid JPEG XL lossless stream: {exc}") from None
