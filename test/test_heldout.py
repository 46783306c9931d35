"""The held-out-source split stays out of training: no held-out package or video in any training
list, and every training reader (data preparation, crop loader, GPU pack, temporal trainer)
refuses images prepared from one."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from imgcomp.data import sources
from imgcomp.data.crops import load_training_images
from imgcomp.data.heldout import HELDOUT_DIR, downscale_to_pixels
from imgcomp.data.prepare import SOURCE_PREFIX, prepare_images
from imgcomp.data.sources import (
    EXTRA_TRAINING_SOURCES,
    HELDOUT_PACKAGES,
    HELDOUT_SOURCES,
    HELDOUT_STEM_PREFIXES,
    HeldOutSourceError,
    check_training_source,
    check_training_video,
)
from imgcomp.eval.rd import SPLITS

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"


def _load_pack_script():
    spec = importlib.util.spec_from_file_location("pack_training_images", REPO / "scripts" / "pack_training_images.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(path: Path, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 256, (40, 48, 3), dtype=np.uint8))


def test_no_training_list_names_a_heldout_package_or_video():
    training = (*sources.PHOTO_SOURCES, *EXTRA_TRAINING_SOURCES)
    assert not {s.package for s in training} & HELDOUT_PACKAGES
    assert not set(sources.PACKAGES) & HELDOUT_PACKAGES  # what `imgcomp data` fetches for training
    for source in training:
        check_training_source(source)
    check_training_video(sources.TRAIN_VIDEO)
    for video in (*sources.HELDOUT_VIDEO_FRAMES, sources.DEMO_VIDEO):
        with pytest.raises(HeldOutSourceError):
            check_training_video(video)
    # The stem prefixes the guards look for are the ones the held-out files are written with.
    assert {SOURCE_PREFIX[s.package] + "-" for s in HELDOUT_SOURCES} == set(HELDOUT_STEM_PREFIXES)
    assert not any(SOURCE_PREFIX[s.package] + "-" in HELDOUT_STEM_PREFIXES for s in training)
    assert SPLITS["heldout"].images == Path("data/images") / HELDOUT_DIR


def test_preparing_training_images_from_a_heldout_source_fails(tmp_path):
    for source in HELDOUT_SOURCES:
        with pytest.raises(HeldOutSourceError, match="held-out source"):
            prepare_images(tmp_path / "raw", tmp_path / "images", sources=(source,))
    assert not (tmp_path / "images").exists()


def test_training_readers_refuse_images_of_a_heldout_source(tmp_path):
    train = tmp_path / "train"
    _write(train / "mate-Aqua_s0.png")
    assert len(load_training_images(train)) == 1
    _write(train / "lomiri-Wine_by_Jakkub_Mede.png", 1)
    with pytest.raises(HeldOutSourceError, match="lomiri-Wine"):
        load_training_images(train)
    pack = _load_pack_script()
    with pytest.raises(HeldOutSourceError):
        pack.pack(tmp_path, tmp_path / "pack")


def test_the_gpu_pack_copies_the_training_photos_losslessly_and_never_the_heldout_split(tmp_path):
    source = tmp_path / "images"
    _write(source / "train" / "mate-Aqua_s0.png")
    _write(source / "val" / "mate-Storm.png", 1)
    _write(source / "heldout" / "lomiri-Wine_by_Jakkub_Mede.png", 2)
    pack = _load_pack_script()
    total = pack.pack(source, tmp_path / "pack")
    packed = sorted(p.relative_to(tmp_path / "pack").as_posix() for p in (tmp_path / "pack").rglob("*.webp"))
    assert packed == ["train/mate-Aqua_s0.webp", "val/mate-Storm.webp"] and total > 0
    assert np.array_equal(cv2.imread(str(tmp_path / "pack/train/mate-Aqua_s0.webp")), cv2.imread(str(source / "train/mate-Aqua_s0.png")))


def test_downscale_to_pixels_keeps_the_aspect_and_never_upscales():
    image = np.zeros((3000, 4000, 3), np.uint8)
    small = downscale_to_pixels(image, 750_000)
    assert small.shape[0] * small.shape[1] <= 750_000 and abs(small.shape[1] / small.shape[0] - 4 / 3) < 0.01
    assert downscale_to_pixels(image[:100, :100], 750_000).shape == (100, 100, 3)


@pytest.mark.skipif(not (DATA / "images" / "train").is_dir(), reason="data/ not prepared (`make data`)")
def test_the_prepared_training_folders_hold_nothing_of_the_heldout_sources():
    for folder in ("train", "val", "val_full"):
        stems = [p.stem for p in (DATA / "images" / folder).glob("*.*")]
        sources.check_training_names(stems, folder)
    pack = REPO / ".pack" / "images"
    if pack.is_dir():
        sources.check_training_names([p.stem for p in pack.rglob("*.webp")], ".pack/images")
