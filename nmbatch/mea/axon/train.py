"""Train the axon network on synthetic electrical images with planted axons.

No lab model ships with nmbatch, so this trains one for the demo and the tests:
``python -m nmbatch.mea.axon train --output FILE`` (seeded; a few minutes on two
cores). The committed ``demo_model.pth`` is this command's output with its
defaults. A model trained here knows only the synthetic recordings' waveforms:
use a lab's own trained weights for real data.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from nmbatch.mea.axon.cubes import cut_cubes
from nmbatch.mea.axon.dense import DenseAxonEvaluator
from nmbatch.mea.axon.network import AxonNet
from nmbatch.mea.axon.scaling import scaled
from nmbatch.mea.axon.training_data import random_unit, training_centres

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingConfig:
    """How much synthetic data, how long, and the seed."""

    seed: int = 0
    n_images: int = 80
    max_positive: int = 120
    negatives_per_positive: int = 3
    epochs: int = 3
    batch_size: int = 256
    learning_rate: float = 2e-3
    threads: int = 2
    scaling: str = "noise"
    n_check_images: int = 6  # held-out units the closing precision and recall come from


@dataclass
class TrainingReport:
    """What training did, for the command's closing lines."""

    n_cubes: int
    seconds: float
    losses: list[float]
    precision: float
    recall: float


def training_set(config: TrainingConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Cubes (n, 1, 5, 5, 5) and labels (n,) cut from ``config.n_images`` synthetic units."""
    rng = np.random.default_rng([seed, 7])
    cubes, labels = [], []
    for _ in range(config.n_images):
        unit = random_unit(rng)
        centres, y = training_centres(rng, unit, config.max_positive, config.negatives_per_positive)
        cubes.append(cut_cubes(scaled(unit.image, config.scaling), centres))
        labels.append(y)
    return np.concatenate(cubes), np.concatenate(labels)


def voxel_scores(model: AxonNet, config: TrainingConfig) -> tuple[float, float]:
    """Voxel precision and recall at probability 0.1 on held-out synthetic units."""
    rng = np.random.default_rng([config.seed, 8])
    evaluator = DenseAxonEvaluator(model)
    hits = predicted = actual = 0
    for _ in range(config.n_check_images):
        unit = random_unit(rng)
        found = evaluator.probability_map(scaled(unit.image, config.scaling)) > 0.1
        hits += int((found & unit.labels).sum())
        predicted += int(found.sum())
        actual += int(unit.labels.sum())
    return hits / max(predicted, 1), hits / max(actual, 1)


def train(
    config: TrainingConfig, progress: Callable[[str], None] = log.info
) -> tuple[AxonNet, TrainingReport]:
    """Train a fresh :class:`AxonNet` (seeded) and score it on held-out images."""
    started = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        torch.manual_seed(config.seed)
        cubes, labels = training_set(config, config.seed)
        progress(
            f"training set: {len(labels)} cubes ({int(labels.sum())} axon) from "
            f"{config.n_images} synthetic units"
        )
        x, y = torch.from_numpy(cubes), torch.from_numpy(labels)
        model = AxonNet()
        optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
        steps = config.epochs * -(-len(y) // config.batch_size)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, config.learning_rate, steps)
        generator = torch.Generator().manual_seed(config.seed)
        losses = []
        for epoch in range(config.epochs):
            model.train()
            order = torch.randperm(len(y), generator=generator)
            total = 0.0
            for i in range(0, len(y), config.batch_size):
                batch = order[i : i + config.batch_size]
                optimiser.zero_grad()
                loss = torch.nn.functional.binary_cross_entropy_with_logits(
                    model.logits(x[batch]), y[batch]
                )
                loss.backward()
                optimiser.step()
                schedule.step()
                total += float(loss.detach()) * len(batch)
            losses.append(total / len(y))
            progress(
                f"epoch {epoch + 1}/{config.epochs}: loss {losses[-1]:.4f} "
                f"({time.perf_counter() - started:.0f} s)"
            )
        model.eval()
        precision, recall = voxel_scores(model, config)
    finally:
        torch.set_num_threads(threads)
    report = TrainingReport(len(y), time.perf_counter() - started, losses, precision, recall)
    return model, report
