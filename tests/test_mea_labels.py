"""Label files (CSV, JSON, parquet, legacy pickles) and the restricted unpickler."""

import json
import pickle

import numpy as np
import pandas as pd
import pytest

from nmbatch.mea.errors import InputError
from nmbatch.mea.labels import load_labels, unit_id
from nmbatch.mea.safe_pickle import ForbiddenClass, load_data_pickle

REC = "2024.01.10-11.15.41-Rec"


class WritesAFile:
    """Unpickling this with plain pickle would call ``open(path, 'w')``: it creates a file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


class RunsItsState:
    """Plain pickle would import this class and call its ``__setstate__``, which writes."""

    def __init__(self, path):
        self.path = str(path)

    def __setstate__(self, state):
        with open(state["path"], "w") as f:
            f.write("ran")


@pytest.mark.parametrize(
    "obj",
    [
        pd.DataFrame({"unit": [1, 2], "label": ["RGC", "AC"], "x": [1.5, np.nan]}),
        pd.DataFrame({"unit": np.int32([1]), "label": pd.Categorical(["RGC"])}),
        pd.DataFrame({"t": [pd.Timestamp("2024-01-01", tz="UTC")], "s": pd.array(["a"], "string")}),
        pd.Series(["RGC", "AC"], index=[1, 2]),
        {1: "RGC", np.int64(2): "AC", "3": np.str_("Other")},
        np.array(["a", 1], dtype=object),
    ],
)
@pytest.mark.parametrize("protocol", [2, 5])
def test_plain_data_round_trips(tmp_path, obj, protocol):
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    back = load_data_pickle(path)
    if isinstance(obj, pd.DataFrame | pd.Series):
        assert obj.equals(back)
    elif isinstance(obj, np.ndarray):
        assert back.tolist() == obj.tolist()
    else:
        assert back == obj


@pytest.mark.parametrize("make", [WritesAFile, RunsItsState])
def test_a_pickle_that_would_run_code_is_refused_and_runs_nothing(tmp_path, make):
    marker = tmp_path / "code_ran"
    labels = tmp_path / "labels"
    labels.mkdir()
    path = labels / f"{REC}.pkl"
    path.write_bytes(pickle.dumps({1: make(marker)}))
    with pytest.raises(ForbiddenClass):
        load_data_pickle(path)
    with pytest.raises(InputError) as error:
        load_labels(labels, REC)
    forbidden = "io.open" if make is WritesAFile else f"{__name__}.RunsItsState"
    assert str(path) in str(error.value) and forbidden in str(error.value)
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # the same bytes through plain pickle do run code
    assert marker.exists()


def test_labels_from_each_format_land_on_their_units(tmp_path):
    pd.DataFrame(
        {"recording": [REC, REC, "other"], "unit": [1, "unit_002", 1], "label": ["RGC", "AC", "X"]}
    ).to_csv(tmp_path / "labels.csv", index=False)
    (tmp_path / f"{REC}_extra.json").write_text(json.dumps({"3": "Other"}))
    pd.DataFrame({"unit": [4], "label": ["Unknown"]}).to_parquet(tmp_path / f"{REC}.parquet")
    pd.Series(["RGC"], index=[5]).to_pickle(tmp_path / f"{REC}.pkl")
    (tmp_path / "2024.01.11-11.16.41-Rec.pkl").write_bytes(b"not read: another recording")
    found = load_labels(tmp_path, REC)
    assert found.by_unit == {1: "RGC", 2: "AC", 3: "Other", 4: "Unknown", 5: "RGC"}
    assert found.source[3] == f"{REC}_extra.json" and found.source[1] == "labels.csv"


@pytest.mark.parametrize(
    "name, content, phrase",
    [
        (f"{REC}.json", '[{"unit": 1,', "not valid JSON"),
        (f"{REC}.csv", "unit,kind\n1,RGC\n", "lacks column(s) label"),
        ("labels.csv", "unit,label\n1,RGC\n", "lacks column(s) recording"),
        (f"{REC}.csv", "unit,label\nfirst,RGC\n", "'first' is not a unit id"),
        (f"{REC}.parquet", "not parquet", "cannot be read"),
        (f"{REC}.pkl", "not a pickle", "cannot be read"),
    ],
)
def test_a_malformed_label_file_is_named_with_its_cause(tmp_path, name, content, phrase):
    (tmp_path / name).write_text(content)
    with pytest.raises(InputError, match="label file") as error:
        load_labels(tmp_path, REC)
    assert str(tmp_path / name) in str(error.value) and phrase in str(error.value)


def test_conflicting_labels_are_refused(tmp_path):
    pd.DataFrame({"unit": [1], "label": ["RGC"]}).to_csv(tmp_path / f"{REC}.csv", index=False)
    (tmp_path / f"{REC}.json").write_text('{"1": "AC"}')
    with pytest.raises(InputError, match="unit 1 is labelled 'RGC' in .*csv and 'AC'"):
        load_labels(tmp_path, REC)


def test_unit_ids():
    assert [unit_id(v, "f") for v in (3, 3.0, "3", " unit_003 ")] == [3, 3, 3, 3]
    with pytest.raises(InputError):
        unit_id(2.5, "f")
