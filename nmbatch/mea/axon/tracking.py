"""From a unit's axon-probability map to its axon path: centroids, line fit, direction.

Voxels above the threshold are kept if they lie outside the soma's
neighbourhood, in a per-frame component of at least ``ap_min_component_px``
pixels, and in a space-time component spanning at least
``ap_min_component_frames`` frames (temporal consistency). From
``ap_first_frame`` on, each frame's largest component gives a probability-weighted
centroid; consecutive frames whose centroids move at most ``ap_max_step_px``
form runs, and the longest run is the path. Its line is a total least-squares
fit; R^2 is the squared correlation of the points in the frame rotated 45
degrees to their principal axes, ((l1 - l2) / (l1 + l2))^2 for the covariance's
eigenvalues, which is what a linear regression's R^2 is at its best orientation
(1 for a straight path, 0 for a round blob) and does not depend on the
direction. The direction points the way the centroids move in time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from nmbatch.mea.axon.params import TrackingParams

WITHIN_FRAME = np.zeros((3, 3, 3), bool)
WITHIN_FRAME[1] = True  # 8-connected in a frame, never across frames
ACROSS_FRAMES = np.ones((3, 3, 3), bool)


@dataclass
class AxonTrack:
    """One unit's axon path, or the reason it has none (``detected`` False)."""

    detected: bool
    reason: str = ""
    frames: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # (row, col)
    r2: float = math.nan
    direction_deg: float = math.nan
    length_px: float = math.nan
    n_centroid_frames: int = 0

    @classmethod
    def none(cls, reason: str, n_centroid_frames: int = 0) -> AxonTrack:
        return cls(False, reason, n_centroid_frames=n_centroid_frames)


@dataclass(frozen=True)
class Line:
    """A fitted line: a point on it, its unit direction (row, col), R^2."""

    point: np.ndarray
    direction: np.ndarray
    r2: float


def fit_line(points: np.ndarray, order: np.ndarray) -> Line:
    """Total least-squares line through ``points`` (n, 2), directed along increasing ``order``."""
    centre = points.mean(axis=0)
    spread = points - centre
    eigenvalues, eigenvectors = np.linalg.eigh(spread.T @ spread / len(points))
    small, large = np.clip(eigenvalues, 0.0, None)
    direction = eigenvectors[:, 1]
    if np.dot(spread @ direction, order - order.mean()) < 0:
        direction = -direction
    r2 = ((large - small) / (large + small)) ** 2 if large + small > 0 else 0.0
    return Line(centre, direction, float(r2))


def _kept_voxels(prob: np.ndarray, soma: tuple[float, float], p: TrackingParams) -> np.ndarray:
    """The mask of voxels that pass threshold, soma exclusion and both component filters."""
    mask = prob > p.ap_threshold
    mask[: p.ap_first_frame] = False
    rows, cols = np.ogrid[: prob.shape[1], : prob.shape[2]]
    near_soma = (rows - soma[0]) ** 2 + (cols - soma[1]) ** 2 <= p.ap_soma_exclusion_px**2
    mask[:, near_soma] = False
    labels, _ = ndimage.label(mask, WITHIN_FRAME)
    sizes = np.bincount(labels.ravel())
    mask &= (sizes >= p.ap_min_component_px)[labels]
    labels, n = ndimage.label(mask, ACROSS_FRAMES)
    spans = np.array([0] + [s[0].stop - s[0].start for s in ndimage.find_objects(labels)])
    return mask & (spans >= p.ap_min_component_frames)[labels] if n else mask


def frame_centroids(prob: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frames that have kept voxels, and the weighted centroid of each one's largest component."""
    labels, n = ndimage.label(mask, WITHIN_FRAME)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros((0, 2))
    t, r, c = np.nonzero(labels)
    ids = labels[t, r, c]
    w = prob[t, r, c].astype(np.float64)
    size = np.bincount(ids, minlength=n + 1)
    weight = np.bincount(ids, w, minlength=n + 1)
    frame = np.zeros(n + 1, np.int64)
    frame[ids] = t
    # per frame, the component with most pixels (then most probability)
    order = np.lexsort((weight[1:], size[1:], frame[1:])) + 1
    last = np.r_[frame[order][1:] != frame[order][:-1], True]
    best = order[last]
    centroids = (
        np.stack(
            [np.bincount(ids, w * r, n + 1)[best], np.bincount(ids, w * c, n + 1)[best]], axis=1
        )
        / weight[best, None]
    )
    return frame[best], centroids


def longest_run(frames: np.ndarray, points: np.ndarray, max_step: float) -> slice:
    """The longest stretch of consecutive frames whose centroids move at most ``max_step``."""
    steps = np.hypot(*np.diff(points, axis=0).T) if len(points) > 1 else np.zeros(0)
    joined = (np.diff(frames) == 1) & (steps <= max_step)
    best, start = slice(0, min(len(frames), 1)), 0
    for i, ok in enumerate(np.r_[joined, False]):
        if not ok:
            if i + 1 - start > best.stop - best.start:
                best = slice(start, i + 1)
            start = i + 1
    return best


def track_axon(prob: np.ndarray, soma: tuple[float, float], p: TrackingParams) -> AxonTrack:
    """The axon path in a probability map (frames, rows, cols); ``soma`` is (row, col)."""
    frames, points = frame_centroids(prob, _kept_voxels(prob, soma, p))
    if len(frames) == 0:
        return AxonTrack.none(
            f"no voxel above {p.ap_threshold} in a lasting component outside the soma"
        )
    run = longest_run(frames, points, p.ap_max_step_px)
    frames, points, n_frames = frames[run], points[run], len(frames)
    if len(frames) < p.ap_min_points:
        return AxonTrack.none(
            f"longest continuous path {len(frames)} frames (< {p.ap_min_points})", n_frames
        )
    line = fit_line(points, frames.astype(float))
    along = (points - line.point) @ line.direction
    length = float(along.max() - along.min())
    if length < p.ap_min_length_px:
        return AxonTrack.none(
            f"path spans {length:.1f} electrodes (< {p.ap_min_length_px})", n_frames
        )
    return AxonTrack(
        True,
        frames=frames,
        points=points,
        r2=line.r2,
        direction_deg=math.degrees(math.atan2(line.direction[0], line.direction[1])),
        length_px=length,
        n_centroid_frames=n_frames,
    )
