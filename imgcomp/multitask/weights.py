"""Shipped multi-task heads: imgcomp/weights/multitask/<name>.pt, a model card and a manifest.

Each head is tied to the codec weights whose latents (or decoded images) it was trained on: the
manifest records that codec's name and 16-hex model hash, and `load_head` refuses a head whose
file does not match its registered sha256.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from imgcomp.models.registry import (
    WEIGHTS_DIR,
    WeightsError,
    load_manifest,
    load_verified_file,
    model_entry,
    sha256_of,
    write_manifest,
)
from imgcomp.multitask.model import HeadConfig, MultiTaskHead

HEADS_DIR = WEIGHTS_DIR / "multitask"
DEFAULT_HEAD = "multitask-latent"


def load_head_manifest(folder: Path = HEADS_DIR) -> dict[str, dict[str, Any]]:
    return load_manifest(folder / "manifest.json")


def available_heads(folder: Path = HEADS_DIR) -> list[str]:
    return sorted(load_head_manifest(folder))


def head_entry(name: str, folder: Path = HEADS_DIR) -> dict[str, Any]:
    manifest = load_head_manifest(folder)
    if name not in manifest:
        raise WeightsError(f"unknown multi-task head {name!r}; shipped heads: {sorted(manifest) or 'none'}")
    return manifest[name]


def load_head(name: str = DEFAULT_HEAD, folder: Path = HEADS_DIR) -> tuple[MultiTaskHead, dict[str, Any]]:
    """The verified head in eval mode (CPU) and its manifest entry."""
    entry = head_entry(name, folder)
    payload, _ = load_verified_file(folder / entry["file"], entry["sha256"], f"head {name!r}")
    head = MultiTaskHead(HeadConfig(**payload["head"]))
    head.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()})
    return head.eval(), entry


def export_head(checkpoint: Path, out_dir: Path = HEADS_DIR, measured: str = "") -> Path:
    """Weights (float16 parameters), manifest entry and model card from a training checkpoint."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    config = state["config"]
    name = config["name"]
    codec_name = config["codec"]
    codec_hash = model_entry(codec_name)["sha256"][:16]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.pt"
    weights = {k: v.half() if v.is_floating_point() and k.endswith(("weight", "bias")) else v
               for k, v in state["model"].items()}
    torch.save({"head": config["head"], "state_dict": weights, "codec": codec_name, "codec_hash": codec_hash}, path)
    manifest = load_head_manifest(out_dir)
    manifest[name] = {
        "file": path.name,
        "sha256": sha256_of(path),
        "input": config["head"]["input"],
        "codec": codec_name,
        "codec_hash": codec_hash,
        "steps": int(state["step"]),
        "batch_size": config["batch_size"],
        "lr": config["lr"],
        "pack": config["pack"],
        "parameters": sum(v.numel() for k, v in state["model"].items() if k.endswith(("weight", "bias"))),
        "size_bytes": path.stat().st_size,
        "exported": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    }
    write_manifest(out_dir / "manifest.json", manifest)
    write_head_card(out_dir, name, manifest[name], measured)
    return path


def write_head_card(out_dir: Path, name: str, entry: dict[str, Any], measured: str = "") -> Path:
    inputs = {
        "latent": f"the de-gained quantized latent of `{entry['codec']}` (`Codec.decode_latent`, no synthesis transform)",
        "decoded": f"the image decoded by `{entry['codec']}` (baseline)",
        "original": "the original image (baseline, upper bound)",
    }
    lines = [
        f"# {name}",
        "",
        f"Multi-task head (depth, semantic segmentation, surface normals) on {inputs[entry['input']]}.",
        "",
        f"- codec: `{entry['codec']}`, model hash `{entry['codec_hash']}`",
        f"- data: procedural indoor scenes (`imgcomp.multitask.scenes`, textured with the training photos), "
        f"pack `{entry['pack']}`; each training frame coded at a quality level drawn per seed",
        f"- training: {entry['steps']} steps, batch {entry['batch_size']}, AdamW lr {entry['lr']}; "
        "losses: scale-invariant log depth + cross-entropy + (1 - cos) normals",
        f"- parameters: {entry['parameters']:,}; file {entry['size_bytes'] / 1e6:.2f} MB (float16), sha256 `{entry['sha256']}`",
        "- reproduce: `imgcomp multitask pack`, then "
        f"`imgcomp train --config config/multitask/{entry['input']}.yaml --export`",
        "",
    ]
    if measured:
        lines += ["## Measured (`imgcomp multitask eval`, test split)", "", measured.strip(), ""]
    path = out_dir / f"{name}.md"
    path.write_text("\n".join(lines))
    return path
