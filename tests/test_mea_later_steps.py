"""Steps 6-9 and 11 on generated recordings: results match the planted truth, bad inputs give
clear records, and two stages (1-5, then the later steps without the raw files) give the
same file as one run. Step lists are explicit: step 10 may or may not be registered."""

import shutil

import h5py
import numpy as np
import pytest
from mea_helpers import PARAMS, run_item
from scipy import ndimage

from nmbatch.engine.errors import StageError
from nmbatch.engine.job import Item
from nmbatch.mea.demo import BAR_MOVIE, make_demo
from nmbatch.mea.demo_bad import CODE_RAN
from nmbatch.mea.job import MeaJob
from nmbatch.mea.mcs_layout import N_COLS, N_ROWS
from nmbatch.mea.synthetic import DISPLAY_FPS, FOOTPRINT_RADIUS
from nmbatch.mea.synthetic_visual import expected_bar_counts, rf_point_px

STEPS = "1-9,11"
LATER = "6-9,11"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mea_later")
    yield make_demo(folder, n_recordings=2, n_units=12, bad_inputs=True)
    shutil.rmtree(folder)


@pytest.fixture(scope="module")
def runs(demo, tmp_path_factory):
    """Every item of the demo through steps 1-9 and 11 in one go."""
    job = MeaJob(demo.csv, tmp_path_factory.mktemp("mea_later_out"), steps=STEPS)
    items = job.list_items(PARAMS).items
    return job, {item.id: (item, *run_item(job, item)) for item in items}


def units(job, name):
    f = h5py.File(job.output_path(name))
    return f, {int(g.attrs["unit_id"]): g for g in f["units"].values()}


def planted_footprint(unit, p) -> int:
    """Electrodes of the planted soma profile above threshold after the step's spatial blur."""
    image = np.zeros((N_ROWS, N_COLS))
    d = np.arange(-FOOTPRINT_RADIUS, FOOTPRINT_RADIUS + 1)
    patch = np.exp(-(d[:, None] ** 2 + d[None, :] ** 2) / (2 * unit.spread**2))
    r, c = unit.row - 1, unit.col - 1
    image[r + d[0] : r + d[-1] + 1, c + d[0] : c + d[-1] + 1] = patch
    blurred = ndimage.gaussian_filter(image, p["soma_spatial_sigma"])
    components, _ = ndimage.label(blurred >= p["soma_threshold"] * blurred.max())
    return int((components == components[r, c]).sum())


def test_soma_geometry_matches_the_planted_footprints(demo, runs):
    job, _ = runs
    for name, model in demo.models.items():
        f, groups = units(job, name)
        with f:
            for unit in model.units:
                g = groups[unit.unit_id]
                if unit.silent:
                    assert "soma_geometry" not in g
                    continue
                soma = g["soma_geometry"].attrs
                assert (soma["center_row"], soma["center_col"]) == (unit.row - 1, unit.col - 1)
                truth = planted_footprint(unit, PARAMS)
                assert abs(soma["area"] - truth) <= 0.2 * truth, (unit.unit_id, soma["area"])
                assert soma["equivalent_diameter"] == pytest.approx(
                    2 * np.sqrt(soma["area"] / np.pi)
                )
                assert 1 <= soma["size_x"] <= 9 and 1 <= soma["size_y"] <= 9
                ptp = g["soma_geometry/ptp_map"]
                assert ptp.shape == (65, 65) and ptp.dtype == np.float32


def _angle_error(a: float, b: float, period: float) -> float:
    return abs((a - b + period / 2) % period - period / 2)


