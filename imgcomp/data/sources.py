"""Where the real images come from: Debian packages, fetched with apt, never a model hub.

Only real photographs are listed (most wallpapers are rendered art). The validation split is
fixed by file name so every run, on every machine, evaluates on the same images.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    package: str
    root: str  # folder inside the extracted package
    files: tuple[str, ...]


MATE_NATURE = Source(
    "mate-backgrounds",
    "usr/share/backgrounds/mate/nature",
    (
        "Aqua.jpg", "Blinds.jpg", "Dune.jpg", "FreshFlower.jpg", "Garden.jpg", "GreenMeadow.jpg",
        "LadyBird.jpg", "RainDrops.jpg", "Storm.jpg", "TwoWings.jpg", "Wood.jpg", "YellowFlower.jpg",
    ),
)

# The photographic wallpapers of plasma-workspace-wallpapers (checked by eye; the rest are renders).
PLASMA_PHOTOS = Source(
    "plasma-workspace-wallpapers",
    "usr/share/wallpapers",
    (
        "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf",
        "Grey", "Kite", "OneStandsOut", "Path", "Volna", "summer_1am",
    ),
)

SKIMAGE = Source(
    "python3-skimage",
    "usr/lib/python3/dist-packages/skimage/data",
    (
        "astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "motorcycle_right.png",
        "rocket.jpg", "camera.png", "grass.png", "gravel.png", "brick.png",
    ),
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
)

VIDEOS = Source(
    "opencv-doc",
    "usr/share/doc/opencv-doc/examples/data",
    ("vtest.avi", "tree.avi"),
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
