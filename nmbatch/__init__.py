"""nmbatch: resumable, config-tracked batch analyses of neuroscience data on Dask.

The engine lives in :mod:`nmbatch.engine`; each job is a subpackage runnable as
``python -m nmbatch.<job>``.
"""

__version__ = "0.1.0"
