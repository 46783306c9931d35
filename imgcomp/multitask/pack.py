"""The multi-task data pack: rendered frames with their labels and what the codec makes of them.

    imgcomp multitask pack [--train 4000] [--test 200] [--model hyperprior-mse]

Each split is a folder of .npy arrays (one row per frame) that training memory-maps:

* ``rgb`` uint8 (N, H, W, 3) - the rendered frame (the "original image" input)
* ``decoded`` uint8 (N, H, W, 3) - the frame after encode + decode at ``quality``
* ``latent`` float16 (N, M, h, w) - ``Codec.decode_latent`` of the same payload
* ``quality`` uint8 (N,) - the level each training frame was coded at (drawn per seed, so the
  heads learn every level the rate controller may pick); the test split is coded at every level
  and keeps the payloads themselves (``payloads.npz``) so that evaluation times the real decode
* ``depth`` float16 (N, H, W) metres, ``normals`` int8 (N, H, W, 3) as round(127 n),
  ``labels`` uint8 (N, H, W)

The payloads come from the real encoder (rANS bitstream); the latent and decoded image are read
back from those bytes.
"""

from __future__ import annotations

import json
import multiprocessing as mp
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from imgcomp.defaults import DEFAULT_MODEL
from imgcomp.multitask.scenes import TEST_FIRST_SEED, TRAIN_FIRST_SEED, render_scene

DEFAULT_PACK_DIR = Path("data/multitask")
FRAME_SIZE = 256
NORMAL_SCALE = 127.0


@dataclass(frozen=True)
class PackSpec:
    model: str = DEFAULT_MODEL
    n_train: int = 4000
    n_test: int = 200
    size: int = FRAME_SIZE

    def folder(self, root: Path = DEFAULT_PACK_DIR) -> Path:
        return Path(root) / f"{self.model}-{self.size}"


def training_quality(seed: int, levels: int) -> int:
    """The quality level a training frame is coded at: uniform over levels, fixed by seed."""
    return 1 + int(np.random.default_rng([seed, 7]).integers(levels))


_codec = None


def _worker_codec(model: str):
    global _codec
    if _codec is None:
        import torch

        from imgcomp.codec import Codec

        torch.set_num_threads(1)
        _codec = Codec(model)
    return _codec


def _frame_record(task: tuple[str, int, int, tuple[int, ...]]) -> dict:
    model, seed, size, qualities = task
    codec = _worker_codec(model)
    frame = render_scene(seed, size, size)
    coded = []
    for quality in qualities:
        payload = codec.encode(frame.rgb, quality=quality)
        coded.append(
            {
                "quality": quality,
                "payload": payload,
                "decoded": codec.decode(payload),
                "latent": codec.decode_latent(payload)[0].numpy().astype(np.float16),
            }
        )
    return {
        "seed": seed,
        "rgb": frame.rgb,
        "depth": frame.depth.astype(np.float16),
        "normals": np.round(frame.normals * NORMAL_SCALE).astype(np.int8),
        "labels": frame.labels,
        "coded": coded,
    }


def _open(folder: Path, name: str, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    return np.lib.format.open_memmap(folder / f"{name}.npy", mode="w+", dtype=dtype, shape=shape)


def build_split(folder: Path, model: str, seeds: list[int], size: int, all_levels: bool, workers: int = 2) -> None:
    """Render, encode and decode every seed; write the split's arrays into `folder`."""
    from imgcomp.codec import Codec

    probe = Codec(model)
    levels = probe.net.levels
    latent_shape = tuple(probe.decode_latent(probe.encode(np.zeros((size, size, 3), np.uint8))).shape[1:])
    del probe
    qualities_of = (lambda s: tuple(range(1, levels + 1))) if all_levels else (lambda s: (training_quality(s, levels),))
    per_frame = levels if all_levels else 1
    n = len(seeds)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "rgb": _open(folder, "rgb", "uint8", (n, size, size, 3)),
        "depth": _open(folder, "depth", "float16", (n, size, size)),
        "normals": _open(folder, "normals", "int8", (n, size, size, 3)),
        "labels": _open(folder, "labels", "uint8", (n, size, size)),
        "decoded": _open(folder, "decoded", "uint8", (n, per_frame, size, size, 3)),
        "latent": _open(folder, "latent", "float16", (n, per_frame, *latent_shape)),
    }
    quality = np.zeros((n, per_frame), dtype=np.uint8)
    payloads: dict[str, np.ndarray] = {}
    tasks = [(model, s, size, qualities_of(s)) for s in seeds]
    with mp.get_context("spawn").Pool(workers) as pool:
        results = pool.imap(_frame_record, tasks, chunksize=4)
        for i, record in enumerate(tqdm(results, total=n, desc=f"pack {folder.name}")):
            for key in ("rgb", "depth", "normals", "labels"):
                arrays[key][i] = record[key]
            for j, coded in enumerate(record["coded"]):
                arrays["decoded"][i, j] = coded["decoded"]
                arrays["latent"][i, j] = coded["latent"]
                quality[i, j] = coded["quality"]
                if all_levels:
                    payloads[f"{i}_{coded['quality']}"] = np.frombuffer(coded["payload"], dtype=np.uint8)
    for array in arrays.values():
        array.flush()
    np.save(folder / "quality.npy", quality)
    np.save(folder / "seeds.npy", np.asarray(seeds, dtype=np.int64))
    if all_levels:
        np.savez(folder / "payloads.npz", **payloads)
    (folder / "meta.json").write_text(
        json.dumps({"model": model, "size": size, "frames": n, "levels": levels, "all_levels": all_levels}, indent=1)
    )


def build_pack(spec: PackSpec, root: Path = DEFAULT_PACK_DIR, workers: int = 2) -> Path:
    folder = spec.folder(root)
    train_seeds = list(range(TRAIN_FIRST_SEED, TRAIN_FIRST_SEED + spec.n_train))
    test_seeds = list(range(TEST_FIRST_SEED, TEST_FIRST_SEED + spec.n_test))
    build_split(folder / "test", spec.model, test_seeds, spec.size, all_levels=True, workers=workers)
    build_split(folder / "train", spec.model, train_seeds, spec.size, all_levels=False, workers=workers)
    return folder


@dataclass
class Split:
    """A pack split, memory-mapped. ``decoded``/``latent``/``quality`` have a level axis."""

    folder: Path
    rgb: np.ndarray
    depth: np.ndarray
    normals: np.ndarray
    labels: np.ndarray
    decoded: np.ndarray
    latent: np.ndarray
    quality: np.ndarray
    seeds: np.ndarray
    meta: dict

    def __len__(self) -> int:
        return len(self.seeds)

    def payload(self, index: int, quality: int) -> bytes:
        with np.load(self.folder / "payloads.npz") as payloads:
            return payloads[f"{index}_{quality}"].tobytes()

    def level_index(self, quality: int) -> int:
        """Column of `quality` in the level axis of a split coded at every level."""
        if not self.meta["all_levels"]:
            raise ValueError(f"{self.folder} holds one level per frame, not every level")
        if not 1 <= quality <= self.meta["levels"]:
            raise ValueError(f"quality must be 1..{self.meta['levels']}, got {quality}")
        return quality - 1


def load_split(folder: Path) -> Split:
    folder = Path(folder)
    if not (folder / "meta.json").is_file():
        raise FileNotFoundError(f"no multi-task pack at {folder}: run `imgcomp multitask pack` first")
    arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in
              ("rgb", "depth", "normals", "labels", "decoded", "latent", "quality", "seeds")}
    return Split(folder=folder, meta=json.loads((folder / "meta.json").read_text()), **arrays)
