"""Step 10's run settings, and the one tracked value that comes from a file.

The model file, the device and the batch size are run settings: options and
``nmbatch.mea.*`` settings, never tracked. What the model file holds is tracked:
before the parameters are compared with the cache's, the job fills
``ap_model_sha256`` with the file's SHA-256, so another model is a parameter
change shown in the diff, and each output file records the model its results
came from. A value given by hand must match the file (a guard against running
the wrong model).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nmbatch.engine.errors import ConfigError
from nmbatch.engine.settings import setting
from nmbatch.mea.axon.dense import DEFAULT_POSITIONS_PER_BATCH
from nmbatch.mea.axon.model_file import ModelFileError, file_sha256, load_model
from nmbatch.mea.axon.params import ApParams

DEMO_MODEL = Path(__file__).with_name("demo_model.pth")
SHA_KEY = "ap_model_sha256"
STEP = 10
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApSettings:
    """Where step 10 gets its model and how it runs it (``device``: auto, cpu, cuda, cuda:N)."""

    model: Path | None = None
    device: str = "auto"
    positions_per_batch: int = DEFAULT_POSITIONS_PER_BATCH

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--ap-model",
            type=Path,
            metavar="FILE",
            help="step 10's trained AP-tracking model, a .pth state dict (setting "
            "nmbatch.mea.ap-model; --demo uses the bundled synthetic-data model)",
        )
        parser.add_argument(
            "--ap-device",
            metavar="DEVICE",
            help="where step 10 runs the model: auto (CUDA when available), cpu, cuda, cuda:1 "
            "(setting nmbatch.mea.ap-device; not tracked: results agree across devices)",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace, demo: bool = False) -> ApSettings:
        model = setting("mea.ap-model", args.ap_model) or (DEMO_MODEL if demo else None)
        return cls(
            Path(model).expanduser().resolve() if model else None,
            str(setting("mea.ap-device", args.ap_device)),
            int(setting("mea.ap-positions-per-batch")),
        )

    def steps_in_all(self, numbers: tuple[int, ...]) -> tuple[int, ...]:
        """``--steps all`` holds step 10 only when there is a model to run it with."""
        if self.model is None and STEP in numbers:
            log.info("mea: step 10 (ap_tracking) is not run: no model (give --ap-model FILE)")
            return tuple(n for n in numbers if n != STEP)
        return numbers

    def validate(self, params: Mapping[str, Any]) -> None:
        """ConfigError for bad step-10 parameters or a missing model (step 10 requested)."""
        try:
            ApParams.from_params(params)
        except ValueError as exc:
            raise ConfigError(f"mea step 10 (ap_tracking): {exc}") from None
        if self.model is None:
            raise ConfigError(
                "mea step 10 (ap_tracking) needs a trained model: give it with --ap-model FILE "
                "(or the nmbatch.mea.ap-model setting), or leave step 10 out of --steps"
            )
        if self.positions_per_batch < 1:
            raise ConfigError("nmbatch.mea.ap-positions-per-batch must be at least 1")

    def resolve_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` with ``ap_model_sha256`` from the model file (which must load)."""
        resolved = dict(params)
        if self.model is None:
            return resolved
        try:
            sha = file_sha256(self.model)
            load_model(self.model)
        except ModelFileError as exc:
            raise ConfigError(str(exc)) from None
        given = str(params.get(SHA_KEY) or "")
        if given and given != sha:
            raise ConfigError(
                f"{SHA_KEY} is set to {given}, but {self.model} has {sha}: give the model that "
                f"parameter names, or clear it to track this file's"
            )
        resolved[SHA_KEY] = sha
        return resolved

    def step_settings(self) -> dict[str, Any]:
        """What step 10 gets on the worker (plain values: they travel with the task)."""
        return {
            "ap_model": str(self.model) if self.model else None,
            "ap_device": self.device,
            "ap_positions_per_batch": self.positions_per_batch,
        }
