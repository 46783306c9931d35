"""The multi-task network: depth, semantic segmentation and surface normals from one trunk.

Three inputs share one architecture after the stem, so that they compare fairly:

* ``latent``   - the codec's de-gained quantized latent (M x H/16 x W/16): a 1x1 projection,
  optionally followed by `stem_blocks` residual blocks (two of them make the latent stem about
  as deep and as costly as the image stem, which the decoded image gets for free in the
  pre-trained synthesis transform);
* ``decoded``  - the decoded image: four stride-2 conv layers down to H/16;
* ``original`` - the original image: the same image stem.

Trunk: residual blocks at 1/16 scale, then two upsampling stages to 1/4 scale; each task has
its own small head there, and predictions are bilinearly upsampled to the input size.
Depth comes out as log-metres (``depth = exp``), normals are unit vectors, segmentation logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

INPUTS = ("latent", "decoded", "original")
PAYLOAD_INPUTS = ("latent", "decoded")  # what a CompressedFeatures payload can feed
STRIDE = 16  # input pixels per trunk cell
OUTPUT_STRIDE = 4


@dataclass(frozen=True)
class HeadConfig:
    input: str = "latent"
    latent_channels: int = 128
    num_classes: int = 6
    width: int = 96
    blocks: int = 3
    stem_blocks: int = 0  # residual blocks at 1/16 scale after the latent's 1x1 projection

    def __post_init__(self) -> None:
        if self.input not in INPUTS:
            raise ValueError(f"input must be one of {', '.join(INPUTS)}, got {self.input!r}")


def _conv(cin: int, cout: int, stride: int = 1, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class _Residual(nn.Module):
    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x + self.body(x))


class _Up(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = _conv(cin, cout)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))


class MultiTaskHead(nn.Module):
    """``forward(x) -> {"log_depth", "seg", "normals"}`` at 1/OUTPUT_STRIDE of the input pixels.

    Use `predict` for an input of any size: it pads images to a multiple of STRIDE and crops
    every output to the requested size.
    """

    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        self.config = config
        c = config.width
        if config.input == "latent":
            # Latent channels differ in scale by orders of magnitude; a fixed per-channel scale
            # (set from training data) keeps the first layer well conditioned.
            self.register_buffer("input_scale", torch.ones(config.latent_channels))
            projection = _conv(config.latent_channels, c, kernel=1)
            self.stem = (nn.Sequential(projection, *[_Residual(c, dilation=1) for _ in range(config.stem_blocks)])
                         if config.stem_blocks else projection)
        else:
            if config.stem_blocks:
                raise ValueError("stem_blocks applies to the latent input (the image stem is fixed)")
            self.register_buffer("input_scale", torch.ones(3))
            self.stem = nn.Sequential(_conv(3, 24, 2), _conv(24, 48, 2), _conv(48, 64, 2), _conv(64, c, 2))
        self.trunk = nn.Sequential(*[_Residual(c, dilation=1 + (i % 2)) for i in range(config.blocks)])
        self.up = nn.Sequential(_Up(c, 64), _Up(64, 32))
        self.depth_head = nn.Sequential(_conv(32, 24), nn.Conv2d(24, 1, 1))
        self.seg_head = nn.Sequential(_conv(32, 24), nn.Conv2d(24, config.num_classes, 1))
        self.normal_head = nn.Sequential(_conv(32, 24), nn.Conv2d(24, 3, 1))
        with torch.no_grad():
            self.depth_head[-1].bias.fill_(1.0)  # exp(1) ~ 2.7 m: a typical indoor distance

    def _prepare(self, x: Tensor) -> Tensor:
        if self.config.input == "latent":
            return x / self.input_scale.view(1, -1, 1, 1)
        return x - 0.5  # images in [0, 1]

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        features = self.up(self.trunk(self.stem(self._prepare(x))))
        log_depth = self.depth_head(features)
        normals = F.normalize(self.normal_head(features), dim=1, eps=1e-6)
        return {"log_depth": log_depth, "seg": self.seg_head(features), "normals": normals}

    def predict(self, x: Tensor, height: int, width: int) -> dict[str, Tensor]:
        """Outputs at (height, width): depth (B,1) metres and its log, seg logits (B,K), unit normals (B,3)."""
        if self.config.input != "latent":
            ph, pw = -(-x.shape[-2] // STRIDE) * STRIDE, -(-x.shape[-1] // STRIDE) * STRIDE
            if (ph, pw) != tuple(x.shape[-2:]):
                x = F.pad(x, (0, pw - x.shape[-1], 0, ph - x.shape[-2]), mode="replicate")
        elif x.shape[-2] * STRIDE < height or x.shape[-1] * STRIDE < width:
            raise ValueError(f"a {tuple(x.shape[-2:])} latent cannot cover a {height}x{width} image")
        scale = STRIDE if self.config.input == "latent" else 1
        out = self.forward(x)
        full = {k: upsample(v, x.shape[-2] * scale, x.shape[-1] * scale)[..., :height, :width] for k, v in out.items()}
        return {
            "log_depth": full["log_depth"],
            "depth": full["log_depth"].exp(),
            "seg": full["seg"],
            "normals": F.normalize(full["normals"], dim=1, eps=1e-6),
        }


def upsample(x: Tensor, height: int, width: int) -> Tensor:
    return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)


def subsample_targets(*targets: Tensor) -> tuple[Tensor, ...]:
    """Full-resolution targets at the centres of the OUTPUT_STRIDE cells that `forward` predicts
    (cheaper training loss: no upsampling; evaluation uses `predict` at full resolution)."""
    o = OUTPUT_STRIDE // 2
    return tuple(t[..., o::OUTPUT_STRIDE, o::OUTPUT_STRIDE] for t in targets)
