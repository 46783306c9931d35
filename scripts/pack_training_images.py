"""Copy data/images/{train,val} to .pack/images as lossless WebP (the same pixels in about two
thirds of the bytes), and tree.avi to .pack/video, so that the training data fits what the GPU
tool carries (64 MiB, with the repository and the wheels). The held-out-source split
(images/heldout) is never packed, and a held-out image in train/ or val/ stops the pack.

    python3 scripts/pack_training_images.py [--extra native frames photos] [--max-mib N]

--extra adds groups of data/images/train_extra (`imgcomp data --extra`) into the pack's train/,
in the order given, up to the budget: by default what the 64 MiB leave after the checkout's
files, .whl/ and a 2 MiB margin. Each addition is reported in MiB.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from imgcomp.data.sources import TRAIN_VIDEO, check_training_names  # noqa: E402

CARRY_LIMIT = 64 * 2**20
MARGIN = 2 * 2**20


def _webp(path: Path, out: Path) -> int:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), image, [cv2.IMWRITE_WEBP_QUALITY, 101])  # > 100: lossless
    if not np.array_equal(cv2.imread(str(out), cv2.IMREAD_COLOR), image):
        raise RuntimeError(f"{out} is not lossless")
    return out.stat().st_size


def pack(source: Path, target: Path, extra_groups: tuple[str, ...] = (), budget: int | None = None) -> int:
    """Pack train/ and val/ (always), then the extra groups while the total stays under `budget`
    bytes; returns the bytes written."""
    for split in ("train", "val"):
        check_training_names([p.stem for p in (source / split).glob("*.png")], f"{source / split}")
    total = 0
    for split in ("train", "val"):
        for path in sorted((source / split).glob("*.png")):
            total += _webp(path, target / split / f"{path.stem}.webp")
    if budget is not None and total > budget:
        raise RuntimeError(f"train/ and val/ alone take {total / 2**20:.1f} MiB, over the {budget / 2**20:.1f} MiB budget")
    extra = source / "train_extra"
    for group in extra_groups:
        paths = sorted(extra.glob(f"{group}-*.png"))
        check_training_names([p.stem for p in paths], str(extra))
        added = count = 0
        for path in paths:
            out = target / "train" / f"{path.stem}.webp"
            size = _webp(path, out)
            if budget is not None and total + size > budget:
                out.unlink()
                print(f"  {group}: budget reached after {count} of {len(paths)} files")
                break
            total, added, count = total + size, added + size, count + 1
        print(f"  + {group}: {count} files, {added / 2**20:.1f} MiB")
    return total


def checkout_bytes(repo: Path) -> int:
    """What the device tool carries of the working tree: tracked and untracked-not-ignored files."""
    names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=repo, check=True,
                           capture_output=True).stdout.decode().split("\0")
    return sum((repo / n).stat().st_size for n in names if n and (repo / n).is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", type=Path, default=Path("data/images"))
    parser.add_argument("target", nargs="?", type=Path, default=Path(".pack/images"))
    parser.add_argument("--extra", nargs="*", default=[], help="groups of data/images/train_extra to add")
    parser.add_argument("--max-mib", type=float, help="budget for the images (default: what 64 MiB leave)")
    args = parser.parse_args()
    repo = Path(__file__).resolve().parents[1]
    wheels = sum(p.stat().st_size for p in (repo / ".whl").glob("*.whl"))
    video = Path("data/video") / TRAIN_VIDEO
    fixed = checkout_bytes(repo) + wheels + (video.stat().st_size if video.exists() else 0)
    budget = int(args.max_mib * 2**20) if args.max_mib else CARRY_LIMIT - MARGIN - fixed
    if args.target.exists():
        shutil.rmtree(args.target)
    total = pack(args.source, args.target, tuple(args.extra), budget)
    if video.exists():  # the temporal tables' training video (imgcomp/training/temporal.py)
        (args.target.parent / "video").mkdir(parents=True, exist_ok=True)
        shutil.copy2(video, args.target.parent / "video" / TRAIN_VIDEO)
    carried = fixed + total
    print(f"{total / 2**20:.1f} MiB in {args.target}; with the checkout, .whl/ and {TRAIN_VIDEO}: "
          f"{carried / 2**20:.1f} of 64 MiB")
    if carried > CARRY_LIMIT:
        raise SystemExit("over the 64 MiB the device tool carries")


if __name__ == "__main__":
    main()
