"""Model files: a lab's trained weights as a ``.pth`` state dict, read without unpickling code.

Only a state dict (a mapping of parameter names to tensors, as
``torch.save(model.state_dict(), path)`` writes) is accepted, read with
``torch.load(..., weights_only=True)``. A file holding a whole pickled model
would run arbitrary code when loaded, so it is refused with the one-line
conversion the lab can run on a machine where it trusts the file. The file's
SHA-256 identifies the model in the tracked parameters.
"""

from __future__ import annotations

import hashlib
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from nmbatch.mea.axon.network import AxonNet

CHECKPOINT_KEYS = ("state_dict", "model_state_dict")  # common layouts of training checkpoints
OPTIONAL_SUFFIX = ".num_batches_tracked"
CONVERT_HINT = (
    'convert it once, where you trust the file, with: python -c "import torch; '
    "torch.save(torch.load('{path}', weights_only=False).state_dict(), 'state_dict.pth')\" "
    "and pass state_dict.pth"
)


class ModelFileError(Exception):
    """A model file is missing, unreadable, not a state dict, or not this network's weights."""


def file_sha256(path: Path) -> str:
    """The SHA-256 (hex) of a file's content."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError:
        raise ModelFileError(f"AP model file not found: {path}") from None
    except OSError as exc:
        raise ModelFileError(f"AP model file {path} cannot be read: {exc.strerror}") from None
    return digest.hexdigest()


def _unwrap(obj: object) -> object:
    """The state dict inside a checkpoint dict; a DataParallel ``module.`` prefix removed."""
    if isinstance(obj, Mapping):
        for key in CHECKPOINT_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
        keys = list(obj)
        if keys and all(isinstance(k, str) and k.startswith("module.") for k in keys):
            obj = {k.removeprefix("module."): v for k, v in obj.items()}
    return obj


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a state-dict file; ModelFileError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"AP model file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.findall(r"GLOBAL (\S+)", str(exc))  # torch names a class it will not build
        if not found:
            raise ModelFileError(f"AP model file {path} is not a torch state-dict file") from None
        raise ModelFileError(
            f"AP model file {path} holds pickled Python objects (a whole saved model?), not a "
            "state dict; nmbatch loads weights only and never unpickles code: "
            + CONVERT_HINT.format(path=path)
            + f" (it holds a {found[0]})"
        ) from None
    except Exception as exc:  # torch.load raises many types for a file that is not its format
        raise ModelFileError(
            f"AP model file {path} is not a torch state-dict file ({type(exc).__name__}: {exc})"
        ) from None
    obj = _unwrap(obj)
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelFileError(
            f"AP model file {path} holds a {type(obj).__name__}, not a state dict of tensors; "
            + CONVERT_HINT.format(path=path)
        )
    return dict(obj)


def load_model(path: Path) -> AxonNet:
    """An :class:`AxonNet` in eval mode with the weights of ``path``."""
    state = read_state_dict(path)
    model = AxonNet()
    expected = model.state_dict()
    # BatchNorm's batch counter only matters for training; old torch versions did not save it
    missing = sorted(k for k in set(expected) - set(state) if not k.endswith(OPTIONAL_SUFFIX))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ModelFileError(
            f"AP model file {path} does not hold this network's weights: missing "
            f"{', '.join(missing) or 'none'}; unexpected {', '.join(unexpected) or 'none'} "
            f"(rename the keys to {', '.join(sorted({k.split('.')[0] for k in expected}))})"
        )
    wrong = [k for k, v in state.items() if v.shape != expected[k].shape]
    if wrong:
        shapes = ", ".join(
            f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}" for k in wrong
        )
        raise ModelFileError(f"AP model file {path}: tensor shapes differ: {shapes}")
    model.load_state_dict(state, strict=False)
    return model.eval()


def save_model(model: AxonNet, path: Path) -> str:
    """Write the model's state dict (tensors only) to ``path``; return the file's SHA-256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:  # a file object: the archive's inner names do not depend on ours
        torch.save({k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, f)
    tmp.replace(path)
    return file_sha256(path)
