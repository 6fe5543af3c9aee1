"""Post-processing and the ONH on maps and lines with known geometry (no network involved)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from mea_helpers import PARAMS, angle_error

from nmbatch.mea.axon.onh import estimate_onh, polar_position
from nmbatch.mea.axon.params import ApParams
from nmbatch.mea.axon.planted import LABEL_FRACTION, PlantedAxon
from nmbatch.mea.axon.tracking import AxonTrack, fit_line, track_axon
from nmbatch.mea.axon.training_data import SHAPE, axon_image

AP = ApParams.from_params(PARAMS)
SOMA = (40, 20)


def ideal_map(axon: PlantedAxon, soma=SOMA) -> np.ndarray:
    """A perfect probability map: 1 on the axon's voxels, 0 elsewhere."""
    return (axon_image(axon, *soma) <= -LABEL_FRACTION * axon.amplitude).astype(np.float32)


@pytest.mark.parametrize("direction", [-150.0, -90.0, -20.0, 0.0, 45.0, 120.0, 180.0])
def test_a_clean_axon_gives_its_direction(direction):
    axon = PlantedAxon(direction, 18.0, 1.5, 10.0)
    soma = (32, 32)
    track = track_axon(ideal_map(axon, soma), soma, AP.tracking)
    assert track.detected, track.reason
    assert angle_error(track.direction_deg, direction) < 3.0
    assert track.r2 > 0.95 and 8.0 < track.length_px < 18.0
    assert np.all(np.diff(track.frames) == 1) and track.points.shape == (len(track.frames), 2)


def test_no_axon_is_recorded_with_a_reason():
    empty = track_axon(np.zeros((50, *SHAPE), np.float32), SOMA, AP.tracking)
    assert not empty.detected and "no voxel above 0.1" in empty.reason
    near_soma = np.zeros((50, *SHAPE), np.float32)
    near_soma[10:30, SOMA[0] - 3 : SOMA[0] + 4, SOMA[1] - 3 : SOMA[1] + 4] = 1.0
    assert not track_axon(near_soma, SOMA, AP.tracking).detected  # inside the soma exclusion
    noise = (np.random.default_rng(0).random((50, *SHAPE)) > 0.995).astype(np.float32)
    assert not track_axon(noise, SOMA, AP.tracking).detected  # isolated voxels, no components
    short = np.zeros((50, *SHAPE), np.float32)
    short[20:23, 10:13, 40:43] = 1.0  # a lasting blob that does not move
    track = track_axon(short, SOMA, AP.tracking)
    assert not track.detected and "longest continuous path 3 frames" in track.reason


def test_a_jump_breaks_the_path_and_the_longest_run_wins():
    axon = PlantedAxon(0.0, 25.0, 1.0, 10.0)
    prob = ideal_map(axon)
    prob[:, :, 44:] = 0.0  # the far end of the axon ...
    prob[30:36, 10:13, 50:53] = 1.0  # ... replaced by a blob far away, later
    track = track_axon(prob, SOMA, AP.tracking)
    assert track.detected and angle_error(track.direction_deg, 0.0) < 3.0
    assert track.points[:, 1].max() < 45


def test_line_fit_r2_does_not_depend_on_the_orientation():
    rng = np.random.default_rng(1)
    t = np.arange(20.0)
    along = np.stack([t, rng.normal(0, 1.0, t.size)], axis=1)
    values = set()
    for angle in np.radians([0, 30, 90, 135]):
        rotation = np.array(
            [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
        )
        line = fit_line(along @ rotation.T, t)
        values.add(round(line.r2, 9))
        assert abs(np.dot(line.direction, rotation[:, 0])) > 0.99
        assert np.dot(line.direction, rotation[:, 0]) > 0  # points the way time goes
    assert len(values) == 1 and 0.8 < values.pop() < 1.0
    blob = rng.normal(0, 1, (400, 2))
    assert fit_line(blob, np.arange(400.0)).r2 < 0.05


def lines_to(onh, somas, rng, angle_sd=0.0, r2=0.95):
    """Straight axon tracks from each soma towards ``onh``."""
    tracks = {}
    for unit, soma in enumerate(somas, start=1):
        d = np.subtract(onh, soma)
        angle = math.atan2(d[0], d[1]) + math.radians(rng.normal(0, angle_sd))
        u = np.array([math.sin(angle), math.cos(angle)])
        steps = np.arange(3, 18)[:, None]
        tracks[unit] = AxonTrack(
            True,
            frames=np.arange(12, 12 + len(steps)),
            points=np.asarray(soma) + steps * u,
            r2=r2,
            direction_deg=math.degrees(angle),
            length_px=14.0,
        )
    return tracks, dict(enumerate(somas, start=1))


def test_the_onh_is_where_the_lines_meet():
    rng = np.random.default_rng(2)
    somas = [tuple(rng.uniform(10, 60, 2)) for _ in range(12)]
    tracks, soma_map = lines_to((-20.0, 35.0), somas, rng, angle_sd=2.0)
    tracks[99] = AxonTrack.none("no axon")
    onh = estimate_onh(tracks, soma_map, SHAPE, AP.onh)
    assert onh.found and math.hypot(onh.row + 20, onh.col - 35) < 5.0
    assert onh.r2_threshold == 0.8 and onh.n_axons == 12 and len(onh.units) == 12
    distance, angle = polar_position(somas[0], onh)
    d = np.subtract(somas[0], (onh.row, onh.col))
    assert distance == pytest.approx(math.hypot(*d)) and angle == pytest.approx(
        math.degrees(math.atan2(*d))
    )


def test_onh_filters_retry_and_give_up_with_reasons():
    rng = np.random.default_rng(3)
    somas = [tuple(rng.uniform(10, 60, 2)) for _ in range(6)]
    tracks, soma_map = lines_to((-20.0, 35.0), somas, rng, r2=0.7)
    onh = estimate_onh(tracks, soma_map, SHAPE, AP.onh)
    assert onh.found and onh.r2_threshold == 0.6  # nothing passed 0.8: retried at 0.6
    wrong_way = dict(tracks)
    for unit in (1, 2):  # two axons pointing away from the others
        t = tracks[unit]
        wrong_way[unit] = AxonTrack(
            True,
            frames=t.frames,
            points=t.points[::-1],
            r2=0.7,
            direction_deg=t.direction_deg + 180,
            length_px=t.length_px,
        )
    onh = estimate_onh(wrong_way, soma_map, SHAPE, AP.onh)
    assert onh.found and 1 not in onh.units and 2 not in onh.units
    few = {u: tracks[u] for u in (1, 2)}
    onh = estimate_onh(few, soma_map, SHAPE, AP.onh)
    assert not onh.found and "2 unit(s) with a detected axon (< 3)" in onh.reason
    assert math.isnan(polar_position(somas[0], onh)[0])


def test_an_onh_at_the_boundary_prunes_the_worst_axons():
    rng = np.random.default_rng(4)
    somas = [tuple(rng.uniform(15, 50, 2)) for _ in range(10)]
    tracks, soma_map = lines_to((-200.0, 32.0), somas, rng, angle_sd=1.0)  # far beyond reach
    onh = estimate_onh(tracks, soma_map, SHAPE, AP.onh)
    assert onh.found and onh.n_pruned == 5 and len(onh.units) == 5  # 50 %, down to the floor of 5
    assert onh.at_boundary
    assert math.hypot(onh.row - 32, onh.col - 32) <= AP.onh.onh_max_distance_px + 1e-6
