"""Dense evaluation equals scoring every cube on its own (the predecessor's definition)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nmbatch.mea.axon.cubes import cube_by_cube_map, cut_cubes, scored_shape
from nmbatch.mea.axon.dense import DenseAxonEvaluator, resolve_device
from nmbatch.mea.axon.ground_truth import converging_units
from nmbatch.mea.axon.model_file import load_model
from nmbatch.mea.axon.network import AxonNet
from nmbatch.mea.axon.run_settings import DEMO_MODEL
from nmbatch.mea.axon.scaling import scaled

TOLERANCE = 1e-5


def random_model(seed: int) -> AxonNet:
    """Random weights and BatchNorm statistics far from the identity (so folding matters)."""
    torch.manual_seed(seed)
    model = AxonNet()
    with torch.no_grad():
        for bn in (model.bn1, model.bn2, model.bn3):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.3, 3)
            bn.weight.uniform_(-2, 2)
            bn.bias.uniform_(-1, 1)
        model.fc_aux.bias.uniform_(0, 1)  # the zero-fed branch contributes a constant
        for layer in (model.fc_cube, model.fc_joint, model.fc_out):
            layer.weight.mul_(8.0)  # logits that vary: probabilities spread over (0, 1)
    return model.eval()


@pytest.mark.parametrize("shape", [(5, 5, 5), (9, 12, 7), (12, 13, 11)])
@pytest.mark.parametrize("per_batch", [1, 50, 10_000])
def test_dense_equals_cube_by_cube_on_whole_maps(shape, per_batch):
    model = random_model(0)  # a seed whose probabilities spread over (0, 1) on noise
    image = np.random.default_rng(list(shape)).normal(0, 2, shape).astype(np.float32)
    expected = cube_by_cube_map(model, image, batch_size=64)
    got = DenseAxonEvaluator(model, positions_per_batch=per_batch).probability_map(image)
    assert got.shape == image.shape and got.dtype == np.float32
    assert np.abs(got - expected).max() < TOLERANCE
    scored = expected[2:-2, 2:-2, 2:-2]
    assert scored.size == 1 or scored.std() > 0.05  # not two near-constant maps compared


def test_dense_equals_cube_by_cube_on_a_full_image_with_the_demo_model():
    """A (50, 65, 65) electrical image: every border-adjacent centre and 4000 others."""
    model = load_model(DEMO_MODEL)
    image = scaled(converging_units(3, 1, (-20.0, 30.0))[0].image, "noise")
    dense = DenseAxonEvaluator(model).probability_map(image)
    n_t, n_r, n_c = scored_shape(image.shape)
    grid = np.stack(np.meshgrid(*(np.arange(2, 2 + n) for n in (n_t, n_r, n_c)), indexing="ij"))
    centres = grid.reshape(3, -1).T
    edge = (centres == 2).any(axis=1) | (centres == np.array([n_t + 1, n_r + 1, n_c + 1])).any(1)
    rng = np.random.default_rng(0)
    chosen = np.concatenate([centres[edge], centres[rng.choice(len(centres), 4000, False)]])
    with torch.no_grad():
        expected = model(torch.from_numpy(cut_cubes(image, chosen))).numpy()
    got = dense[chosen[:, 0], chosen[:, 1], chosen[:, 2]]
    assert np.abs(got - expected).max() < TOLERANCE
    assert (dense > 0.5).sum() > 50  # the image has an axon the model sees
    border = np.ones(image.shape, bool)
    border[2:-2, 2:-2, 2:-2] = False
    assert not dense[border].any()  # voxels without a whole cube are not scored


def test_images_without_a_whole_cube_are_refused():
    with pytest.raises(ValueError, match="holds no 5x5x5 cube"):
        DenseAxonEvaluator(random_model(0)).probability_map(np.zeros((4, 10, 10)))


def test_device_choice():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_and_cpu_agree():
    model = random_model(0)
    image = np.random.default_rng(1).normal(0, 2, (20, 30, 30)).astype(np.float32)
    cpu = DenseAxonEvaluator(model, "cpu").probability_map(image)
    cuda = DenseAxonEvaluator(model, "cuda").probability_map(image)
    assert np.abs(cpu - cuda).max() < TOLERANCE
