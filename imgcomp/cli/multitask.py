"""`imgcomp multitask pack|eval`: build the rendered data pack, evaluate the shipped heads."""

from __future__ import annotations

import argparse
from pathlib import Path


def _cmd_pack(args: argparse.Namespace) -> int:
    from imgcomp.multitask.pack import PackSpec, build_pack

    spec = PackSpec(model=args.model, n_train=args.train, n_test=args.test, size=args.size)
    print(f"wrote {build_pack(spec, args.root, workers=args.workers)}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from imgcomp.multitask.evaluate import run_multitask_eval

    report = run_multitask_eval(
        quality=args.quality, out_dir=args.out, pack=args.pack, timing_frames=args.timing_frames, sweep=not args.no_sweep,
        camera_frames=args.camera_frames,
    )
    print(report.markdown())
    print(f"\nwrote {args.out}/multitask.md, multitask.json and grid.jpg")
    return 0


def register_multitask_commands(sub: argparse._SubParsersAction) -> None:
    from imgcomp.multitask.pack import DEFAULT_MODEL, DEFAULT_PACK_DIR, FRAME_SIZE

    parser = sub.add_parser("multitask", help="depth / segmentation / normals heads on the codec features")
    tasks = parser.add_subparsers(dest="multitask_command", required=True)

    p = tasks.add_parser("pack", help="render scenes, code them, write the train/test pack (data/multitask)")
    p.add_argument("--model", default=DEFAULT_MODEL, help="codec whose latents and decoded images go in the pack")
    p.add_argument("--train", type=int, default=4000, help="training frames (seeds 0..N-1)")
    p.add_argument("--test", type=int, default=200, help="test frames (seeds from 1,000,000)")
    p.add_argument("--size", type=int, default=FRAME_SIZE, help="square frame side in pixels")
    p.add_argument("--root", type=Path, default=DEFAULT_PACK_DIR)
    p.add_argument("--workers", type=int, default=2)
    p.set_defaults(func=_cmd_pack)

    p = tasks.add_parser("eval", help="features-only head vs decoded/original-image baselines, table + grid")
    p.add_argument("--quality", type=int, default=3, help="codec quality level of the main table")
    p.add_argument("--pack", type=Path, help="pack folder (default: data/multitask/<codec>-256)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/multitask"))
    p.add_argument("--timing-frames", type=int, default=50)
    p.add_argument("--camera-frames", type=int, default=20, help="640x480 frames timed as well (0: none)")
    p.add_argument("--no-sweep", action="store_true", help="skip the per-quality table")
    p.set_defaults(func=_cmd_eval)
