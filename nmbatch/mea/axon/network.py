"""The per-voxel axon classifier: a small 3D CNN on 5 x 5 x 5 cubes of an electrical image.

The architecture is the predecessor's, so a lab's trained state dict loads into it
unchanged (the attribute names are the state dict's keys). A cube is centred on
the voxel it scores; its convolutions pad with zeros at the cube's own border and
``MaxPool3d(2)`` keeps the first 4 of its 5 positions per axis, which is why
:mod:`nmbatch.mea.axon.dense` cannot simply convolve the whole image.
"""

from __future__ import annotations

import torch
from torch import nn

CUBE = 5  # cube edge (frames, rows, cols)
HALF = CUBE // 2  # a cube covers its centre +- HALF
AUX_INPUTS = 2  # the auxiliary branch's inputs (velocity, direction): zeros at inference


class AxonNet(nn.Module):
    """Probability that a cube's centre voxel lies on the unit's axon.

    conv1 1->16 (k3, pad 1) + BN + ReLU, MaxPool3d(2), conv2 16->32 and conv3
    32->64 (k3, pad 1) + BN + ReLU on the 2 x 2 x 2 grid, flatten (512), dropout,
    FC 512->64; an auxiliary FC 2->4 (fed zeros); concatenated 68 -> FC 32 -> FC 1,
    sigmoid. ReLU follows every hidden FC layer.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(1, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm3d(16)
        self.pool = nn.MaxPool3d(2)
        self.conv2 = nn.Conv3d(16, 32, 3, padding=1)
        self.bn2 = nn.BatchNorm3d(32)
        self.conv3 = nn.Conv3d(32, 64, 3, padding=1)
        self.bn3 = nn.BatchNorm3d(64)
        self.dropout = nn.Dropout(0.5)
        self.fc_cube = nn.Linear(64 * 2 * 2 * 2, 64)
        self.fc_aux = nn.Linear(AUX_INPUTS, 4)
        self.fc_joint = nn.Linear(64 + 4, 32)
        self.fc_out = nn.Linear(32, 1)

    def logits(self, cubes: torch.Tensor, aux: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (n,) of cubes (n, 1, 5, 5, 5); ``aux`` (n, 2) defaults to zeros."""
        x = torch.relu(self.bn1(self.conv1(cubes)))
        x = self.pool(x)
        x = torch.relu(self.bn2(self.conv2(x)))
        x = torch.relu(self.bn3(self.conv3(x)))
        x = torch.relu(self.fc_cube(self.dropout(x.flatten(1))))
        if aux is None:
            aux = cubes.new_zeros(cubes.shape[0], AUX_INPUTS)
        a = torch.relu(self.fc_aux(aux))
        x = torch.relu(self.fc_joint(torch.cat([x, a], dim=1)))
        return self.fc_out(x).squeeze(1)

    def forward(self, cubes: torch.Tensor, aux: torch.Tensor | None = None) -> torch.Tensor:
        """Axon probabilities (n,) of cubes (n, 1, 5, 5, 5)."""
        return torch.sigmoid(self.logits(cubes, aux))
