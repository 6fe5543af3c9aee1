"""Run settings: nmbatch's section of the Dask config.

The defaults ship inside the package (``nmbatch/dask.yaml``, the project's
top-level ``dask.yaml``) and are registered with :func:`dask.config.update_defaults`,
so users override them the Dask way: config files, ``DASK_*`` environment
variables, or flags (which win).
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import dask.config
import yaml
from dask.utils import parse_timedelta


def register_defaults() -> None:
    """Add the packaged defaults under the user's own Dask config."""
    defaults = yaml.safe_load((files("nmbatch") / "dask.yaml").read_text())
    dask.config.update_defaults(defaults)


def setting(key: str, override: Any = None) -> Any:
    """``nmbatch.<key>`` from the Dask config, unless a flag gave ``override``."""
    if override is not None:
        return override
    return dask.config.get(f"nmbatch.{key}")


def seconds(key: str, override: Any = None) -> float:
    """A duration setting (``'60s'``, ``'250ms'``, or a number of seconds) in seconds."""
    value = setting(key, override)
    return float(parse_timedelta(value, default="seconds"))
