"""The `imgcomp` command line: train, eval, bench, demo, export, bag tools."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _cmd_train(args: argparse.Namespace) -> int:
    import torch

    from imgcomp.train import TrainConfig, train

    config = TrainConfig.from_yaml(args.config)
    if args.steps is not None:
        config.steps = args.steps
    if args.threads:
        torch.set_num_threads(args.threads)
    checkpoint = train(config, device=args.device, resume=args.resume, max_minutes=args.max_minutes)
    print(f"checkpoint: {checkpoint}")
    if args.export:
        from imgcomp.models.registry import export_weights

        print(f"exported: {export_weights(checkpoint)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imgcomp", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a codec from a YAML config")
    p.add_argument("--config", required=True, type=Path)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--resume", action="store_true", help="continue from runs/<name>/last.pt")
    p.add_argument("--steps", type=int, help="override the config's total steps")
    p.add_argument("--max-minutes", type=float, help="stop cleanly after this wall time")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--export", action="store_true", help="write shipped weights + model card at the end")
    p.set_defaults(func=_cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
