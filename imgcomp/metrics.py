"""Image quality and rate metrics on uint8 images (HxWx3 or HxW)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim, ssim
from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim
from torch import Tensor

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _as_tensor(image: np.ndarray) -> torch.Tensor:
    if image.ndim == 2:
        image = image[:, :, None]
    # float32: 12x faster than float64 on the CPU (0.26 s vs 3.2 s for MS-SSIM at 768x576), and
    # MS-SSIM moves by about 2e-7 (0.93210858 vs 0.93210838 on a real decoded frame)
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()


def psnr(reference: np.ndarray, test: np.ndarray, peak: float = 255.0) -> float:
    """PSNR over all channels of 8-bit images; inf for identical images."""
    _check_pair(reference, test)
    mse = float(np.mean((reference.astype(np.float64) - test.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def ssim_index(reference: np.ndarray, test: np.ndarray) -> float:
    _check_pair(reference, test)
    return float(ssim(_as_tensor(reference), _as_tensor(test), data_range=255.0, size_average=True))


MS_SSIM_MIN_SIDE = 161  # 5 scales with an 11x11 window


def ms_ssim_index(reference: np.ndarray, test: np.ndarray) -> float:
    """MS-SSIM (5 scales, 11x11 window); NaN for images with a side under 161 px, where it is undefined."""
    _check_pair(reference, test)
    if min(reference.shape[:2]) < MS_SSIM_MIN_SIDE:
        return math.nan
    return float(ms_ssim(_as_tensor(reference), _as_tensor(test), data_range=255.0, size_average=True))


def ms_ssim_per_sample(x: Tensor, y: Tensor, window: int = 7, data_range: float = 1.0) -> Tensor:
    """MS-SSIM per sample of float tensors (N x C x H x W), safe to differentiate: what training
    and the encoder's effort mode optimise.

    pytorch_msssim clips negative contrast terms to 0 with relu and then raises them to
    fractional powers, whose gradient at 0 is infinite: a single flat, badly reconstructed
    patch turns the whole step into NaN. Flooring the terms at a small positive value keeps
    the same value almost everywhere and a finite gradient.
    """
    win = _fspecial_gauss_1d(window, 1.5).to(x).repeat([x.shape[1], 1, 1, 1])
    weights = x.new_tensor(MS_SSIM_WEIGHTS)
    terms = []
    for level in range(len(MS_SSIM_WEIGHTS)):
        ssim_per_channel, cs = _ssim(x, y, data_range=data_range, win=win, size_average=False)
        if level < len(MS_SSIM_WEIGHTS) - 1:
            terms.append(cs.clamp_min(1e-4))
            padding = [s % 2 for s in x.shape[2:]]
            x = F.avg_pool2d(x, kernel_size=2, padding=padding)
            y = F.avg_pool2d(y, kernel_size=2, padding=padding)
    terms.append(ssim_per_channel.clamp_min(1e-4))
    stacked = torch.stack(terms, dim=0)  # (level, batch, channel)
    return torch.prod(stacked ** weights.view(-1, 1, 1), dim=0).mean(1)


def bits_per_pixel(num_bytes: int, height: int, width: int) -> float:
    return 8.0 * num_bytes / (height * width)


def _check_pair(reference: np.ndarray, test: np.ndarray) -> None:
    if reference.shape != test.shape:
        raise ValueError(f"image shapes differ: {reference.shape} vs {test.shape}")
