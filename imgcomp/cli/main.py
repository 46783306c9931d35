"""The `imgcomp` command line: train, eval, bench, demo, export, bag tools."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from imgcomp.cli.support import Parser, device_arg, effort_arg, keyframe_interval_arg, run_command
from imgcomp.defaults import BACKENDS, DEFAULT_KEYFRAME_INTERVAL, DEFAULT_MODEL, MAX_EFFORT


def _cmd_train(args: argparse.Namespace) -> int:
    from imgcomp.multitask.train import is_multitask_config

    if is_multitask_config(args.config):
        return _train_multitask(args)
    from imgcomp.training.rd import TrainConfig, train

    config = TrainConfig.from_yaml(args.config)
    _apply_overrides(config, args, ("batch_size", "crop", "lr", "init_from", "precision"))
    checkpoint = train(config, device=args.device, resume=args.resume, max_minutes=args.max_minutes)
    print(f"checkpoint: {checkpoint}")
    if args.export or args.export_dir:
        from imgcomp.models.registry import WEIGHTS_DIR, export_weights

        print(f"exported: {export_weights(checkpoint, out_dir=args.export_dir or WEIGHTS_DIR)}")
    return 0


def _apply_overrides(config: object, args: argparse.Namespace, keys: tuple[str, ...]) -> None:
    """Command-line values over the YAML config's (steps, run folder, `keys`); torch threads."""
    import torch

    if args.run_dir is not None:
        config.run_dir = str(args.run_dir)
    for key in ("steps", *keys):
        if getattr(args, key) is not None:
            setattr(config, key, getattr(args, key))
    if args.threads:
        torch.set_num_threads(args.threads)


def _train_multitask(args: argparse.Namespace) -> int:
    from imgcomp.multitask.train import MultiTaskTrainConfig, train_multitask

    if args.crop is not None:
        raise SystemExit("--crop applies to codecs, not to multi-task heads")
    config = MultiTaskTrainConfig.from_yaml(args.config)
    _apply_overrides(config, args, ("batch_size", "lr", "init_from", "precision"))
    checkpoint = train_multitask(config, device=args.device, resume=args.resume, max_minutes=args.max_minutes)
    print(f"checkpoint: {checkpoint}")
    if args.export or args.export_dir:
        from imgcomp.multitask.weights import HEADS_DIR, export_head

        print(f"exported: {export_head(checkpoint, out_dir=args.export_dir or HEADS_DIR)}")
    return 0


DEMO_FRAMES = 60  # a newcomer sees the product in minutes; --full plays the whole video


