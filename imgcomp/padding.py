"""Pad images to a multiple of the codec's downsampling factor and crop back."""

from __future__ import annotations

import cv2
import numpy as np
import torch.nn.functional as F
from torch import Tensor


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Replicate-pad the bottom/right edges (cheaper to code than zeros); return the original size."""
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return x, (h, w)


def pad_image_to_multiple(image: np.ndarray, multiple: int) -> np.ndarray:
    """`pad_to_multiple` on an 8-bit H x W (x C) image, before it becomes a float tensor: the same
    replicated edge values (so the same tensor after conversion), at a fraction of the cost."""
    h, w = image.shape[:2]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if not (pad_h or pad_w):
        return image
    return cv2.copyMakeBorder(np.ascontiguousarray(image), 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
