"""Regenerate the small real-image fixtures committed under test/fixtures (needs `make data`)."""

from pathlib import Path

import cv2

from imgcomp.data.crops import read_rgb
from imgcomp.video import read_video

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "test" / "fixtures" / "images"
CROPS = {  # stem: (source, top, left, height, width)
    "astronaut_odd": ("data/images/val/skimage-astronaut.png", 40, 150, 131, 97),
    "baboon": ("data/images/val/opencv-baboon.png", 100, 100, 160, 176),
    "home": ("data/images/val/opencv-home.png", 60, 120, 144, 200),
    "fruits": ("data/images/val/opencv-fruits.png", 0, 0, 176, 240),
}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for stem, (source, top, left, h, w) in CROPS.items():
        image = read_rgb(ROOT / source)[top : top + h, left : left + w]
        cv2.imwrite(str(OUT / f"{stem}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    frames, _ = read_video(ROOT / "data" / "video" / "vtest.avi", max_frames=1)
    small = cv2.resize(frames[0], (384, 288), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(OUT / "vtest_frame0.png"), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))


if __name__ == "__main__":
    main()
