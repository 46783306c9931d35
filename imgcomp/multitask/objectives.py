"""Training losses and evaluation metrics of the three tasks.

Losses: scale-invariant log depth (Eigen et al. 2014, variance weight 0.85, so absolute scale
still counts), cross-entropy over classes, and 1 - cosine between predicted and true normals.

Metrics, accumulated over a whole split (every pixel counts once; mIoU from one confusion
matrix): depth AbsRel and delta < 1.25, segmentation mIoU, normals mean angular error (degrees)
and share of pixels under 11.25 degrees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

SILOG_VARIANCE_WEIGHT = 0.85


def silog_loss(log_pred: Tensor, depth: Tensor) -> Tensor:
    d = log_pred - depth.clamp_min(1e-3).log()
    per_image = d.flatten(1)
    value = per_image.pow(2).mean(1) - SILOG_VARIANCE_WEIGHT * per_image.mean(1).pow(2)
    return value.clamp_min(1e-8).sqrt().mean()


def normal_loss(pred: Tensor, target: Tensor) -> Tensor:
    return (1.0 - (pred * target).sum(1)).mean()


def multitask_losses(out: dict[str, Tensor], depth: Tensor, labels: Tensor, normals: Tensor) -> dict[str, Tensor]:
    """`out` from `MultiTaskHead` (forward or predict) and targets at the same size:
    depth (B,H,W), labels (B,H,W) int64, normals (B,3,H,W)."""
    losses = {
        "depth": silog_loss(out["log_depth"][:, 0], depth),
        "seg": F.cross_entropy(out["seg"], labels),
        "normals": normal_loss(out["normals"], normals),
    }
    losses["total"] = losses["depth"] + losses["seg"] + losses["normals"]
    return losses


METRIC_NAMES = ("abs_rel", "delta1", "miou", "normal_mean_deg", "normal_11_25")
LOWER_IS_BETTER = {"abs_rel": True, "delta1": False, "miou": False, "normal_mean_deg": True, "normal_11_25": False}


@dataclass
class MetricAccumulator:
    num_classes: int
    _abs_rel: float = 0.0
    _delta1: float = 0.0
    _angle: float = 0.0
    _under: float = 0.0
    _pixels: int = 0
    _confusion: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self._confusion = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    @torch.no_grad()
    def add(self, depth: Tensor, seg_logits: Tensor, normals: Tensor,
            true_depth: Tensor, true_labels: Tensor, true_normals: Tensor) -> None:
        """Predictions (B,1,H,W)/(B,K,H,W)/(B,3,H,W) against truth (B,H,W)/(B,H,W)/(B,3,H,W)."""
        pred_depth = depth[:, 0].float()
        gt = true_depth.float()
        self._abs_rel += float(((pred_depth - gt).abs() / gt).sum())
        ratio = torch.maximum(pred_depth / gt, gt / pred_depth)
        self._delta1 += float((ratio < 1.25).sum())
        cos = (normals.float() * true_normals.float()).sum(1).clamp(-1.0, 1.0)
        angle = torch.rad2deg(torch.acos(cos))
        self._angle += float(angle.sum())
        self._under += float((angle < 11.25).sum())
        self._pixels += gt.numel()
        pred = seg_logits.argmax(1).flatten().cpu().numpy().astype(np.int64)
        true = true_labels.flatten().cpu().numpy().astype(np.int64)
        self._confusion += np.bincount(true * self.num_classes + pred, minlength=self.num_classes**2).reshape(
            self.num_classes, self.num_classes
        )

    def result(self) -> dict[str, float]:
        if self._pixels == 0:
            raise ValueError("no predictions were added")
        tp = np.diag(self._confusion).astype(np.float64)
        union = self._confusion.sum(0) + self._confusion.sum(1) - tp
        present = union > 0
        return {
            "abs_rel": self._abs_rel / self._pixels,
            "delta1": self._delta1 / self._pixels,
            "miou": float((tp[present] / union[present]).mean()),
            "normal_mean_deg": self._angle / self._pixels,
            "normal_11_25": self._under / self._pixels,
        }


def relative_gap(ours: float, baseline: float, metric: str) -> float:
    """How much worse `ours` is than `baseline`, relative (negative: better). 0.1 = 10 % worse."""
    if baseline == 0 or math.isnan(baseline):
        return math.nan
    if LOWER_IS_BETTER[metric]:
        return (ours - baseline) / baseline
    return (baseline - ours) / baseline
