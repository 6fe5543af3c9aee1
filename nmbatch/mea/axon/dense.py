"""Dense evaluation: the axon-probability map of a whole image, equal to scoring each cube.

Why one convolution over the image is not the same: inside a cube, conv1 pads
with zeros at the cube's own border and MaxPool3d(2) keeps positions 0-3 of 5.
Per axis, cube position 0 is the only one whose conv1 tap at -1 falls outside
the cube, so every conv1 output a cube uses is one of 8 "position types" (tap
-1 masked or not, per axis) of a dense conv1 over the image: one matmul of 8 x 16
masked kernels with the image's 3 x 3 x 3 patches. The pooled 2 x 2 x 2 grid of
the cube centred at ``p`` is then, cell by cell, a maximum over 8 shifted slices
of those maps. On a 2 x 2 x 2 grid, conv2 and conv3 (k3, pad 1) connect every
cell to every cell, so they are exact dense matrices (128 -> 256 -> 512) acting on
each centre's 128 pooled features, as are the FC layers; BatchNorm (eval) folds
into them and the auxiliary branch, fed zeros, into a bias. That is about 200 k
multiply-adds per voxel instead of 640 k, all in large matrix products, with
conv1 and pooling shared between neighbouring cubes.

Everything is float32 matmuls at full precision (no TF32, no cuDNN), so CPU and
CUDA agree with each other and with :func:`nmbatch.mea.axon.cubes.cube_by_cube_map`
to rounding (well within 1e-5 in probability).
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from nmbatch.mea.axon.cubes import scored_shape
from nmbatch.mea.axon.network import AUX_INPUTS, HALF, AxonNet

DEFAULT_POSITIONS_PER_BATCH = 16384  # ~70 MB of float32 intermediates per batch
CELLS = list(itertools.product((0, 1), repeat=3))  # the pooled grid, in flatten order


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when available, else CPU; otherwise a torch device name."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but torch sees no CUDA device")
    return device


@contextlib.contextmanager
def full_float32() -> Iterator[None]:
    """Float32 matmuls at full precision (CUDA may otherwise use TF32)."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def _fold_bn(conv: torch.nn.Conv3d, bn: torch.nn.BatchNorm3d) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of conv followed by BatchNorm in eval mode (float64)."""
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    weight = conv.weight.double() * scale[:, None, None, None, None]
    bias = (conv.bias.double() - bn.running_mean.double()) * scale + bn.bias.double()
    return weight, bias


def _grid_matrix(weight: torch.Tensor) -> torch.Tensor:
    """A k3/pad-1 conv on the 2x2x2 grid as a matrix (cells*out, cells*in), cell-major."""
    n_out, n_in = weight.shape[:2]
    matrix = weight.new_zeros(len(CELLS) * n_out, len(CELLS) * n_in)
    for i, q in enumerate(CELLS):
        for j, r in enumerate(CELLS):
            k = tuple(rr - qq + 1 for rr, qq in zip(r, q, strict=True))
            matrix[i * n_out : (i + 1) * n_out, j * n_in : (j + 1) * n_in] = weight[:, :, *k]
    return matrix


