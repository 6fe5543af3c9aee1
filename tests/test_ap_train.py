"""Training: seeded, writes a loadable state dict; the command line regenerates a model file."""

from __future__ import annotations

import subprocess
import sys

import torch

from nmbatch.mea.axon.model_file import load_model
from nmbatch.mea.axon.train import TrainingConfig, train

TINY = dict(n_images=3, max_positive=40, epochs=1, threads=1, batch_size=64, n_check_images=1)


def test_training_is_seeded():
    first, report = train(TrainingConfig(seed=5, **TINY), progress=lambda line: None)
    second, _ = train(TrainingConfig(seed=5, **TINY), progress=lambda line: None)
    other, _ = train(TrainingConfig(seed=6, **TINY), progress=lambda line: None)
    a, b, c = (m.state_dict()["fc_out.weight"] for m in (first, second, other))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert report.n_cubes > 100 and len(report.losses) == 1 and 0 <= report.recall <= 1


def test_the_train_command_writes_a_small_state_dict(tmp_path):
    out = tmp_path / "model.pth"
    args = ["--n-images", "2", "--max-positive", "30", "--epochs", "1", "--n-check-images", "1"]
    result = subprocess.run(
        [sys.executable, "-m", "nmbatch.mea.axon", "train", "--output", str(out), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "epoch 1/1" in result.stdout and "sha256" in result.stdout
    assert out.stat().st_size < 5_000_000
    load_model(out)
