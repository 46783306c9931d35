"""Train the temporal tables of a codec: transforms frozen, latents computed once, tables counted.

    PYTHONPATH=. python -m imgcomp.training.temporal [--model hyperprior-mse] [--rendered 4]
        [--tables 64] [--block 2] [--phases 4] [--no-history] [--no-neighbours] [--no-sign-flip]
        [--out FILE [--levels N]]   (a tables file for bench-video --tables; the manifest is left alone)

Training footage (vtest.avi is the validation clip and is never read here):
* data/video/tree.avi (opencv-doc; `imgcomp data`), at full size and at half size;
* Megamind.avi from the same Debian package (data/raw/opencv-doc/..., where `imgcomp data`
  unpacked it), a film clip with cuts, at half and quarter size, split at its cuts;
* rendered sequences with camera motion (imgcomp.multitask.scenes).

1. g_a of every frame once (the per-level gains are a per-channel multiply, so one pass serves
   all levels), cached under the imgcomp cache folder;
2. per level: the channel groups from how often each channel's rounded residual is nonzero; a
   first count of the rounded residuals (no RD), then twice: simulate the closed-loop RD encoder
   over groups of `gop` frames with the current tables and recount what it actually codes (flags
   with their contexts, residuals of changed blocks with theirs); after each count, the residual
   contexts are quantised to `--tables` shared tables (k-means on the code length, each context
   smoothed towards its channel-and-bucket parent so that rare and unseen ones back off to it);
3. per-channel synthesis energy (pixel SSE of a unit latent step) for the encoder's RD proxy.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from imgcomp.codec import Codec
from imgcomp.data.sources import check_training_video
from imgcomp.inference.cache import model_cache_dir
from imgcomp.models.registry import MANIFEST, WEIGHTS_DIR, load_manifest, write_manifest
from imgcomp.temporal.pcoding import encode_pframe
from imgcomp.multitask.scenes.moving_camera import training_seeds
from imgcomp.temporal.stream import rd_lambda
from imgcomp.temporal.tables import BUCKETS, FLAG_CONTEXTS, TOTAL, Layout, LevelTables, TemporalTables, quantize_pmf
from imgcomp.video import read_video

DATA = Path("data")
TREE = DATA / "video" / "tree.avi"
MEGAMIND = DATA / "raw" / "opencv-doc" / "usr" / "share" / "doc" / "opencv-doc" / "examples" / "data" / "Megamind.avi"
CUT = 0.5  # a frame whose mean |latent change| exceeds this fraction of the mean |latent| starts a new shot
SMOOTHING = 4.0  # pseudo-counts of the parent distribution added to every context before clustering


def rendered_sequences(n: int, frames: int, size: int = 256) -> list[list[np.ndarray]]:
    """`n` rendered rooms (scene seeds `training_seeds(n)`, never bench-video's), each a pan of
    the camera at a steady yaw and pitch rate."""
    from imgcomp.multitask.scenes.render import default_pool, render_frame
    from imgcomp.multitask.scenes.scene import sample_scene

    pool = default_pool()
    out = []
    for i, scene_seed in enumerate(training_seeds(n)):
        scene = sample_scene(scene_seed, len(pool))
        cam = scene.camera
        rng = np.random.default_rng(i)
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


def shots(latents: np.ndarray, min_frames: int = 3) -> list[np.ndarray]:
    """A clip's latents split at its cuts (no P-frame would be sent across one: the encoder's
    scene-change test sends a key frame)."""
    change = np.abs(latents[1:] - latents[:-1]).mean(axis=(1, 2, 3))
    cuts = [0, *(np.flatnonzero(change > CUT * np.abs(latents).mean()) + 1), len(latents)]
    return [latents[a:b] for a, b in zip(cuts[:-1], cuts[1:]) if b - a >= min_frames]


def _scaled(frames: list[np.ndarray], scale: float) -> list[np.ndarray]:
    if scale == 1.0:
        return frames
    return [cv2.resize(f, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) for f in frames]


def training_latents(codec: Codec, n_rendered: int, render_frames: int, max_video_frames: int = 0) -> tuple[list[np.ndarray], dict]:
    """Latent shots of the training footage (cached), and what they are; `max_video_frames` > 0
    reads only that many frames of each video (the GPU script's CPU dry run)."""
    clip = f"-v{max_video_frames}" if max_video_frames else ""
    cache = model_cache_dir("temporal-latents", codec.model_name, codec.model_hash) / f"train-r{n_rendered}x{render_frames}{clip}.npz"
    if cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            seqs = [z[k] for k in sorted((k for k in z.files if k.startswith("s")), key=lambda k: int(k[1:]))]
            info = json.loads(bytes(z["info"]).decode())
        return seqs, info | {"latent_seconds": 0.0, "cached": True}
    t0 = time.perf_counter()
    seqs, info = [], {}
    for video in (TREE, MEGAMIND):
        check_training_video(video.name)  # never vtest.avi or a held-out video
    limit = max_video_frames or None
    tree, _ = read_video(TREE, limit)
    for scale in (1.0, 0.5):
        seqs.append(ungained_latents(codec, _scaled(tree, scale)))
    info["tree.avi frames x scales"] = [len(tree), [1.0, 0.5]]
    if MEGAMIND.exists():
        film, _ = read_video(MEGAMIND, limit)
        found = [s for scale in (0.5, 0.25) for s in shots(ungained_latents(codec, _scaled(film, scale)))]
        seqs += found
        info["Megamind.avi frames x scales, shots"] = [len(film), [0.5, 0.25], len(found)]
    else:
        print(f"note: {MEGAMIND} not found (run `imgcomp data`); training without it", flush=True)
    rendered = rendered_sequences(n_rendered, render_frames) if n_rendered else []
    seqs += [ungained_latents(codec, s) for s in rendered]
    info["rendered sequences"] = [len(s) for s in rendered]
    info["rendered scene seeds"] = list(training_seeds(n_rendered))
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, info=np.frombuffer(json.dumps(info).encode(), dtype=np.uint8), **{f"s{i}": s for i, s in enumerate(seqs)})
    return seqs, info | {"latent_seconds": round(time.perf_counter() - t0, 1), "cached": False}


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


