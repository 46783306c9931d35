"""One registry of shipped models: name -> architecture, weights file, sha256, training record.

The table is `imgcomp/weights/manifest.json`, written by `export_weights` and reviewed in git.
Loading verifies the file's sha256 against the manifest; the first 16 hex digits are the
model hash that every bitstream carries. The classical codecs (`imgcomp.classical`) are names
here too, without weights.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from compressai.entropy_models import EntropyBottleneck

from imgcomp.defaults import CLASSICAL_LEVELS, CLASSICAL_MODELS
from imgcomp.models.gained import ArchConfig, GainedCodec, build_model

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
MANIFEST = WEIGHTS_DIR / "manifest.json"


class WeightsError(RuntimeError):
    """A model is unknown, or its weights file is missing or not the registered one."""


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_manifest(path: Path = MANIFEST) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def write_manifest(path: Path, manifest: dict[str, dict[str, Any]]) -> None:
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def available_models() -> list[str]:
    """Every name `Codec` accepts: the shipped weights and the classical codecs."""
    return sorted([*load_manifest(), *CLASSICAL_MODELS])


def shipped_weights() -> list[str]:
    """The models that have weights (every family but the classical codecs)."""
    return sorted(load_manifest())


def entropy_coded_models() -> list[str]:
    """Shipped models with quality levels and an entropy model (not the study's fixed-rate families)."""
    from imgcomp.models.fixed_rate import FIXED_RATE_FAMILIES

    return [name for name, entry in sorted(load_manifest().items()) if entry["family"] not in FIXED_RATE_FAMILIES]


def model_entry(name: str) -> dict[str, Any]:
    if name in CLASSICAL_MODELS:
        return {"family": "classical", "levels": CLASSICAL_LEVELS}
    manifest = load_manifest()
    if name not in manifest:
        raise WeightsError(f"unknown model {name!r}; shipped models: {sorted(manifest) or 'none'}")
    return manifest[name]


def _with_constant_buffers(state: dict[str, torch.Tensor], fresh: torch.nn.Module) -> dict[str, torch.Tensor]:
    """`state` with every buffer reset to the architecture's own value.

    The buffers of CompressAI's layers are constants (bounds, pedestals) or tables that
    `update()` rebuilds; only parameters are learned. Taking buffers from the architecture means
    a checkpoint that carried a damaged constant (e.g. one that went through fp16) is repaired.
    """
    buffers = dict(fresh.named_buffers())
    return {k: (buffers[k].clone() if k in buffers else v) for k, v in state.items()}


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    return {k: (v.float() if v.is_floating_point() else v) for k, v in payload["state_dict"].items()}


def arch_from(record: dict[str, Any]) -> ArchConfig:
    arch = dict(record)
    arch["lambdas"] = tuple(arch.get("lambdas", ()))
    return ArchConfig(**arch)


def load_verified_file(path: Path, expected_sha256: str, what: str) -> tuple[dict[str, Any], str]:
    """torch.load of a shipped weights file after checking its sha256; returns (payload, digest)."""
    if not path.exists():
        raise WeightsError(f"weights file {path} of {what} is missing")
    digest = sha256_of(path)
    if digest != expected_sha256:
        raise WeightsError(f"weights file {path} has sha256 {digest}, the manifest expects {expected_sha256}")
    return torch.load(path, map_location="cpu", weights_only=True), digest


@lru_cache(maxsize=16)
def _load_verified(name: str) -> tuple[GainedCodec, str]:
    entry = model_entry(name)
    payload, digest = load_verified_file(WEIGHTS_DIR / entry["file"], entry["sha256"], f"model {name!r}")
    model = build_model(arch_from(payload["arch"]))
    model.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in payload["state_dict"].items()})
    model.eval()
    return model, digest[:16]


def load_model(name: str) -> tuple[GainedCodec, str]:
    """A CPU copy of the verified model (callers may move it) and its 16-hex model hash."""
    import copy

    model, model_hash = _load_verified(name)
    return copy.deepcopy(model), model_hash


def fit_bottleneck_ranges(model: GainedCodec) -> None:
    """Rebuild the coder's tables from quantiles found on the density being shipped.

    Training fits an entropy bottleneck's quantiles (the range its table covers) by a slow
    auxiliary loss; where that has not converged the table is narrower than the density, and the
    encoder clamps what lies outside (see `entropy_coding`): `factorized-mse` clamped 0.6 % of its
    top level's values (aux loss 3176). CompressAI's bisection search finds the quantiles of the
    fp16 density exactly; they are stored in fp16 like every parameter, and the tables are built
    from those stored values, so a loaded model rebuilds the same integers.
    """
    for module in model.modules():
        if isinstance(module, EntropyBottleneck):
            module.update(force=True, update_quantiles=True)
            with torch.no_grad():
                module.quantiles.copy_(module.quantiles.half().float())
    model.update(force=True)