def _cmd_demo(args: argparse.Namespace) -> int:
    from imgcomp.eval.demo import run_demo

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    report = run_demo(args.video, args.out, model=args.model, quality=args.quality,
                      max_frames=None if args.full else args.frames, keyframe_interval=args.keyframe_interval)
    print()
    print(report.markdown())
    print(f"\nwrote {args.out}/report.md, report.json, side_by_side.png, the temporal stream's bag {args.out}/features_bag "
          f"and the intra mode's {args.out}/intra_bag")
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from imgcomp.data.heldout import prepare_heldout
    from imgcomp.data.prepare import prepare_all

    counts = {} if args.heldout_only or args.extra else prepare_all(args.root)
    if args.extra:
        from imgcomp.data.extra import prepare_extra

        counts["train_extra"] = prepare_extra(args.root)
    else:
        counts["heldout"] = prepare_heldout(args.root)  # after prepare_all, which rewrites images/
    print(f"prepared {counts} under {args.root}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from imgcomp.eval.rd import SPLITS, run_eval
    from imgcomp.models.registry import available_models, entropy_coded_models

    split = SPLITS[args.split]
    images, out = args.images or split.images, args.out or split.out
    label = split.label if args.images is None else ""  # an arbitrary folder: no split to name
    # Every shipped model: the entropy-coded ones at every level, then the fixed-rate families and the classical codecs.
    coded = entropy_coded_models()
    models = coded + [m for m in available_models() if m not in coded] if args.models is None else args.models
    if args.cards and args.effort:
        raise SystemExit("imgcomp eval: --cards records the one-pass encoder (effort 0); drop --cards or --effort")
    result = run_eval(images, out, models, classical=args.classical, max_images=args.max_images, label=label,
                      cache=args.cache, effort=args.effort)
    print((out / "rd.md").read_text())
    print(f"wrote {out}/rd.md, rd.json, rd.png")
    if args.cards:
        from imgcomp.models.registry import update_model_cards

        for path in update_model_cards(result):
            print(f"updated {path}")
    return 0


def _cmd_fuzz(args: argparse.Namespace) -> int:
    from imgcomp.eval.fuzz import run_fuzz, write_report

    report = run_fuzz(
        args.cases, seed=args.seed, models=args.models, max_output_pixels=args.max_output_pixels,
        timeout_s=args.timeout_s, max_rss_mb=args.max_rss_mb,
    )
    command = "python -m imgcomp fuzz " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["fuzz"] else "python -m imgcomp fuzz"
    write_report(report, args.out, command)
    print((args.out / "fuzz.md").read_text())
    return 1 if report.failure_count else 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from imgcomp.defaults import CLASSICAL_MODELS
    from imgcomp.eval.bench import run_bench
    from imgcomp.models.registry import entropy_coded_models

    run_bench(
        args.models or [*entropy_coded_models(), *CLASSICAL_MODELS], args.out, args.resolutions, args.frames,
        device=args.device, quality=args.quality, backends=tuple(args.backends), memory=args.memory,
        threads=tuple(args.threads), bag=not args.no_bag,
    )
    print((args.out / "bench.md").read_text())
    return 0


def _cmd_bench_rate(args: argparse.Namespace) -> int:
    import torch

    from imgcomp.classical import set_threads
    from imgcomp.eval.rate_bench import result_name, run_rate_bench
    from imgcomp.video import read_video

    if args.threads:
        torch.set_num_threads(args.threads)
        set_threads(args.threads)
    frames, native_fps = read_video(args.video, max_frames=args.frames)
    fps = args.fps or native_fps
    run_rate_bench(frames, args.model, args.targets, fps, args.out, device=args.device,
                   keyframe_interval=args.keyframe_interval)
    print((args.out / f"{result_name(args.keyframe_interval)}.md").read_text())
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from imgcomp.eval.compare import run_compare
    from imgcomp.models.registry import shipped_weights

    models = args.models or shipped_weights()
    result = run_compare(models, args.images, args.out, args.sizes)
    print((args.out / "compare.md").read_text())
    print(f"wrote {args.out}/compare.md, compare.json, grid.jpg")
    if args.cards:
        from imgcomp.eval.compare import update_fixed_rate_cards

        for path in update_fixed_rate_cards(result):
            print(f"updated {path}")
    return 0


def _cmd_readme(args: argparse.Namespace) -> int:
    from imgcomp.eval.readme_tables import main as refresh_readme_tables

    return refresh_readme_tables(check=args.check)


def _cmd_export(args: argparse.Namespace) -> int:
    from imgcomp.models.registry import load_model

    net, model_hash = load_model(args.model)
    out = args.out or Path("exported") / args.format
    if args.format == "onnx":
        from imgcomp.inference.graphs import export_onnx

        paths = export_onnx(net, args.model, model_hash, out)
    elif args.format == "onnx-int8":
        from imgcomp.inference.graphs import export_onnx
        from imgcomp.inference.quantize import quantize_graphs

        paths = export_onnx(net, args.model, model_hash, out) + quantize_graphs(net, args.model, out, out)
    else:
        from imgcomp.inference.tensorrt_backend import TensorRTUnavailable, build_engines

        try:
            paths = build_engines(net, args.model, model_hash, out)
        except TensorRTUnavailable as exc:
            print(f"imgcomp export: cannot build TensorRT engines here: {exc}", file=sys.stderr)
            return 2
    for path in paths:
        print(f"wrote {path}")
    backend = {"onnx": "onnxruntime", "onnx-int8": "onnxruntime-int8"}.get(args.format, "tensorrt")
    print(f"use them with Codec({args.model!r}, backend={backend!r}, "
          f"graphs_dir={str(out)!r}) or the nodes' graphs_dir parameter")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="imgcomp", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a codec or a multi-task head from a YAML config")
    p.add_argument("--config", required=True, type=Path)
    p.add_argument("--device", default="cpu", type=device_arg, help="cpu, cuda or cuda:N")
    p.add_argument("--resume", action="store_true", help="continue from runs/<name>/last.pt")
    p.add_argument("--steps", type=int, help="override the config's total steps")
    p.add_argument("--run-dir", type=Path, help="override the config's run folder")
    p.add_argument("--max-minutes", type=float, help="stop cleanly after this wall time")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--batch-size", type=int, help="override the config's batch size")
    p.add_argument("--crop", type=int, help="override the config's crop size")
    p.add_argument("--lr", type=float, help="override the config's learning rate")
    p.add_argument("--init-from", help="start from these weights (e.g. the shipped .pt) instead of random")
    p.add_argument("--precision", choices=["fp32", "tf32", "bf16"],
                   help="fp32 (default), tf32 (CUDA matmul/conv inputs), bf16 (autocast; not for entropy-coded models)")
    p.add_argument("--export", action="store_true", help="write shipped weights + model card at the end")
    p.add_argument("--export-dir", type=Path, help="write exported weights here instead of imgcomp/weights")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("data", help="fetch real photos and videos from Debian packages and prepare splits")
    p.add_argument("--root", type=Path, default=Path("data"))
    p.add_argument("--heldout-only", action="store_true", help="only the held-out-source split (images/heldout)")
    p.add_argument("--extra", action="store_true", help="only the extra training data for the GPU pack (images/train_extra)")
    p.set_defaults(func=_cmd_data)

    p = sub.add_parser("eval", help="rate-distortion of our models beside JPEG/WebP/AVIF/JPEG XL, BD-rates, plot")
    p.add_argument("--split", choices=["val", "heldout"], default="val",
                   help="val: photos held out by name from the training sources (default); heldout: sources training never read")
    p.add_argument("--images", type=Path, help="image folder instead of the split's (data/images/<split>)")
    p.add_argument("--out", type=Path, help="output folder (default: benchmarks/results/eval, or eval-heldout)")
    p.add_argument("--models", nargs="*", help="registry names (default: every shipped model; none after the flag: no model)")
    p.add_argument("--classical", nargs="*", default=["jpeg", "webp", "avif", "avif420", "jpegxl"])
    p.add_argument("--cache", type=Path,
                   help="folder of measured sweeps (e.g. out/eval-cache): reuse those with the same pixels and weights/library versions")
    p.add_argument("--max-images", type=int)
    p.add_argument("--cards", action="store_true", help="write the measured RD points into the model cards")
    p.add_argument("--effort", type=effort_arg, default=0,
                   help=f"encoder effort 0..{MAX_EFFORT} for our models (0: one pass; more: slower, fewer bits)")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("bench", help="per-frame latency beside OpenCV JPEG and CompressAI's reference")
    p.add_argument("--models", nargs="*", help="registry names (default: every entropy-coded model and the classical codecs)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/bench"))
    p.add_argument("--resolutions", nargs="*", default=["640x480"], choices=["640x480", "1280x720", "1920x1080"])
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--quality", type=int)
    p.add_argument("--device", default="cpu", type=device_arg, help="cpu or cuda (CUDA-event timing after warm-up)")
    p.add_argument("--backends", nargs="+", default=["torch"], choices=list(BACKENDS))
    p.add_argument("--threads", type=int, nargs="+", default=[0],
                   help="CPU thread counts (torch, ONNX Runtime/OpenVINO, libavif/libjxl) to run every row at, e.g. 1 2 (0: the libraries' defaults)")
    p.add_argument("--no-bag", action="store_true", help="skip the end-to-end MCAP bag columns")
    p.add_argument("--memory", action="store_true", help="also peak RSS to encode/decode the largest accepted frame (3840x2160)")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("fuzz", help="forged payloads (correct CRCs) decoded in a child process: crashes, hangs, memory")
    p.add_argument("--cases", type=int, default=50_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", nargs="*", help="registry names (default: every shipped model)")
    p.add_argument("--max-output-pixels", type=int, default=1920 * 1080, help="the decoder's cap for this run")
    p.add_argument("--timeout-s", type=float, default=10.0, help="a case using more CPU seconds than this is a hang")
    p.add_argument("--max-rss-mb", type=int, default=2048, help="a child peak RSS above this is a failure")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/fuzz"))
    p.set_defaults(func=_cmd_fuzz)

    p = sub.add_parser("compare", help="the study's comparison table (504, 1008, 640x480) and a picture grid")
    p.add_argument("--models", nargs="*", help="registry names (default: every shipped model)")
    p.add_argument("--images", type=Path, default=Path("data/images/val_full"))
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/compare"))
    p.add_argument("--sizes", nargs="+", default=["504x504", "1008x1008", "640x480"], choices=["504x504", "1008x1008", "640x480"])
    p.add_argument("--cards", action="store_true", help="write the measured rows into the fixed-rate models' cards")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("export", help="ONNX graphs (dynamic size; float or INT8) or TensorRT FP16 engines of a shipped model")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--format", choices=["onnx", "onnx-int8", "tensorrt"], default="onnx",
                   help="onnx-int8: the float graphs and their INT8 versions (for the -int8 backends)")
    p.add_argument("--out", type=Path, help="output folder (default: exported/<format>)")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("bench-rate", help="closed-loop rate control on real video frames at bitrate targets")
    p.add_argument("--video", type=Path, default=Path("data/video/vtest.avi"))
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--targets", nargs="+", type=float, default=[700.0, 900.0, 1200.0, 2000.0], help="kbit/s")
    p.add_argument("--fps", type=float, help="stream frame rate (default: the video's)")
    p.add_argument("--frames", type=int, default=120)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/rate"))
    p.add_argument("--device", default="cpu", type=device_arg)
    p.add_argument("--threads", type=int, default=0, help="torch's, libavif's and libjxl's threads (0: their defaults)")
    p.add_argument("--keyframe-interval", type=keyframe_interval_arg, default=0,
                   help="0: key frames only (rate.md); N: temporal mode, a key frame every N frames (rate_kfN.md)")
    p.set_defaults(func=_cmd_bench_rate)

    # temporal mode (imgcomp.eval.video parses its own options)
    from imgcomp.eval.video import add_arguments, run_from_args

    p = sub.add_parser("bench-video", help="temporal P-frames on vtest.avi beside intra and libx264 (BD-rates, plot, loss)")
    add_arguments(p)
    p.set_defaults(func=run_from_args)

    from imgcomp.eval.effort_bench import add_arguments as add_effort_arguments, run_from_args as run_effort_bench

    p = sub.add_parser("bench-effort", help="the encoder's effort mode: BD-rate gained vs effort 0 per second of encode")
    add_effort_arguments(p)
    p.set_defaults(func=run_effort_bench)

    from imgcomp.cli.bag import register_bag_commands
    from imgcomp.cli.multitask import register_multitask_commands

    register_bag_commands(sub)
    register_multitask_commands(sub)

    p = sub.add_parser("readme", help="refresh the README's tables from benchmarks/results (--check: fail if stale)")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a README table differs from its results file")
    p.set_defaults(func=_cmd_readme)

    p = sub.add_parser("demo", help="vtest.avi through encoder, MCAP bag and decoder, with a report")
    p.add_argument("--video", type=Path, default=Path("data/video/vtest.avi"))
    p.add_argument("--out", type=Path, default=Path("out/demo"))
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--quality", type=int, help="quality level (default: the model's middle level)")
    p.add_argument("--frames", type=int, default=DEMO_FRAMES,
                   help=f"the first N frames (default {DEMO_FRAMES}: the first {DEMO_FRAMES // 10} s, about 2.5 minutes on 2 cores)")
    p.add_argument("--full", action="store_true", help="all 795 frames of vtest.avi (about 13 times the default clip: half an hour on 2 cores)")
    p.add_argument("--keyframe-interval", type=keyframe_interval_arg, default=DEFAULT_KEYFRAME_INTERVAL,
                   help=f"a key frame every N frames of the temporal stream (default {DEFAULT_KEYFRAME_INTERVAL}, the nodes' "
                        "default; the intra mode beside it is always every frame a key frame)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's own, the cores)")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; a bad input is one line on stderr and a non-zero exit status."""
    # torch_geometric (imported with CompressAI) warns about torch.jit.script at import time:
    # not the user's concern, and two more lines on stderr.
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated", category=FutureWarning)
    args = build_parser().parse_args(argv)
    return run_command(f"imgcomp {args.command}", lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
