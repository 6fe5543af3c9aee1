"""Model files: state dicts load; whole pickled models and other files are refused unread."""

from __future__ import annotations

import hashlib
import os

import pytest
import torch

from nmbatch.mea.axon.model_file import (
    ModelFileError,
    file_sha256,
    load_model,
    read_state_dict,
    save_model,
)
from nmbatch.mea.axon.network import AxonNet
from nmbatch.mea.axon.run_settings import DEMO_MODEL


class Payload:
    """Unpickling this would create a file: the proof that nothing was unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_state_dict_round_trip(tmp_path):
    torch.manual_seed(0)
    model = AxonNet()
    sha = save_model(model, tmp_path / "m.pth")
    assert sha == hashlib.sha256((tmp_path / "m.pth").read_bytes()).hexdigest()
    assert sha == file_sha256(tmp_path / "m.pth")
    loaded = load_model(tmp_path / "m.pth")
    assert not loaded.training
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_common_checkpoint_layouts_are_accepted(tmp_path):
    state = AxonNet().state_dict()
    torch.save({"epoch": 3, "state_dict": state}, tmp_path / "checkpoint.pth")
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "parallel.pth")
    old = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save(old, tmp_path / "old.pth")
    for name in ("checkpoint.pth", "parallel.pth", "old.pth"):
        load_model(tmp_path / name)


def test_a_whole_pickled_model_is_refused_with_the_conversion(tmp_path):
    torch.save(AxonNet(), tmp_path / "whole.pth")
    with pytest.raises(ModelFileError) as error:
        load_model(tmp_path / "whole.pth")
    message = str(error.value)
    assert "never unpickles" in message and ".state_dict()" in message
    assert "weights_only=False" in message and "AxonNet" in message


def test_a_malicious_pickle_is_never_executed(tmp_path):
    marker = tmp_path / "was-executed"
    torch.save({"conv1.weight": Payload(marker)}, tmp_path / "evil.pth")
    with pytest.raises(ModelFileError, match="pickled Python objects"):
        read_state_dict(tmp_path / "evil.pth")
    assert not marker.exists()


def test_other_files_get_a_clear_error(tmp_path):
    (tmp_path / "text.pth").write_text("not a model\n")
    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pth")
    state = AxonNet().state_dict()
    state["fc_out.weight"] = torch.zeros(2, 32)
    torch.save(state, tmp_path / "shape.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    cases = {
        "missing.pth": "not found",
        "text.pth": "not a torch state-dict file",
        "other.pth": "missing bn1.bias",
        "shape.pth": "fc_out.weight (2, 32) != (1, 32)",
        "list.pth": "holds a list, not a state dict",
    }
    for name, phrase in cases.items():
        with pytest.raises(ModelFileError, match="AP model file") as error:
            load_model(tmp_path / name)
        assert phrase in str(error.value), name


def test_the_bundled_demo_model_is_small_and_loads():
    assert DEMO_MODEL.stat().st_size < 5_000_000
    load_model(DEMO_MODEL)