def export_weights(checkpoint: Path, name: str | None = None, out_dir: Path = WEIGHTS_DIR) -> Path:
    """Turn a training checkpoint into shipped weights (fp16, CDF tables built from the fp16
    values so encoder and decoder share exact integers), a model card and a manifest entry."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    config = state["config"]
    arch = arch_from(config["arch"])
    name = name or config["name"]
    model = build_model(arch)
    model.load_state_dict(_with_constant_buffers(state["model"], model))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    fit_bottleneck_ranges(model)
    # Parameters in fp16 (half the size); buffers stay fp32: they hold tiny constants (the
    # likelihood bound 1e-9, GDN's pedestal 2^-36) that fp16 would flush to zero.
    parameter_names = {n for n, _ in model.named_parameters()}
    state_dict = {k: (v.half() if k in parameter_names else v) for k, v in model.state_dict().items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.pt"
    torch.save({"arch": asdict(arch), "state_dict": state_dict}, path)
    digest = sha256_of(path)
    manifest = load_manifest() if out_dir == WEIGHTS_DIR else {}
    manifest[name] = {
        "file": path.name,
        "sha256": digest,
        "family": arch.family,
        "levels": arch.levels,
        "distortion": config["distortion"],
        "lambdas": list(arch.lambdas),
        "trained_steps": int(state["step"]),
        "crop": config["crop"],
        "batch_size": config["batch_size"],
        "exported": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "parameters": int(sum(p.numel() for p in model.parameters())),
    }
    earlier = earlier_training(config.get("init_from"))
    if earlier:
        manifest[name]["earlier_training"] = earlier
    if config.get("extra"):
        manifest[name]["extra"] = dict(config["extra"])
    write_manifest(out_dir / "manifest.json", manifest)
    write_model_card(out_dir, name, manifest[name], arch)
    _load_verified.cache_clear()
    return path


def refit_shipped_tables(name: str, weights_dir: Path = WEIGHTS_DIR) -> tuple[str, str]:
    """`fit_bottleneck_ranges` on weights already shipped (no training checkpoint needed): the
    transforms and densities stay as they are, the quantiles and tables change, so payloads of the
    old weights are refused as a model mismatch. Returns the old and new sha256."""
    manifest_path = weights_dir / "manifest.json"
    manifest = load_manifest(manifest_path)
    entry = manifest[name]
    payload, old_digest = load_verified_file(weights_dir / entry["file"], entry["sha256"], f"model {name!r}")
    model = build_model(arch_from(payload["arch"]))
    model.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in payload["state_dict"].items()})
    fit_bottleneck_ranges(model)
    parameter_names = {n for n, _ in model.named_parameters()}
    state_dict = {k: (v.half() if k in parameter_names else v) for k, v in model.state_dict().items()}
    path = weights_dir / entry["file"]
    torch.save({"arch": payload["arch"], "state_dict": state_dict}, path)
    entry["sha256"] = sha256_of(path)
    entry["tables_refit"] = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    write_manifest(manifest_path, manifest)
    write_model_card(weights_dir, name, entry, model.arch)
    _load_verified.cache_clear()
    return old_digest, entry["sha256"]


def earlier_training(init_from: str | None) -> list[dict[str, int]]:
    """The training stages behind the weights a run started from (found by sha256 in the
    manifest beside that file), oldest first; empty for a run from scratch or unlisted weights."""
    if not init_from or not Path(init_from).exists():
        return []
    digest = sha256_of(Path(init_from))
    for entry in load_manifest(Path(init_from).parent / "manifest.json").values():
        if entry.get("sha256") == digest:
            stage = {key: int(entry[key]) for key in ("trained_steps", "batch_size", "crop")}
            return [*entry.get("earlier_training", []), stage]
    return []


def install_weights(exported: Path, weights_dir: Path = WEIGHTS_DIR) -> list[str]:
    """Ship weights exported elsewhere (`export_weights(..., out_dir=exported)`, e.g. brought back
    from a GPU run): copy each model's .pt and card into `weights_dir` and merge its manifest
    entry, leaving the other models' entries as they are. Returns the installed names."""
    import shutil

    entries = json.loads((exported / "manifest.json").read_text())
    manifest_path = weights_dir / "manifest.json"
    manifest = load_manifest(manifest_path)
    for name, entry in entries.items():
        for suffix in (".pt", ".md"):
            shutil.copy(exported / f"{name}{suffix}", weights_dir / f"{name}{suffix}")
        manifest[name] = entry
    write_manifest(manifest_path, manifest)
    _load_verified.cache_clear()
    return sorted(entries)


_FIXED_RATE_DESCRIPTIONS = {
    "autoencoder": "the study's autoencoder, width {width}: image -> one 8-bit image at 1/4 width and height "
    "(raw 0.5 bpp) -> image; features coded losslessly (JPEG XL modular).",
    "lossy-cae": "the study's lossy compressive autoencoder, width {width}: image -> {n} binary maps at 1/4 width "
    "and height (raw {n}/16 bpp; stochastic binarization in training, sign at inference) -> image; maps coded "
    "losslessly (JPEG XL modular).",
    "cyclegan": "the study's Cycle-GAN, width {width}: G: image -> 8-bit RGB image at 1/2 width and height (raw 6 bpp), "
    "F: back; residuals over area downscaling / bilinear upscaling; patch-wise inference without seams; "
    "compressed image coded losslessly (JPEG XL modular).",
}