def test_receptive_fields_match_the_planted_gaussians(demo, runs):
    job, _ = runs
    fitted = 0
    for name, model in demo.models.items():
        f, groups = units(job, name)
        with f:
            for unit in model.units:
                rf = groups[unit.unit_id]["rf_geometry"]
                a = rf.attrs
                if unit.silent:
                    assert a["status"] == "no_sta" and "no spikes" in a["reason"]
                    assert np.isnan(a["center_x"]) and np.isnan(rf["dog"].attrs["sigma_center"])
                    continue
                if unit.rf_sign == 0:
                    assert a["status"] == "too_noisy" and "STA too noisy" in a["reason"]
                    assert np.isnan(a["center_x"]) and np.isnan(a["r_squared"])
                    continue
                assert a["status"] == "fitted" and a["reason"] == ""
                assert a["polarity"] == ("ON" if unit.rf_sign > 0 else "OFF")
                y, x = unit.rf_center
                assert np.hypot(a["center_x"] - x, a["center_y"] - y) <= 0.5
                assert a["sigma_x"] == pytest.approx(unit.rf_sigma[0], rel=0.2)
                assert a["sigma_y"] == pytest.approx(unit.rf_sigma[1], rel=0.2)
                if unit.rf_sigma[0] / unit.rf_sigma[1] >= 1.4:
                    assert np.rad2deg(_angle_error(a["angle"], unit.rf_angle, np.pi)) <= 20
                assert a["r_squared"] > 0.5
                polar = rf["on" if unit.rf_sign > 0 else "off"].attrs
                assert np.hypot(polar["center_x"] - x, polar["center_y"] - y) <= 1.0
                dog = rf["dog"].attrs  # no surround is planted: a fit, or NaN and a reason
                assert np.isfinite(dog["sigma_center"]) != bool(dog["reason"])
                assert rf["spatial_map"].shape == (15, 15)
                fitted += 1
    assert fitted >= 18


def test_direction_selectivity_matches_the_planted_tuning(demo, runs):
    job, _ = runs
    untuned_p = []
    for name, model in demo.models.items():
        config = next(m.config for m in model.playlist if m.name == BAR_MOVIE)
        f, groups = units(job, name)
        with f:
            assert f["metadata/dsgc"].attrs["status"] == "done"
            for unit in model.units:
                ds = groups[unit.unit_id]["dsgc"].attrs
                if unit.silent:  # no spikes: no RF fit, no electrical image, no position
                    assert ds["position_source"] == "none" and np.isnan(ds["dsi"])
                    assert "no RF fit and no soma position" in ds["reason"]
                    continue
                if unit.rf_sign == 0:
                    assert ds["position_source"] == "soma"
                    continue
                assert ds["position_source"] == "rf"
                assert (
                    np.hypot(*np.subtract(rf_point_px(unit), (ds["position_x"], ds["position_y"])))
                    < 10
                )
                counts, deg = expected_bar_counts(
                    unit, config, PARAMS["dsgc_margin_frames"], DISPLAY_FPS
                )
                means = np.array([counts[deg == d].mean() for d in np.unique(deg)])
                theta = np.deg2rad(np.unique(deg))
                expected = abs((means * np.exp(1j * theta)).sum()) / means.sum()
                if np.isnan(unit.ds_preferred_deg):
                    assert ds["dsi"] < 0.15
                    untuned_p.append(ds["p_value"])
                    continue
                assert _angle_error(ds["preferred_direction_deg"], unit.ds_preferred_deg, 360) <= 20
                assert abs(ds["dsi"] - expected) <= 0.1, (unit.unit_id, ds["dsi"], expected)
                assert ds["p_value"] < 0.01
                g = groups[unit.unit_id]["dsgc"]
                assert g["responses"].shape == (8,) and g["trial_counts"].shape == (32,)
                offsets = g["trials_spike_offsets"][()]
                assert np.diff(offsets).tolist() == g["trial_counts"][()].tolist()
    assert len(untuned_p) >= 6
    assert np.mean(np.array(untuned_p) < 0.05) <= 0.25


def test_sheet_rows_and_labels_land_on_their_recordings(demo, runs):
    job, _ = runs
    for name, model in demo.models.items():
        f, groups = units(job, name)
        with f:
            assert dict(f["metadata/gsheet_row"].attrs) == demo.sheet_rows[name]
            assert f["metadata/gsheet_source"].attrs["status"] == "matched"
            for unit in model.units:
                label = groups[unit.unit_id]["auto_label"]
                want = demo.labels[name].get(unit.unit_id, "")
                assert label[()].decode() == want and label.attrs["labelled"] == bool(want)
            cell = f["metadata/cell_type"].attrs
            assert cell["n_unlabelled"] == 1 and cell["status"] == "labelled"
    first, second = list(demo.models)
    with h5py.File(job.output_path(second)) as f:
        assert list(f["metadata/cell_type"].attrs["files"]) == [f"{second}.pkl"]
    with h5py.File(job.output_path(first)) as f:
        assert list(f["metadata/cell_type"].attrs["files"]) == ["labels.csv"]


