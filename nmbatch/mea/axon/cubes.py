"""Cubes of an electrical image, and the cube-by-cube evaluation (the reference).

A voxel is scored from the 5 x 5 x 5 cube centred on it; only voxels whose cube
lies inside the image are scored (46 x 61 x 61 = 171 166 of a (50, 65, 65)
image), the others get probability 0. :func:`cube_by_cube_map` does what the
predecessor did, cutting each cube in a Python loop and scoring batches of 512;
it is the definition the dense evaluation is tested against, and the baseline of
the benchmark. Training cuts its cubes with :func:`cut_cubes`.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from nmbatch.mea.axon.network import CUBE, HALF, AxonNet

PREDECESSOR_BATCH = 512


def scored_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """How many centres per axis have a whole cube inside an image of ``shape``."""
    scored = tuple(n - CUBE + 1 for n in shape)
    if len(scored) != 3 or min(scored) < 1:
        raise ValueError(f"an image of shape {shape} holds no {CUBE}x{CUBE}x{CUBE} cube")
    return scored  # type: ignore[return-value]


def cut_cubes(image: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Cubes (n, 1, 5, 5, 5) float32 centred on ``centres`` (n, 3) (each cube inside the image)."""
    windows = sliding_window_view(np.asarray(image, np.float32), (CUBE, CUBE, CUBE))
    corner = np.asarray(centres, np.int64) - HALF
    return windows[corner[:, 0], corner[:, 1], corner[:, 2]][:, None]


@torch.no_grad()
def cube_by_cube_map(
    model: AxonNet,
    image: np.ndarray,
    batch_size: int = PREDECESSOR_BATCH,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Probability map (shape of ``image``) scoring every cube on its own, in batches."""
    model = model.eval().to(device)
    image = np.asarray(image, np.float32)
    out = np.zeros(image.shape, np.float32)
    frames, rows, cols = image.shape
    centres: list[tuple[int, int, int]] = []
    cubes: list[np.ndarray] = []

    def score() -> None:
        batch = torch.from_numpy(np.stack(cubes)[:, None]).to(device)
        probs = model(batch).cpu().numpy()
        index = np.array(centres)
        out[index[:, 0], index[:, 1], index[:, 2]] = probs
        centres.clear()
        cubes.clear()

    for t in range(HALF, frames - HALF):
        for r in range(HALF, rows - HALF):
            for c in range(HALF, cols - HALF):
                cubes.append(
                    image[t - HALF : t + HALF + 1, r - HALF : r + HALF + 1, c - HALF : c + HALF + 1]
                )
                centres.append((t, r, c))
                if len(cubes) == batch_size:
                    score()
    if cubes:
        score()
    return out