def channel_groups(seqs: list[np.ndarray], gain: np.ndarray, phases: int) -> np.ndarray:
    """(M,) group of each channel: the channels whose rounded residual is most often nonzero first."""
    m = seqs[0].shape[1]
    active = np.zeros(m)
    for s in seqs:
        q = np.round(s * gain[None, :, None, None])
        active += (q[1:] != q[:-1]).sum(axis=(0, 2, 3))
    rank = np.empty(m, dtype=np.int64)
    rank[np.argsort(-active, kind="stable")] = np.arange(m)
    return rank * phases // m


def quantise_contexts(counts: np.ndarray, m: int, k: int, iterations: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Residual counts per context (M * contexts_per_channel, S) -> (context map, K frequency
    tables): each context goes to the table that codes its (smoothed) counts in the fewest bits."""
    per_channel = counts.shape[0] // m
    grouped = counts.reshape(m, BUCKETS, per_channel // BUCKETS, -1)
    parent = grouped.sum(axis=2, keepdims=True)  # channel x bucket, over history and activity
    parent = np.where(parent.sum(-1, keepdims=True) > 0, parent, grouped.sum(axis=(1, 2), keepdims=True))  # channel
    parent = np.where(parent.sum(-1, keepdims=True) > 0, parent, counts.sum(0))  # everything
    prior = parent / parent.sum(-1, keepdims=True)
    smoothed = (grouped + SMOOTHING * prior).reshape(counts.shape)
    weight = smoothed.sum(1)
    zero_share = smoothed[:, counts.shape[1] // 2] / weight
    order = np.argsort(zero_share, kind="stable")
    assign = np.empty(counts.shape[0], dtype=np.int64)
    assign[order] = np.minimum(np.arange(counts.shape[0]) * k // counts.shape[0], k - 1)
    for _ in range(iterations):
        pooled = np.zeros((k, counts.shape[1]))
        np.add.at(pooled, assign, smoothed)
        used = pooled.sum(1) > 0
        bits = -np.log2(quantize_pmf(pooled) / TOTAL)
        cost = smoothed @ bits.T
        cost[:, ~used] = np.inf
        new = cost.argmin(1)
        if np.array_equal(new, assign):
            break
        assign = new
    pooled = np.zeros((k, counts.shape[1]))
    np.add.at(pooled, assign, counts)
    pooled += 1e-3 * prior.reshape(-1, counts.shape[1]).mean(0)  # an empty table still gets a shape
    return assign, quantize_pmf(pooled)


def _count(seqs: list[np.ndarray], gain: np.ndarray, lt: LevelTables, lam: float, gop: int, rd: bool):
    """(residual counts per context and symbol, flag counts per context, P-frame bits)."""
    symbols = 2 * lt.radius + 1
    res = np.zeros(lt.context_map.size * symbols, dtype=np.float64)
    flg = np.zeros((FLAG_CONTEXTS, 2), dtype=np.float64)
    bits = 0.0
    for seq in seqs:
        ref = history = None
        coded = []
        for t in range(len(seq)):
            y = seq[t].astype(np.float64) * gain[:, None, None]
            if t % gop == 0:
                ref, history = np.round(y).astype(np.int64), None
                continue
            p = encode_pframe(y, ref, history, lt, lam, rd=rd)
            bits += 8 * len(p.string)
            np.add.at(flg, (p.flag_contexts, p.history.flags), 1)
            coded.append(p.residual_contexts * symbols + p.residual_symbols + lt.radius)
            ref, history = p.y_hat, p.history
        if coded:
            res += np.bincount(np.concatenate(coded), minlength=res.size)
    return res.reshape(lt.context_map.size, symbols), flg, bits


def train(model: str, n_rendered: int, render_frames: int, gop: int, k: int, layout: Layout,
          n_levels: int | None = None, max_video_frames: int = 0) -> tuple[TemporalTables, dict]:
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    codec = Codec(model)
    seqs, info = training_latents(codec, n_rendered, render_frames, max_video_frames)
    t1 = time.perf_counter()
    net = codec.net
    m = seqs[0].shape[1]
    mid = net.levels // 2
    energy = synthesis_energy(codec, seqs[0][0] * net.gain.abs()[mid].detach().numpy()[:, None, None], mid)
    levels, log = [], []
    for level in range(n_levels or net.levels):
        gain = net.gain.abs()[level].detach().double().numpy()
        inverse = net.inverse_gain.abs()[level].detach().double().numpy()
        weights = energy * inverse**2
        lam = rd_lambda(codec, level + 1)  # counted at the model's own trade-off (the encoder's default multiplier
        # 0.5 measured 1 % better on these tables, so the tables are not retrained for it)
        diffs = [np.abs(np.round(s[1:] * gain[:, None, None]) - np.round(s[:-1] * gain[:, None, None])).max() for s in seqs]
        radius = int(min(255, max(16, math.ceil(1.5 * max(diffs)) + 4)))
        phase = channel_groups(seqs, gain, layout.phases)
        contexts = m * layout.contexts_per_channel
        lt = LevelTables(radius, quantize_pmf(np.ones((FLAG_CONTEXTS, 2))), quantize_pmf(np.ones((1, 2 * radius + 1))),
                         np.zeros(contexts, dtype=np.int64), phase, weights, layout)
        history = []
        for rd in (False, True, True):  # first the rounded residuals, then what the RD encoder codes
            res, flg, bits = _count(seqs, gain, lt, lam, gop, rd)
            if rd:
                history.append(bits)
            context_map, freqs = quantise_contexts(res, m, k)
            lt = LevelTables(radius, quantize_pmf(flg), freqs, context_map, phase, weights, layout)
        levels.append(lt)
        log.append({"level": level + 1, "radius": radius, "p_bits_per_pass": history})
        print(f"level {level + 1}: radius {radius}, P-frame bits of the training set per RD pass {history}", flush=True)
    tables = TemporalTables(codec.model_hash, tuple(levels), "")
    record = {
        "train_seconds": round(time.perf_counter() - t0, 1),
        "counting_seconds": round(time.perf_counter() - t1, 1),
        "threads": 2,
        "trained_on": info,
        "gop": gop,
        "tables_per_level": k,
        "layout": dataclasses.asdict(layout),
        "levels": log,
    }
    return tables, record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="hyperprior-mse")
    parser.add_argument("--rendered", type=int, default=4)
    parser.add_argument("--render-frames", type=int, default=30)
    parser.add_argument("--gop", type=int, default=10)
    parser.add_argument("--max-video-frames", type=int, default=0,
                        help="read only this many frames of each training video (0: all; for dry runs)")
    parser.add_argument("--tables", type=int, default=64, help="shared residual tables per level")
    parser.add_argument("--block", type=int, default=Layout.block)
    parser.add_argument("--phases", type=int, default=Layout.phases)
    parser.add_argument("--no-history", action="store_true")
    parser.add_argument("--no-neighbours", action="store_true")
    parser.add_argument("--no-sign-flip", action="store_true")
    parser.add_argument("--levels", type=int, help="train only the first N levels (experiments with --out)")
    parser.add_argument("--out", type=Path, help="write the tables here instead of registering them in the manifest")
    args = parser.parse_args(argv)
    layout = Layout(args.block, args.phases, not args.no_history, not args.no_neighbours, not args.no_sign_flip)
    if args.levels and not args.out:
        parser.error("--levels is for experiments: give --out too (the shipped tables cover every level)")
    tables, record = train(args.model, args.rendered, args.render_frames, args.gop, args.tables, layout, args.levels,
                           args.max_video_frames)
    data = tables.to_bytes()
    digest = TemporalTables.from_bytes(data).digest
    if args.out:
        args.out.write_bytes(data)
        args.out.with_suffix(".json").write_text(json.dumps({"sha256": digest, **record}, indent=1))
        print(json.dumps({"file": str(args.out), "sha256": digest, **record}, indent=1))
        return
    name = f"{args.model}.temporal.npz"
    (WEIGHTS_DIR / name).write_bytes(data)
    manifest = load_manifest()
    manifest[args.model]["temporal"] = {"file": name, "sha256": digest, "bytes": len(data), **record}
    write_manifest(MANIFEST, manifest)
    print(json.dumps({"file": name, "sha256": digest, **record}, indent=1))


if __name__ == "__main__":
    main()
