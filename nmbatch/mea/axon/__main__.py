"""``python -m nmbatch.mea.axon train --output FILE``: train the demo's axon model."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from nmbatch.mea.axon.model_file import save_model
from nmbatch.mea.axon.train import TrainingConfig, train

DEMO_MODEL = Path(__file__).with_name("demo_model.pth")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nmbatch.mea.axon",
        description="Train the axon (AP) network on synthetic electrical images with planted "
        "axons and write its state dict. The defaults regenerate the committed demo model.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("train", help="train and write a state dict (.pth)")
    run.add_argument("--output", type=Path, default=DEMO_MODEL, help=f"default: {DEMO_MODEL}")
    defaults = TrainingConfig()
    for f in fields(TrainingConfig):
        run.add_argument(
            f"--{f.name.replace('_', '-')}",
            type=type(getattr(defaults, f.name)),
            default=getattr(defaults, f.name),
            help="default: %(default)s",
        )
    args = parser.parse_args(argv)
    config = TrainingConfig(**{f.name: getattr(args, f.name) for f in fields(TrainingConfig)})
    model, report = train(config, progress=lambda line: print(line, flush=True))
    sha = save_model(model, args.output)
    size = args.output.stat().st_size
    print(
        f"trained on {report.n_cubes} cubes in {report.seconds:.0f} s; held-out voxels at p>0.1: "
        f"precision {report.precision:.2f}, recall {report.recall:.2f}\n"
        f"wrote {args.output} ({size / 1e3:.0f} kB, sha256 {sha})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
