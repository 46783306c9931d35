"""The `imgcomp bag ...` commands; `imgcomp.cli.main` adds them with `register_bag_commands(sub)`.

    imgcomp bag compress IN OUT [--topic T] [--model M] [--quality Q] [--keyframe-interval N] [--effort N] [--storage mcap|sqlite3]
    imgcomp bag decompress IN OUT [--start SECONDS] [--storage mcap|sqlite3]
    imgcomp bag info BAG [--json]
    imgcomp bag eval COMPRESSED RAW [--out FILE] [--no-per-frame]
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from imgcomp.cli.support import device_arg, effort_arg, keyframe_interval_arg, run_command
from imgcomp.defaults import DEFAULT_KEYFRAME_INTERVAL

__all__ = ["register_bag_commands"]

_STORAGES = ("mcap", "sqlite3")
_DEFAULT_TOPIC = "/camera/image_raw"  # imgcomp.rosbag.DEFAULT_TOPIC, not imported: parsing stays cheap


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")


def _show(data: Any, as_json: bool) -> None:
    print(json.dumps(data.to_dict() if hasattr(data, "to_dict") else data, indent=2, allow_nan=False) if as_json else data)


def _run(action: Any) -> int:
    """Run a bag tool; user errors (a missing, damaged or unreadable bag, an existing OUT,
    an unknown model, ...) become one line on stderr and exit status 1."""
    return run_command("imgcomp bag", action)


def _cmd_compress(args: argparse.Namespace) -> int:
    from imgcomp.rosbag import compress

    _setup_logging()

    def action() -> int:
        summary = compress(
            args.input, args.output, topic=args.topic, model=args.model, quality=args.quality,
            storage=args.storage, device=args.device, overwrite=args.overwrite, progress=not args.no_progress,
            effort=args.effort,
            keyframe_interval=args.keyframe_interval,
        )
        _show(summary, args.json)
        return 0

    return _run(action)


def _cmd_decompress(args: argparse.Namespace) -> int:
    from imgcomp.rosbag import decompress

    _setup_logging()

    def action() -> int:
        summary = decompress(
            args.input, args.output, storage=args.storage, device=args.device,
            overwrite=args.overwrite, progress=not args.no_progress, start=args.start,
        )
        _show(summary, args.json)
        return 0

    return _run(action)


def _cmd_info(args: argparse.Namespace) -> int:
    from imgcomp.rosbag import format_info, info

    def action() -> int:
        report = info(args.bag)
        _show(report if args.json else format_info(report), args.json)
        return 0

    return _run(action)


def _cmd_eval(args: argparse.Namespace) -> int:
    from imgcomp.rosbag import evaluate

    _setup_logging()

    def action() -> int:
        report = evaluate(
            args.compressed, args.raw, device=args.device, ms_ssim=not args.no_ms_ssim,
            per_frame=not args.no_per_frame, progress=not args.no_progress,
        )
        text = json.dumps(report, indent=2, allow_nan=False)
        if args.out:
            _write_atomically(args.out, text + "\n")
            summary = {k: report[k] for k in ("frames", "mean", "unmatched", "failed")}
            print(json.dumps(summary, indent=2, allow_nan=False))
            print(f"wrote {args.out}")
        else:
            print(text)
        return 0

    return _run(action)


def _write_atomically(path: Path, text: str) -> None:
    """Replace `path` only with the whole report: a kill leaves the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not seconds >= 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds >= 0")
    return seconds


def register_bag_commands(sub: Any) -> argparse.ArgumentParser:
    """Add `bag` with compress / decompress / info / eval to an argparse subparsers object."""
    bag = sub.add_parser(
        "bag",
        help="convert rosbag2 folders (MCAP/SQLite3) raw images <-> compressed features, without ROS",
        description="Convert, inspect and evaluate rosbag2 folders (MCAP or SQLite3) with the rosbags library.",
    )
    commands = bag.add_subparsers(dest="bag_command", required=True)

    def common(p: argparse.ArgumentParser, storage: bool = True, device: bool = True) -> None:
        if storage:
            p.add_argument("--storage", choices=_STORAGES, default="mcap", help="output storage (default: mcap)")
            p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists (once the new bag is complete)")
        if device:
            p.add_argument("--device", default="cpu", type=device_arg, help="cpu, cuda or cuda:N")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = commands.add_parser(
        "compress",
        help="images of a topic -> imgcomp_msgs/CompressedFeatures on <topic>/imgcomp; other topics copied",
    )
    p.add_argument("input", type=Path, metavar="IN", help="rosbag2 folder (or .mcap/.db3 file) to read")
    p.add_argument("output", type=Path, metavar="OUT", help="rosbag2 folder to create (written via OUT.partial)")
    p.add_argument("--topic", default=_DEFAULT_TOPIC,
                   help=f"sensor_msgs/Image or JPEG/PNG CompressedImage topic (default: {_DEFAULT_TOPIC})")
    p.add_argument("--model", help="registry name of the model (default: the codec's default)")
    p.add_argument("--quality", type=int, help="quality level 1..levels (default: the model's middle level)")
    p.add_argument("--effort", type=effort_arg, default=0,
                   help="encoder effort 0..3: refine each frame's latents for fewer bits (0: one pass, the default; "
                        "3: about 200 refinement steps per frame, minutes per frame on a CPU; key frames only)")
    p.add_argument("--keyframe-interval", type=keyframe_interval_arg, default=None,
                   help="temporal mode: a key frame every N frames, P-frames in between; 0: key frames only "
                   f"(default: {DEFAULT_KEYFRAME_INTERVAL}, as the encoder node; 0 with --effort)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    common(p)
    p.set_defaults(func=_cmd_compress)

    p = commands.add_parser(
        "decompress", help="CompressedFeatures topics <t>/imgcomp -> sensor_msgs/Image on <t> (or <t>/decoded)"
    )
    p.add_argument("input", type=Path, metavar="IN")
    p.add_argument("output", type=Path, metavar="OUT")
    p.add_argument("--start", type=_seconds, metavar="SECONDS",
                   help="write only from this many seconds after the bag's first message on; every stream "
                   "is decoded from its key frame before that, so the first image is right")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    common(p)
    p.set_defaults(func=_cmd_decompress)

    p = commands.add_parser("info", help="per compressed topic: frames, models, qualities, mean bpp, bitrate")
    p.add_argument("bag", type=Path, metavar="BAG")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_cmd_info)

    p = commands.add_parser("eval", help="PSNR / MS-SSIM of a compressed bag against its raw bag (JSON)")
    p.add_argument("compressed", type=Path, metavar="COMPRESSED")
    p.add_argument("raw", type=Path, metavar="RAW")
    p.add_argument("--out", type=Path, help="write the JSON report here (default: print it)")
    p.add_argument("--no-per-frame", action="store_true", help="means only, no per-frame list")
    p.add_argument("--no-ms-ssim", action="store_true", help="PSNR only (faster)")
    common(p, storage=False)
    p.set_defaults(func=_cmd_eval)
    return bag
