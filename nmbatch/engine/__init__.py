"""The engine: config per analysis, the resumable cache, the Dask runner, clusters, the CLI.

It knows no job. Jobs subclass :class:`Job` and are found through the
``nmbatch.jobs`` entry-point group (see ``pyproject.toml``).
"""

from nmbatch.engine.settings import register_defaults

register_defaults()

from nmbatch.engine.cache import AnalysisCache  # noqa: E402
from nmbatch.engine.config import get_analysis_config  # noqa: E402
from nmbatch.engine.errors import (  # noqa: E402
    CacheError,
    CacheLockedError,
    ConfigChangedError,
    ConfigError,
    DataSourceError,
    NmbatchError,
    NothingToRun,
    StageError,
)
from nmbatch.engine.job import (  # noqa: E402
    Item,
    ItemContext,
    ItemResult,
    Job,
    Listing,
    worker_resource,
)

__all__ = [
    "AnalysisCache",
    "CacheError",
    "CacheLockedError",
    "ConfigChangedError",
    "ConfigError",
    "DataSourceError",
    "Item",
    "ItemContext",
    "ItemResult",
    "Job",
    "Listing",
    "NmbatchError",
    "NothingToRun",
    "StageError",
    "get_analysis_config",
    "worker_resource",
]
