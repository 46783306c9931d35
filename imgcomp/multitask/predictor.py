"""Depth, segmentation and normals from a CompressedFeatures payload.

`Perceiver` pairs a shipped head with the codec it was trained on. A latent head reads
`Codec.decode_latent` (entropy decoding only: the synthesis transform never runs); a decoded-image
head decodes the image first (the baseline path, kept to measure what skipping decoding saves).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from imgcomp.bitstream import Frame, FrameHeader, unpack
from imgcomp.codec import Codec
from imgcomp.models.registry import WeightsError
from imgcomp.multitask.model import PAYLOAD_INPUTS, MultiTaskHead
from imgcomp.multitask.weights import DEFAULT_HEAD, load_head


@dataclass(frozen=True)
class Perception:
    """One frame's predictions at the source image size.

    depth: float32 (H, W) metres; labels: uint8 (H, W) class ids (imgcomp.multitask.scenes.CLASSES);
    normals: float32 (H, W, 3) unit vectors in the camera frame (x right, y down, z forward);
    decode_ms / head_ms: host time spent reading the payload and running the head.
    """

    depth: np.ndarray
    labels: np.ndarray
    normals: np.ndarray
    decode_ms: float
    head_ms: float


def image_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image
    return torch.from_numpy(np.ascontiguousarray(rgb)).to(device).permute(2, 0, 1)[None].float().div_(255.0)


class Perceiver:
    """`perceive(payload) -> Perception`. Raises the codec's BitstreamError / ModelMismatchError
    for a payload it cannot read; thread-safe (one lock around the head)."""

    def __init__(
        self,
        head: str = DEFAULT_HEAD,
        device: str = "cpu",
        codec_factory: Callable[[str], Codec] = Codec,
    ) -> None:
        net, self.entry = load_head(head)
        if self.entry["input"] not in PAYLOAD_INPUTS:
            raise ValueError(f"head {head!r} reads the original image; a payload cannot feed it")
        self.head_name = head
        self.device = torch.device(device)
        self.head: MultiTaskHead = net.to(self.device)
        self.codec = codec_factory(self.entry["codec"])
        if self.codec.model_hash != self.entry["codec_hash"]:
            raise WeightsError(
                f"head {head!r} was trained on {self.entry['codec']} weights {self.entry['codec_hash']}, "
                f"the installed codec has {self.codec.model_hash}"
            )
        self._lock = threading.Lock()

    @property
    def codec_name(self) -> str:
        return self.entry["codec"]

    @property
    def codec_hash(self) -> str:
        return self.entry["codec_hash"]

    @torch.no_grad()
    def perceive(self, payload: bytes | Frame) -> Perception:
        """Depth, labels and normals of one payload (bytes, or a Frame already parsed by
        `imgcomp.bitstream.unpack`: it is not parsed again)."""
        frame = payload if isinstance(payload, Frame) else unpack(payload)
        header = frame.header
        started = time.perf_counter()
        if self.entry["input"] == "latent":
            x = self.codec.decode_latent(frame).to(self.device)
        else:
            x = image_tensor(self.codec.decode(frame), self.device)
        return self._predict(x, header, started)

    @torch.no_grad()
    def perceive_latent(self, header: FrameHeader, y_hat: np.ndarray, decode_ms: float = 0.0) -> Perception:
        """Depth, labels and normals from a frame's reconstructed integer latent (M x h x w, as
        `imgcomp.temporal.StreamDecoder` gives it for key and P-frames alike); `decode_ms` is the
        time already spent getting it (reported in the Perception)."""
        started = time.perf_counter() - decode_ms / 1e3
        y = self.codec.latent_tensor(y_hat)
        if self.entry["input"] == "latent":
            x = self.codec.features(y, header.quality).to(self.device)
        else:
            x = image_tensor(self.codec.render(y, header), self.device)
        return self._predict(x, header, started)

    def _predict(self, x: torch.Tensor, header: FrameHeader, started: float) -> Perception:
        decoded = time.perf_counter()
        with self._lock:
            out = self.head.predict(x, header.height, header.width)
        depth = out["depth"][0, 0].float().cpu().numpy()
        labels = out["seg"][0].argmax(0).to(torch.uint8).cpu().numpy()
        normals = out["normals"][0].permute(1, 2, 0).float().cpu().numpy()
        done = time.perf_counter()
        return Perception(
            depth=np.ascontiguousarray(depth),
            labels=np.ascontiguousarray(labels),
            normals=np.ascontiguousarray(normals),
            decode_ms=1e3 * (decoded - started),
            head_ms=1e3 * (done - decoded),
        )