def test_bad_inputs_give_clear_records_and_keep_what_was_done(demo, runs, capsys):
    job, results = runs
    later = {"step8_sheet_metadata", "step9_cell_type", "step11_dsgc"}
    for name, (stage, phrase) in demo.failures.items():
        if stage not in later:
            continue
        _, error, ctx = results[name]
        assert isinstance(error, StageError) and ctx.failed_stage == stage, name
        assert name in str(error) and phrase in str(error)
        number = int(stage.split("_")[0].removeprefix("step"))
        with h5py.File(job.output_path(name)) as f:
            done = f["pipeline/completed_steps"][()].tolist()
            assert done == [s for s in (1, 2, 3, 4, 5, 6, 7, 8, 9) if s < number]
            assert all("rf_geometry" in g for g in f["units"].values())
    for name, (stage, phrase) in demo.warnings.items():
        result, ctx = results[name][1:]
        assert not isinstance(result, StageError), result
        warning = next(w for w in ctx.flags["warnings"] if w.startswith(stage))
        assert name in warning and phrase in warning
        assert phrase in result.tables["recordings"].warnings.iloc[0]
        with h5py.File(job.output_path(name)) as f:
            assert "gsheet_row" not in f["metadata"]
            assert f["metadata/dsgc"].attrs["status"] == "not_applicable"
            assert 11 in f["pipeline/completed_steps"][()]
    for name in demo.models:
        noisy = results[name][2].flags["warnings"]
        assert any(w.startswith("step7_rf_geometry") and "STA too noisy" in w for w in noisy)
    assert CODE_RAN not in capsys.readouterr().out


def _same(a: h5py.Group, b: h5py.Group, path: str = "") -> list[str]:
    """Paths where two files differ (attributes named completed_at aside)."""
    diffs = []
    attrs_a = {k: v for k, v in a.attrs.items() if k != "completed_at"}
    attrs_b = {k: v for k, v in b.attrs.items() if k != "completed_at"}
    if attrs_a.keys() != attrs_b.keys() or any(
        not np.array_equal(attrs_a[k], attrs_b[k], equal_nan=_numeric(attrs_a[k])) for k in attrs_a
    ):
        diffs.append(f"{path} attrs")
    if isinstance(a, h5py.Dataset):
        va, vb = a[()], b[()]
        if not np.array_equal(va, vb, equal_nan=_numeric(va)):
            diffs.append(path)
        return diffs
    if set(a) != set(b):
        return diffs + [f"{path}: {sorted(set(a) ^ set(b))}"]
    for key in a:
        diffs += _same(a[key], b[key], f"{path}/{key}")
    return diffs


def _numeric(value) -> bool:
    return np.asarray(value).dtype.kind in "fc"


def test_two_stages_without_the_raw_files_give_the_same_file(demo, runs, tmp_path):
    job, _ = runs
    name = list(demo.models)[1]
    raw = tmp_path / "raw"
    raw.mkdir()
    for suffix in (".cmcr", ".cmtr"):
        shutil.copy2(demo.folder / "recordings" / f"{name}{suffix}", raw)
    item = Item(
        name, f"{name}.cmtr", {"cmcr": str(raw / f"{name}.cmcr"), "cmtr": str(raw / f"{name}.cmtr")}
    )
    kwargs = dict(sheet=demo.sheet, labels=demo.label_folder)
    one = MeaJob(demo.csv, tmp_path / "one", steps=STEPS, **kwargs)
    two_first = MeaJob(demo.csv, tmp_path / "two", steps="1-5", **kwargs)
    two_later = MeaJob(demo.csv, tmp_path / "two", steps=LATER, **kwargs)
    for j in (one, two_first):
        result, _ = run_item(j, item)
        assert not isinstance(result, StageError), result
    shutil.rmtree(raw)
    result, _ = run_item(two_later, item)
    assert not isinstance(result, StageError), result
    assert result.tables["recordings"].steps_run.iloc[0] == "6-9,11"
    with h5py.File(one.output_path(name)) as a, h5py.File(two_later.output_path(name)) as b:
        assert _same(a, b) == []


def test_a_later_step_names_the_missing_step(demo, runs, tmp_path):
    job, results = runs
    name = list(demo.models)[0]
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy2(job.output_path(name), out / f"{name}.h5")
    item = results[name][0]
    with h5py.File(out / f"{name}.h5", "a") as f:  # a file made before step 4 ran
        del f["pipeline/steps/step4_dense_noise_sta"]
        del f["pipeline/completed_steps"]
        f["pipeline/completed_steps"] = np.array([1, 2, 3, 5, 6, 8, 9])
    error, ctx = run_item(MeaJob(demo.csv, out, steps="7"), item)
    assert ctx.failed_stage == "step7_rf_geometry"
    assert "needs step(s) 4 (dense_noise_sta)" in str(error) and name in str(error)
