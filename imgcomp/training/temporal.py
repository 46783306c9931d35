"""Train the temporal tables of a codec: transforms frozen, latents computed once, tables counted.

    PYTHONPATH=. python -m imgcomp.training.temporal [--model hyperprior-mse] [--frames 444] [--rendered 4]

Training footage: data/video/tree.avi (opencv-doc; `imgcomp data`) and rendered sequences with
camera motion (imgcomp.multitask.scenes). vtest.avi is the validation clip and is never read here.

1. g_a of every frame once (the per-level gains are a per-channel multiply, so one pass serves
   all levels);
2. per level, tables from the statistics of rounded residuals (pass 0), then twice: simulate the
   closed-loop RD encoder over groups of `gop` frames with the current tables and recount what it
   actually codes (flags with their contexts, residuals of changed blocks with theirs);
3. per-channel synthesis energy (pixel SSE of a unit latent step) for the encoder's RD proxy.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from imgcomp.codec import Codec
from imgcomp.models.registry import MANIFEST, WEIGHTS_DIR, load_manifest, write_manifest
from imgcomp.temporal.pcoding import block_of, encode_pframe
from imgcomp.temporal.stream import rd_lambda
from imgcomp.temporal.tables import BUCKETS, FLAG_CONTEXTS, LevelTables, TemporalTables, quantize_pmf
from imgcomp.video import read_video

DATA = Path("data")


def rendered_sequences(n: int, frames: int, size: int = 256) -> list[list[np.ndarray]]:
    """`n` rendered rooms, each a pan (yaw and pitch) with a slow dolly of the camera."""
    from imgcomp.multitask.scenes.render import default_pool, render_frame
    from imgcomp.multitask.scenes.scene import sample_scene

    pool = default_pool()
    out = []
    for seed in range(n):
        scene = sample_scene(1000 + seed, len(pool))
        cam = scene.camera
        rng = np.random.default_rng(seed)
        dyaw, dpitch = rng.uniform(-0.03, 0.03), rng.uniform(-0.008, 0.008)
        seq = []
        for t in range(frames):
            moved = dataclasses.replace(cam, yaw=cam.yaw + dyaw * t, pitch=cam.pitch + dpitch * t)
            try:
                seq.append(render_frame(dataclasses.replace(scene, camera=moved), size, size, pool).rgb)
            except ValueError:
                break
        if len(seq) > 1:
            out.append(seq)
    return out


@torch.no_grad()
def ungained_latents(codec: Codec, frames: list[np.ndarray], batch: int = 8) -> np.ndarray:
    """g_a of each frame (T, M, H, W) float32, before the per-level gain."""
    out = []
    for i in range(0, len(frames), batch):
        x = torch.cat([codec.image_tensor(f) for f in frames[i : i + batch]])
        out.append(codec.net.g_a(x).numpy())
    return np.concatenate(out)


@torch.no_grad()
def synthesis_energy(codec: Codec, latent: np.ndarray, level: int) -> np.ndarray:
    """Pixel SSE (0..1 units, RGB summed) of a +1 step of each gained channel at `level`, around a
    real latent (8 x 8 crop): the encoder's distortion weight per channel (de-gained, so it
    converts to any level by the squared inverse gains)."""
    net = codec.net
    m = latent.shape[0]
    crop = torch.from_numpy(latent[:, :8, :8].copy())[None].float()
    base = net.synthesise(torch.round(crop), level)
    bumped = torch.round(crop).repeat(m, 1, 1, 1)
    bumped[torch.arange(m), torch.arange(m), 4, 4] += 1.0
    out = []
    for i in range(0, m, 16):
        out.append(((net.synthesise(bumped[i : i + 16], level) - base) ** 2).sum(dim=(1, 2, 3)))
    inverse = net._gains(level, 1)[1].reshape(-1).double()
    return torch.cat(out).double().numpy() / inverse.numpy() ** 2  # per unit *de-gained* step


def _count(seqs: list[np.ndarray], gain: np.ndarray, lt: LevelTables | None, radius: int, lam: float, gop: int):
    m = seqs[0].shape[1]
    res = np.zeros((m * BUCKETS, 2 * radius + 1), dtype=np.float64)
    flg = np.zeros((FLAG_CONTEXTS, 2), dtype=np.float64)
    bits = 0.0
    ctx_tables = lt or LevelTables(radius, quantize_pmf(np.ones((FLAG_CONTEXTS, 2))),
                                   quantize_pmf(np.ones((m * BUCKETS, 2 * radius + 1))), np.ones(m))
    for seq in seqs:
        ref = flags = None
        for t in range(len(seq)):
            y = seq[t].astype(np.float64) * gain[:, None, None]
            if t % gop == 0:
                ref, flags = np.round(y).astype(np.int64), None
                continue
            fctx = np.full(flags_size(ref), FLAG_CONTEXTS - 1) if flags is None else flags
            if lt is None:
                rounded = np.clip(np.round(y) - ref, -radius, radius).astype(np.int64)
                changed_blocks = np.zeros(fctx.size, dtype=np.int64)
                np.add.at(changed_blocks, block_of(ref.shape).reshape(-1), (np.abs(rounded).sum(0) > 0).reshape(-1).astype(np.int64))
                new_flags = (changed_blocks > 0).astype(np.int64)
                values = rounded
            else:
                p = encode_pframe(y, ref, flags, lt, lam)
                new_flags, values = p.flags, p.y_hat - ref
                bits += 8 * (len(p.flags_string) + len(p.residual_string))
            np.add.at(flg, (fctx, new_flags), 1)
            changed = new_flags[block_of(ref.shape)][None].repeat(m, 0).astype(bool)
            ctx = ctx_tables.contexts(ref)
            np.add.at(res, (ctx[changed], values[changed] + radius), 1)
            ref, flags = ref + values, new_flags
    return res, flg, bits


def flags_size(ref: np.ndarray) -> int:
    return int(block_of(ref.shape).max()) + 1


def train(model: str, n_frames: int, n_rendered: int, render_frames: int, gop: int) -> tuple[TemporalTables, dict]:
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    codec = Codec(model)
    frames, _ = read_video(DATA / "video" / "tree.avi", n_frames)
    cache = DATA / "temporal" / f"latents-{model}-{n_frames}-{n_rendered}x{render_frames}.npz"
    if cache.exists():  # latents computed once (transforms are frozen)
        with np.load(cache) as z:
            seqs = [z[k] for k in sorted(z.files, key=lambda k: int(k[1:]))]
        t_lat = t_render = 0.0
        rendered = [list(s) for s in seqs[1:]]
    else:
        seqs = [ungained_latents(codec, frames)]
        t_lat = time.perf_counter() - t0
        rendered = rendered_sequences(n_rendered, render_frames) if n_rendered else []
        seqs += [ungained_latents(codec, s) for s in rendered]
        t_render = time.perf_counter() - t0 - t_lat
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **{f"s{i}": s for i, s in enumerate(seqs)})
    t1 = time.perf_counter()
    net = codec.net
    mid = net.levels // 2
    energy = synthesis_energy(codec, seqs[0][0] * net.gain.abs()[mid].detach().numpy()[:, None, None], mid)
    levels, log = [], []
    for level in range(net.levels):
        gain = net.gain.abs()[level].detach().double().numpy()
        inverse = net.inverse_gain.abs()[level].detach().double().numpy()
        weights = energy * inverse**2
        lam = rd_lambda(codec, level + 1)
        diffs = [np.abs(np.round(s[1:] * gain[:, None, None]) - np.round(s[:-1] * gain[:, None, None])).max() for s in seqs]
        radius = int(min(255, max(16, math.ceil(1.5 * max(diffs)) + 4)))
        res, flg, _ = _count(seqs, gain, None, radius, lam, gop)
        lt = LevelTables(radius, quantize_pmf(flg), quantize_pmf(res), weights)
        history = []
        for _ in range(2):
            res, flg, bits = _count(seqs, gain, lt, radius, lam, gop)
            history.append(bits)
            lt = LevelTables(radius, quantize_pmf(flg), quantize_pmf(res), weights)
        levels.append(lt)
        log.append({"level": level + 1, "radius": radius, "p_bits_per_pass": history})
        print(f"level {level + 1}: radius {radius}, P-frame bits of the training set per pass {history}", flush=True)
    tables = TemporalTables(codec.model_hash, tuple(levels), "")
    record = {
        "train_seconds": round(time.perf_counter() - t0, 1),
        "counting_seconds": round(time.perf_counter() - t1, 1),
        "latent_seconds": round(t_lat, 1),
        "render_and_latent_seconds": round(t_render, 1),
        "threads": 2,
        "trained_on": {"tree.avi frames": len(frames), "rendered sequences": [len(s) for s in rendered]},
        "gop": gop,
        "levels": log,
    }
    return tables, record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="hyperprior-mse")
    parser.add_argument("--frames", type=int, default=444)
    parser.add_argument("--rendered", type=int, default=4)
    parser.add_argument("--render-frames", type=int, default=30)
    parser.add_argument("--gop", type=int, default=10)
    args = parser.parse_args(argv)
    tables, record = train(args.model, args.frames, args.rendered, args.render_frames, args.gop)
    data = tables.to_bytes()
    name = f"{args.model}.temporal.npz"
    (WEIGHTS_DIR / name).write_bytes(data)
    digest = TemporalTables.from_bytes(data).digest
    manifest = load_manifest()
    manifest[args.model]["temporal"] = {"file": name, "sha256": digest, **record}
    write_manifest(MANIFEST, manifest)
    print(json.dumps({"file": name, "sha256": digest, **record}, indent=1))


if __name__ == "__main__":
    main()
