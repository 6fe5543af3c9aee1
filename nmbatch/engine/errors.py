"""The exceptions nmbatch raises, in a hierarchy users can catch.

::

    NmbatchError
    ├── ConfigError               bad parameters, unknown keys, unreadable config files
    │   └── ConfigChangedError    tracked parameters differ from the cache's, and nobody decided
    ├── CacheError
    │   ├── CacheLockedError      another run holds the cache
    │   └── CacheFormatError      the directory is not an nmbatch cache (or a newer layout)
    ├── DataSourceError           the job cannot find or open its inputs (before any item runs)
    ├── NothingToRun              the job is switched off by its settings: say so, exit 0
    └── StageError                one item failed at a named stage (inside a worker)

Every error that stops a run before items start maps to exit code 2 (`EXIT_USAGE`).
"""

from __future__ import annotations

import errno

EXIT_OK = 0
EXIT_ITEMS_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class NmbatchError(Exception):
    """Base class of every error nmbatch raises on purpose."""


class ConfigError(NmbatchError):
    """Parameters or settings are invalid (unknown key, bad value, unreadable file)."""


class ConfigChangedError(ConfigError):
    """Tracked parameters differ from the cached ones and no decision was given."""

    def __init__(self, message: str, diff: list | None = None):
        super().__init__(message)
        self.diff = diff or []


class CacheError(NmbatchError):
    """The cache directory cannot be used."""


class CacheLockedError(CacheError):
    """Another run is writing to the same cache."""


class CacheFormatError(CacheError):
    """The directory is not a cache this version of nmbatch understands."""


class DataSourceError(NmbatchError):
    """The job's inputs cannot be found or opened (raised before any item runs)."""


class NothingToRun(NmbatchError):
    """The job has nothing to do by design (e.g. no event sink configured).

    Raised by :meth:`Job.from_args` before anything is opened or written; the
    command line prints the message and exits 0.
    """


class StageError(NmbatchError):
    """An item failed at a named stage.

    Jobs raise it to give a readable cause; any other exception raised inside
    ``ItemContext.stage(name)`` is recorded with that stage too.

    Parameters
    ----------
    stage : str
        The stage that failed, e.g. ``'load_signal'``.
    message : str
        What went wrong, in words a user can act on.
    """

    def __init__(self, stage: str, message: str):
        super().__init__(message)
        self.stage = stage


ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


def environment_problem(exc: BaseException) -> str | None:
    """A one-line cause for an error of the machine (disk full, read-only), else None."""
    if not isinstance(exc, OSError):
        return None
    cause = ENVIRONMENT_ERRNOS.get(exc.errno or 0)
    if cause is None:
        return None
    return f"{cause} ({exc.filename})" if exc.filename else cause