def write_model_card(out_dir: Path, name: str, entry: dict[str, Any], arch: ArchConfig, measured_markdown: str = "") -> Path:
    """A model card: what the weights are, how they were trained, and what was measured."""
    size_kb = (out_dir / entry["file"]).stat().st_size / 1024
    if arch.family in _FIXED_RATE_DESCRIPTIONS:
        extra = entry.get("extra", {})
        architecture = _FIXED_RATE_DESCRIPTIONS[arch.family].format(n=arch.latent_channels, width=arch.channels)
        loss = {"mse": "MSE", "ssim": "1 - SSIM", "ms-ssim": "1 - MS-SSIM", "ms-ssim-l1": "(1 - MS-SSIM) + alpha * L1"}[entry["distortion"]]
        if extra.get("laplacian_weight"):
            loss += f" + {extra['laplacian_weight']:g} * L1(compressed image, Laplacian target)"
        if extra.get("mse_warmup_steps"):
            loss += f", after {extra['mse_warmup_steps']} MSE warm-up steps"
        if arch.family == "cyclegan":
            loss = f"cycle ({loss} on images, L1 on compressed images) + {extra.get('adv_weight', 0.05):g} * adversarial (two PatchGAN discriminators)"
        loss_line = f"- Loss: {loss}; one fixed rate (no lambda)."
    else:
        architecture = (
            f"{arch.family} (Balle et al.), N={arch.channels}, M={arch.latent_channels}"
            + (f", hyper N={arch.hyper_channels}" if arch.family == "hyperprior" else "")
            + f"; {entry['levels']} quality levels via learned gain vectors (one network)."
        )
        loss = "lambda * 255^2 * MSE + bpp" if entry["distortion"] == "mse" else "lambda * (1 - MS-SSIM) + bpp"
        loss_line = f"- Loss: {loss}; lambdas per level: {', '.join(f'{v:g}' for v in entry['lambdas'])}."
    parameters = f", {entry['parameters']:,} parameters" if "parameters" in entry else ""
    lines = [
        f"# Model card: {name}",
        "",
        f"- Architecture: {architecture}",
        f"- Weights: `{entry['file']}`, {size_kb:.0f} KiB (fp16){parameters}, sha256 `{entry['sha256']}`.",
        loss_line,
        "- Training: random crops of the photos and video frames listed in `imgcomp/data/sources.py` "
        f"(Debian packages), validation images held out by name; {_training_stages(entry)}.",
        f"- Exported: {entry['exported']}.",
        "",
        "## Measured",
        "",
        measured_markdown
        or f"Not measured yet: run `imgcomp {'compare' if arch.family in _FIXED_RATE_DESCRIPTIONS else 'eval'} --cards`.",
        "",
    ]
    path = out_dir / f"{name}.md"
    path.write_text("\n".join(lines))
    return path


def _training_stages(entry: dict[str, Any]) -> str:
    stages = [*entry.get("earlier_training", []), entry]
    text = ", then ".join(f"{s['trained_steps']} steps at batch {s['batch_size']} on {s['crop']}x{s['crop']}" for s in stages)
    return text + (" (each stage starting from the weights of the one before)" if len(stages) > 1 else "")


def update_model_cards(eval_result: dict) -> list[Path]:
    """Rewrite the cards of evaluated shipped models with their measured RD points and BD-rates."""
    from imgcomp.models.fixed_rate import FIXED_RATE_FAMILIES

    written = []
    manifest = load_manifest()
    split = f" ({eval_result['split']})" if eval_result.get("split") else ""
    for name, entry in manifest.items():
        points = eval_result["curves"].get(name)
        if not points or entry["family"] in FIXED_RATE_FAMILIES:  # the study's cards carry `imgcomp compare`'s rows
            continue
        bd = eval_result["bd_rate_percent"][name]
        fmt = lambda v: "n/a" if v is None else f"{v:+.1f} %"  # noqa: E731
        rows = [
            f"On {len(eval_result['images'])} validation images (`{eval_result['image_dir']}`{split}), real bytes, "
            "`imgcomp eval --cards`:",
            "",
            "| quality | bpp | PSNR (dB) | MS-SSIM |",
            "|---:|---:|---:|---:|",
            *[f"| {p['setting']} | {p['bpp']:.3f} | {p['psnr']:.2f} | {p['ms_ssim']:.4f} |" for p in points],
            "",
            f"BD-rate vs JPEG (OpenCV 4:2:0): {fmt(bd['vs_jpeg_psnr'])} in PSNR, {fmt(bd['vs_jpeg_msssim'])} in MS-SSIM.",
        ]
        payload = torch.load(WEIGHTS_DIR / entry["file"], map_location="cpu", weights_only=True)
        written.append(write_model_card(WEIGHTS_DIR, name, entry, arch_from(payload["arch"]), "\n".join(rows)))
    return written
