"""nmbatch: resumable, config-tracked batch analyses of neuroscience data on Dask.

The engine lives in :mod:`nmbatch.engine`; each job is a subpackage runnable as
``python -m nmbatch.<job>``.
"""

from importlib.metadata import version

__version__ = version("nmbatch")  # one version: pyproject.toml's
