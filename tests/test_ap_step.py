"""Step 10 with the bundled model on units with planted axons converging on a planted ONH."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest
from mea_helpers import PARAMS, angle_error

from nmbatch.mea.axon.ground_truth import converging_units, write_step_inputs
from nmbatch.mea.axon.model_file import file_sha256
from nmbatch.mea.axon.run_settings import DEMO_MODEL
from nmbatch.mea.errors import InputError
from nmbatch.mea.steps import resolve
from nmbatch.mea.steps.registry import StepInput

ONH = (-22.0, 40.0)
STEP = resolve([10])[0]
SETTINGS = {"ap_model": str(DEMO_MODEL), "ap_device": "cpu", "ap_positions_per_batch": 8192}


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """12 units (9 with an axon, 3 without) and one without spikes, through step 10."""
    units = converging_units(seed=11, n_units=12, onh=ONH)
    path = tmp_path_factory.mktemp("ap") / "rec.h5"
    write_step_inputs(path, units, without_image=1)
    params = dict(PARAMS, ap_model_sha256=file_sha256(DEMO_MODEL))
    with h5py.File(path, "a") as f:
        STEP.run(StepInput("rec", f, params, path.parent, settings=SETTINGS))
    return units, path


def test_step_registration():
    assert STEP.requires == (1, 6) and not STEP.needs_raw and STEP.name == "ap_tracking"
    assert "ap_model_sha256" in STEP.params and "onh_r2_thresholds" in STEP.params
    assert set(STEP.outputs) == {"units/*/ap_tracking", "metadata/ap_tracking"}


def test_axon_directions_match_the_planted_ones(tracked):
    units, path = tracked
    with h5py.File(path) as f:
        results = [f[f"units/unit_{i:03d}/ap_tracking"] for i in range(1, len(units) + 1)]
        with_axon = [(u, r) for u, r in zip(units, results, strict=True) if u.axon is not None]
        hits = [
            r.attrs["detected"] and angle_error(r.attrs["direction_deg"], u.axon.direction_deg) < 20
            for u, r in with_axon
        ]
        assert len(with_axon) >= 6 and sum(hits) >= 0.75 * len(with_axon)
        for _, r in with_axon:
            if r.attrs["detected"]:
                path_ = r["path"][()]
                assert path_.shape == (r.attrs["n_points"], 3) and r.attrs["r2"] > 0.5
        without = [r for u, r in zip(units, results, strict=True) if u.axon is None]
        assert without and sum(not r.attrs["detected"] for r in without) >= 0.75 * len(without)
        for r in without:
            assert r.attrs["detected"] or r.attrs["reason"]
        assert all(r["probability"].shape == (50, 65, 65) for r in results)


def test_the_onh_is_found_near_the_planted_one(tracked):
    units, path = tracked
    with h5py.File(path) as f:
        onh = f["metadata/ap_tracking"].attrs
        assert onh["onh_found"] and onh["reason"] == ""
        assert math.hypot(onh["onh_row"] - ONH[0], onh["onh_col"] - ONH[1]) < 5.0
        assert onh["n_units"] == len(units) + 1 and onh["n_used"] >= 3
        assert set(f["metadata/ap_tracking/units_used"][()]) <= set(range(1, len(units) + 1))
        first = f["units/unit_001/ap_tracking"].attrs
        soma = (first["soma_row"], first["soma_col"])
        expected = math.hypot(soma[0] - onh["onh_row"], soma[1] - onh["onh_col"])
        assert first["onh_distance_px"] == pytest.approx(expected)


def test_a_unit_without_spikes_is_recorded_not_failed(tracked):
    units, path = tracked
    with h5py.File(path) as f:
        result = f[f"units/unit_{len(units) + 1:03d}/ap_tracking"]
        assert not result.attrs["detected"] and "no electrical image" in result.attrs["reason"]
        assert "probability" not in result and math.isnan(result.attrs["onh_distance_px"])


def test_too_few_axons_for_an_onh_is_recorded_not_failed(tmp_path):
    units = [u for u in converging_units(seed=12, n_units=4, onh=ONH)][:2]
    path = tmp_path / "few.h5"
    write_step_inputs(path, units)
    params = dict(PARAMS, ap_model_sha256=file_sha256(DEMO_MODEL))
    with h5py.File(path, "a") as f:
        STEP.run(StepInput("few", f, params, tmp_path, settings=SETTINGS))
        onh = f["metadata/ap_tracking"].attrs
        assert not onh["onh_found"] and "(< 3)" in onh["reason"]
        assert np.isnan(onh["onh_row"]) and len(f["units"]) == 2


def test_the_model_must_be_the_one_the_parameters_name(tmp_path):
    path = tmp_path / "rec.h5"
    write_step_inputs(path, converging_units(seed=13, n_units=1, onh=ONH))
    with h5py.File(path, "a") as f:
        for params, settings, phrase in (
            (dict(PARAMS, ap_model_sha256="0" * 64), SETTINGS, "changed since the run started"),
            (PARAMS, SETTINGS, "ap_model_sha256 is empty"),
            (dict(PARAMS, ap_model_sha256="0" * 64), {}, "no AP model configured"),
        ):
            with pytest.raises(InputError, match=phrase):
                STEP.run(StepInput("rec", f, params, tmp_path, settings=settings))
