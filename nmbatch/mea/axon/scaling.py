"""What the network sees: the electrical image as stored, or divided by its noise level.

Dividing by a robust noise estimate makes a model independent of how many
spikes were averaged and of the amplifier's gain; a lab model trained on raw
ADC counts needs ``none``.
"""

from __future__ import annotations

import numpy as np

SCALINGS = ("noise", "none")
MAD_TO_SD = 1.4826  # a normal distribution's SD per median absolute deviation


def noise_level(image: np.ndarray) -> float:
    """Robust SD of an image's values (the median absolute deviation, scaled)."""
    values = np.asarray(image, np.float32).ravel()
    return float(MAD_TO_SD * np.median(np.abs(values - np.median(values))))


def scaled(image: np.ndarray, scaling: str) -> np.ndarray:
    """The image the network gets under ``scaling`` (float32)."""
    image = np.asarray(image, np.float32)
    if scaling == "none":
        return image
    if scaling != "noise":
        raise ValueError(f"unknown input scaling {scaling!r} (use one of {', '.join(SCALINGS)})")
    level = noise_level(image)
    return image / level if level > 0 else image
