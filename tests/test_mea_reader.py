"""Reading generator-written CMCR/CMTR files through McsPy, and refusing bad ones clearly."""

import os

import h5py
import numpy as np
import pytest
from McsPy import McsCMOSMEA

from nmbatch.mea.demo_bad import SHORT_GRAY_MOVIE
from nmbatch.mea.errors import InputError
from nmbatch.mea.mcs_writer import write_cmtr, write_recording
from nmbatch.mea.reader import RawRecording, UnwrappingInt, patch_mcspy
from nmbatch.mea.synthetic import SensorSynth, build_model
from nmbatch.mea.synthetic_visual import Movie


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Two tiny recordings (about 0.25 s each) with different units."""
    folder = tmp_path_factory.mktemp("mcs")
    models = {}
    for seed, name in [(1, "2024.03.01-10.00.00-Rec"), (2, "2024.03.02-10.00.00-Rec")]:
        model = build_model(seed, [Movie(SHORT_GRAY_MOVIE, 6, "gray")], n_units=3, tail_s=0.05)
        write_recording(folder, name, model)
        models[name] = model
    return folder, models


def _open(folder, name):
    return RawRecording(folder / f"{name}.cmcr", folder / f"{name}.cmtr")


def test_patch_is_idempotent_and_behaves_like_int():
    patch_mcspy()
    patch_mcspy()
    assert McsCMOSMEA.int is UnwrappingInt
    assert UnwrappingInt(np.array([7], np.int32)) == 7 and type(UnwrappingInt("12")) is int
    assert isinstance(3, UnwrappingInt) and not isinstance(3.0, UnwrappingInt)


def test_mcspy_opens_the_generated_files(pair):
    folder, models = pair
    name, model = next(iter(models.items()))
    cmtr = McsCMOSMEA.McsData(str(folder / f"{name}.cmtr"))
    units = cmtr.Spike_Sorter.get_units_by_id()
    assert [u.attributes["UnitID"] for u in units] == [u.unit_id for u in model.units]
    stamps = units[0].get_peaks_timestamps()
    np.testing.assert_array_equal(stamps, model.units[0].spikes * 50)
    via_link = cmtr.Acquisition.Sensor_Data.SensorData_1_1
    assert via_link.shape == (model.n_samples, 65, 65)


def test_raw_recording_returns_the_planted_data(pair):
    folder, models = pair
    name, model = next(iter(models.items()))
    with _open(folder, name) as rec:
        assert rec.sampling_rate == 20_000.0 and rec.n_samples == model.n_samples
        units = rec.units()
        assert [(u.row, u.col) for u in units] == [(u.row, u.col) for u in model.units]
        for got, truth in zip(units, model.units, strict=True):
            np.testing.assert_array_equal(got.spikes, truth.spikes)
            assert got.measures["SNR"] == pytest.approx(truth.amplitude / 3.7)
        synth = SensorSynth(model.n_samples, model.units, model.seed)
        np.testing.assert_array_equal(rec.read_sensor(1000, 1200), synth[1000:1200])
        assert rec.read_analog(1, 0, 50).shape == (50,)
        cmcr_meta, cmtr_meta = rec.root_attributes()
        assert cmcr_meta["ID.Instance"] == f"{name}.cmcr" and cmtr_meta["ProgramName"]


def test_two_recordings_open_in_one_process_do_not_mix(pair):
    folder, models = pair
    (name_a, model_a), (name_b, model_b) = models.items()
    rec_a = _open(folder, name_a)
    rec_b = _open(folder, name_b)
    try:
        for rec, model in [(rec_a, model_a), (rec_b, model_b), (rec_a, model_a)]:
            spikes = [u.spikes for u in rec.units()]
            assert all(
                np.array_equal(s, u.spikes) for s, u in zip(spikes, model.units, strict=True)
            )
            synth = SensorSynth(model.n_samples, model.units, model.seed)
            np.testing.assert_array_equal(rec.read_sensor(0, 300), synth[0:300])
    finally:
        rec_a.close()
        rec_b.close()


def test_files_are_closed(pair):
    folder, models = pair
    name = next(iter(models))
    rec = _open(folder, name)
    rec.close()
    with h5py.File(folder / f"{name}.cmcr", "r+"):
        pass


@pytest.fixture
def copy_of(pair, tmp_path):
    """Hard-linked copies of one recording's files in a fresh folder, to damage one."""
    folder, models = pair
    name = next(iter(models))

    def make(new_name):
        for ext in ("cmcr", "cmtr"):
            os.link(folder / f"{name}.{ext}", tmp_path / f"{new_name}.{ext}")
        return tmp_path / f"{new_name}.cmcr", tmp_path / f"{new_name}.cmtr"

    return make


def test_missing_files(copy_of):
    cmcr, cmtr = copy_of("x")
    with pytest.raises(InputError, match="CMCR file not found"):
        RawRecording(cmcr.with_name("nope.cmcr"), cmtr)
    with pytest.raises(InputError, match="CMTR file not found"):
        RawRecording(cmcr, cmtr.with_name("nope.cmtr"))


def test_not_hdf5_and_truncated(copy_of, tmp_path):
    cmcr, cmtr = copy_of("x")
    text = tmp_path / "text.cmtr"
    text.write_text("not HDF5")
    with pytest.raises(InputError, match="not an HDF5 file"):
        RawRecording(cmcr, text)
    cut = tmp_path / "cut.cmtr"
    cut.write_bytes(cmtr.read_bytes()[: cmtr.stat().st_size // 2])
    with pytest.raises(InputError, match="truncated"):
        RawRecording(cmcr, cut)
    plain = tmp_path / "plain.cmtr"
    h5py.File(plain, "w").close()
    with pytest.raises(InputError, match="not an MCS CMOS-MEA file"):
        RawRecording(cmcr, plain)


def test_broken_link_to_the_cmcr(pair, tmp_path):
    folder, models = pair
    name, model = next(iter(models.items()))
    write_cmtr(tmp_path / f"{name}.cmtr", name, model, link="moved.cmcr")
    with pytest.raises(InputError, match="link to its CMCR is broken.*moved.cmcr"):
        RawRecording(folder / f"{name}.cmcr", tmp_path / f"{name}.cmtr")


def test_a_sensor_stream_shorter_than_the_recording_is_reported_as_such(tmp_path):
    model = build_model(5, [Movie(SHORT_GRAY_MOVIE, 6, "gray")], n_units=2, tail_s=0.05)
    name = "2024.03.03-10.00.00-Rec"
    write_recording(tmp_path, name, model, sensor_samples=1000)
    with RawRecording(tmp_path / f"{name}.cmcr", tmp_path / f"{name}.cmtr") as raw:
        assert (raw.n_samples, raw.n_sensor_samples) == (model.n_samples, 1000)
        expected = SensorSynth(model.n_samples, model.units, model.seed)[0:1000]
        np.testing.assert_array_equal(raw.read_sensor(0, 1000), expected)
