"""Read legacy pickles without running their code: plain data, numpy and pandas only.

``pickle`` rebuilds objects by calling whatever global a file names, so a pickle can
run any code. :class:`DataUnpickler` resolves only the globals on an explicit list:
Python's plain containers and scalars, numpy arrays, dtypes and scalars, and the
pandas classes a DataFrame, Series or Index of plain columns (numbers, text,
booleans, categoricals, timestamps) needs. Any other global is refused with
:class:`ForbiddenClass` naming it, before anything of it is called. pandas' own
``read_pickle`` is not used: it unpickles without restriction.
"""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path
from typing import Any

_NUMPY_CORE = ("numpy._core.multiarray", "numpy.core.multiarray")
# numpy 2 moved numpy.core to numpy._core; pickles name either, this numpy has one.
_CORE = "numpy._core" if importlib.util.find_spec("numpy._core") else "numpy.core"
ALLOWED: frozenset[tuple[str, str]] = frozenset(
    [("builtins", name) for name in ("set", "frozenset", "complex", "slice", "range", "bytearray")]
    + [("__builtin__", name) for name in ("set", "frozenset", "complex", "slice")]
    + [("collections", "OrderedDict"), ("_codecs", "encode")]
    + [("datetime", name) for name in ("datetime", "date", "time", "timedelta", "timezone")]
    + [("numpy", "ndarray"), ("numpy", "dtype")]
    + [(m, n) for m in _NUMPY_CORE for n in ("_reconstruct", "scalar")]
    + [(m, "_frombuffer") for m in ("numpy._core.numeric", "numpy.core.numeric")]
    + [
        ("pandas.core.frame", "DataFrame"),
        ("pandas.core.series", "Series"),
        ("pandas.core.indexes.base", "Index"),
        ("pandas.core.indexes.base", "_new_Index"),
        ("pandas.core.indexes.range", "RangeIndex"),
        ("pandas.core.indexes.multi", "MultiIndex"),
        ("pandas.core.indexes.datetimes", "DatetimeIndex"),
        ("pandas.core.indexes.datetimes", "_new_DatetimeIndex"),
        ("pandas.core.internals.managers", "BlockManager"),
        ("pandas.core.internals.managers", "SingleBlockManager"),
        ("pandas.core.internals.blocks", "new_block"),
        ("pandas._libs.internals", "_unpickle_block"),
        ("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked"),
        ("pandas._libs.missing", "NA"),
        ("pandas._libs.tslibs.timestamps", "_unpickle_timestamp"),
        ("pandas._libs.tslibs.timedeltas", "_timedelta_unpickle"),
        ("pandas._libs.tslibs.nattype", "__nat_unpickle"),
        ("pandas.core.arrays.categorical", "Categorical"),
        ("pandas.core.arrays.datetimes", "DatetimeArray"),
        ("pandas.core.arrays.string_", "StringArray"),
        ("pandas.core.arrays.string_", "StringDtype"),
        ("pandas.core.dtypes.dtypes", "CategoricalDtype"),
        ("pandas.core.dtypes.dtypes", "DatetimeTZDtype"),
    ]
)
# Where older numpy and pandas kept what the list names (pickles written by them say so).
RENAMED = {
    ("pandas.core.indexes.numeric", "Int64Index"): ("pandas.core.indexes.base", "Index"),
    ("pandas.core.indexes.numeric", "UInt64Index"): ("pandas.core.indexes.base", "Index"),
    ("pandas.core.indexes.numeric", "Float64Index"): ("pandas.core.indexes.base", "Index"),
}


class ForbiddenClass(pickle.UnpicklingError):
    """The pickle names a global outside :data:`ALLOWED`."""

    def __init__(self, module: str, name: str):
        super().__init__(f"{module}.{name}")
        self.global_name = f"{module}.{name}"


class DataUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals in :data:`ALLOWED`."""

    def find_class(self, module: str, name: str) -> Any:
        module, name = RENAMED.get((module, name), (module, name))
        if (module, name) not in ALLOWED:
            raise ForbiddenClass(module, name)
        for core in ("numpy.core.", "numpy._core."):
            if module.startswith(core):
                module = f"{_CORE}.{module.removeprefix(core)}"
        return super().find_class(module, name)


def load_data_pickle(path: Path) -> Any:
    """Unpickle ``path`` with :class:`DataUnpickler` (ForbiddenClass for any other global)."""
    with open(path, "rb") as f:
        return DataUnpickler(f).load()