def _conv1_variants(weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """conv1's kernel with tap -1 zeroed along the masked axes: (8 * 16, 27), (8 * 16,)."""
    kernels = []
    for masked in CELLS:
        w = weight.clone()
        for axis, m in enumerate(masked):
            if m:
                w.select(2 + axis, 0).zero_()
        kernels.append(w.reshape(w.shape[0], -1))
    return torch.cat(kernels), bias.repeat(len(CELLS))


class DenseAxonEvaluator:
    """A trained :class:`AxonNet` rewritten as matrices, to score whole images at once.

    ``positions_per_batch`` bounds memory: centres are scored in slabs of whole
    frames holding about that many voxels (about 4 kB of intermediates each).
    """

    def __init__(
        self,
        model: AxonNet,
        device: str | torch.device = "cpu",
        positions_per_batch: int = DEFAULT_POSITIONS_PER_BATCH,
    ):
        self.device = torch.device(device)
        self.positions_per_batch = int(positions_per_batch)
        model = model.eval()
        with torch.no_grad():
            w1, b1 = _fold_bn(model.conv1, model.bn1)
            w2, b2 = _fold_bn(model.conv2, model.bn2)
            w3, b3 = _fold_bn(model.conv3, model.bn3)
            fc = model.fc_cube.weight.double()
            n_fc, n_flat = fc.shape
            channels = n_flat // len(CELLS)
            # torch flattens (channel, cell); the grid features here are (cell, channel)
            fc = fc.reshape(n_fc, channels, len(CELLS)).permute(0, 2, 1).reshape(n_fc, n_flat)
            aux = torch.relu(model.fc_aux(model.fc_aux.weight.new_zeros(AUX_INPUTS))).double()
            joint = model.fc_joint.weight.double()
            joint_bias = model.fc_joint.bias.double() + joint[:, n_fc:] @ aux
            conv1, conv1_bias = _conv1_variants(w1, b1)
            layers = [
                (conv1, conv1_bias),
                (_grid_matrix(w2), b2.repeat(len(CELLS))),
                (_grid_matrix(w3), b3.repeat(len(CELLS))),
                (fc, model.fc_cube.bias.double()),
                (joint[:, :n_fc], joint_bias),
                (model.fc_out.weight.double(), model.fc_out.bias.double()),
            ]
        self._conv1_channels = w1.shape[0]
        self._layers = [
            (w.float().to(self.device).contiguous(), b.float().to(self.device)) for w, b in layers
        ]
        # transposed once, for addmm(bias, positions x features, features x outputs)
        self._mlp = [(w.t(), b) for w, b in self._layers[1:]]
        self._scratch: dict[str, torch.Tensor] = {}

    def _buffer(self, name: str, *shape: int) -> torch.Tensor:
        """A reused scratch tensor: the same slabs every unit, so memory stays flat.

        (Freeing and re-allocating tens of MB per slab lets the C allocator's heap
        grow unit after unit.)
        """
        size = math.prod(shape)
        flat = self._scratch.get(name)
        if flat is None or flat.numel() < size:
            flat = self._scratch[name] = torch.empty(size, device=self.device)
        return flat[:size].view(*shape)

    @torch.no_grad()
    def probability_map(self, image: np.ndarray) -> np.ndarray:
        """Axon probabilities, shape of ``image``; 0 where no whole cube fits (the border)."""
        image = np.asarray(image, np.float32)
        n_t, n_r, n_c = scored_shape(image.shape)
        out = np.zeros(image.shape, np.float32)
        padded = F.pad(torch.from_numpy(image).to(self.device), (1,) * 6)
        per_batch = max(1, self.positions_per_batch // (n_r * n_c))
        with full_float32():
            for first in range(HALF, HALF + n_t, per_batch):
                last = min(first + per_batch, HALF + n_t)
                probs = self._slab(padded, first, last, n_r, n_c)
                out[first:last, HALF : HALF + n_r, HALF : HALF + n_c] = probs.cpu().numpy()
        return out

    def _slab(self, padded: torch.Tensor, first: int, last: int, n_r: int, n_c: int):
        """Probabilities (frames, n_r, n_c) of the centres in frames ``[first, last)``."""
        n, channels = last - first, self._conv1_channels
        # conv1 of image frames first-2 .. last, from padded frames first-2 .. last+2
        block = padded[first - 2 : last + 3]
        frames, rows, cols = (size - 2 for size in block.shape)
        patches = self._buffer("patches", 27, frames, rows, cols)
        torch.stack(
            [
                block[dt : dt + frames, dr : dr + rows, dc : dc + cols]
                for dt, dr, dc in itertools.product(range(3), repeat=3)
            ],
            out=patches,
        )
        weight, bias = self._layers[0]
        maps = self._buffer("maps", weight.shape[0], frames * rows * cols)
        torch.addmm(bias[:, None], weight, patches.view(27, -1), out=maps).relu_()
        maps = maps.view(len(CELLS), channels, frames, rows, cols)
        pooled = self._buffer("pooled", len(CELLS), channels, n, n_r, n_c)
        for i, cell in enumerate(CELLS):
            for k, offset in enumerate(CELLS):
                pairs = list(zip(cell, offset, strict=True))
                variant = sum(4 >> axis for axis, (a, d) in enumerate(pairs) if a == d == 0)
                t, r, c = (2 * a + d for a, d in pairs)
                part = maps[variant, :, t : t + n, r : r + n_r, c : c + n_c]
                if k == 0:
                    pooled[i].copy_(part)
                else:
                    torch.maximum(pooled[i], part, out=pooled[i])
        # positions as rows from here on: this runs faster on CPU than the transposed layout
        x = pooled.view(len(CELLS) * channels, -1).t()
        for layer, (weight_t, bias) in enumerate(self._mlp):
            h = self._buffer(f"hidden{layer}", x.shape[0], weight_t.shape[1])
            torch.addmm(bias, x, weight_t, out=h)
            x = h.relu_() if layer < len(self._mlp) - 1 else h.sigmoid_()
        return x.view(n, n_r, n_c)
