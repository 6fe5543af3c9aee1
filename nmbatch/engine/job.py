"""What a job declares, and what its per-item function receives and returns.

A job is a subclass of :class:`Job`. The engine asks it for its items on the
driver, sends the job object and one item at a time to a worker, calls
:meth:`Job.run_item` there inside an :class:`ItemContext`, and stores the
:class:`ItemResult` it returns. The engine never looks inside items, tables or
arrays beyond their declared schemas.
"""

from __future__ import annotations

import argparse
import contextlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa

from nmbatch.engine.errors import StageError

if TYPE_CHECKING:
    from nmbatch.engine.cache import AnalysisCache
    from nmbatch.engine.report import ReportSection


@dataclass(frozen=True)
class Item:
    """One unit of work (a session, a recording, a form file).

    Parameters
    ----------
    id : str
        Stable identifier: the same input must get the same id on every run.
    label : str
        Who or what the item is about (the subject, the recording name); it is
        copied into error records so a person can read them.
    data : Mapping
        Whatever the worker needs to find the item's inputs. Keep it small and
        plain (strings, numbers, paths): it is sent to a worker with the task.
    fingerprint : str
        A short digest of the item's inputs (sizes, modification times, a QC log's
        modified stamp), or empty. A done item whose fingerprint changed runs again:
        its inputs are not the ones its results came from.
    """

    id: str
    label: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    fingerprint: str = ""


@dataclass
class ItemResult:
    """What one item produced.

    Parameters
    ----------
    tables : dict of str to DataFrame
        Rows for each result table the job declared in :meth:`Job.table_schemas`.
        The engine adds the id column and casts to the declared schema.
    arrays : dict of str to ndarray
        Arrays stored in the zarr group of this item (``arrays.zarr/<id>/<name>``).
    flags : dict
        Small per-item facts (e.g. ``can_load_trials``); kept with the item's state.
    """

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    flags: dict[str, Any] = field(default_factory=dict)


_worker_resources: dict[str, Any] = {}
_worker_resources_lock = threading.Lock()


def worker_resource(key: str, factory: Callable[[], Any]) -> Any:
    """Return a per-process object, built once by ``factory`` (e.g. a ONE instance).

    Use it for things that are expensive to open and safe to share between the
    items one worker runs; never for objects that carry per-file state.
    """
    with _worker_resources_lock:
        if key not in _worker_resources:
            _worker_resources[key] = factory()
        return _worker_resources[key]


class ItemContext:
    """Handed to :meth:`Job.run_item` on the worker.

    It names the stage that is running, so that a failure is recorded with the
    stage it happened in, and it collects flags that are kept even when the
    item fails (``ctx.flags['can_load_signal'] = True``).
    """

    def __init__(self, item: Item, params: Mapping[str, Any]):
        self.item = item
        self.params = params
        self.flags: dict[str, Any] = {}
        self.stage_name: str | None = None
        self.failed_stage: str | None = None

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Run a block as stage ``name``; an exception inside it fails the item at that stage."""
        outer = self.stage_name
        self.stage_name = name
        try:
            yield
        except BaseException as exc:
            if self.failed_stage is None:
                self.failed_stage = exc.stage if isinstance(exc, StageError) else name
            raise
        finally:
            self.stage_name = outer


@dataclass
class Listing:
    """What a job's listing found, on the driver: the items, and what its summary needs.

    Jobs subclass it to carry their own driver-side tables (the cleaned sessions,
    the CSV rows not processed); the engine hands the same object back to
    :meth:`Job.on_saved` and :meth:`Job.summary_lines`, so a job keeps no state
    between calls and what travels to the workers is only the job's settings.
    """

    items: list[Item]


class Job(ABC):
    """Base class of every analysis nmbatch runs.

    Class attributes
    ----------------
    name : str
        The one name of the job: its entry point, its package (``python -m nmbatch.<name>``),
        its parameter file ``jobs/<name>.yaml`` and its cache folder ``<output>/<name>/``.
    description : str
        One line for ``--help`` and ``nmbatch jobs``.
    id_column, label_column : str
        Column names the item id and label get in every table (``'eid'``,
        ``'subject'`` for sessions; ``'recording'`` for recordings).
    code_version : str
        The version of the job's own code as far as its results go. Bump it when a change
        may change results (a fixed bug, a new algorithm), not for refactors or messages:
        a cache made by another code version asks recompute / continue / abort.
    result_libraries : tuple of str
        Distributions (pip names) whose versions shape the results, e.g.
        ``('ibl-photometry',)``; each record carries their versions and a change is
        shown beside the parameter diff.
    worker_preload : tuple of str
        Modules every worker imports as it starts, while the cluster comes up, rather
        than when its first item arrives (slow imports such as iblphotometry).
    former_names : tuple of str
        Names this job's cache folder had before; such a folder is renamed to ``name``.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    id_column: ClassVar[str] = "item_id"
    label_column: ClassVar[str] = "label"
    code_version: ClassVar[str] = "1"
    result_libraries: ClassVar[tuple[str, ...]] = ()
    worker_preload: ClassVar[tuple[str, ...]] = ()
    former_names: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add the job's own command-line options (the engine's are added already)."""

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Job:
        """Build the job from parsed arguments; ``args.output`` is the resolved output folder.

        Raise ConfigError for options that cannot work together; touch no file yet.
        """
        return cls()

    def validate_params(self, params: Mapping[str, Any]) -> None:
        """Raise ConfigError for parameter values the job cannot run with.

        Called before anything is written or cleared, after the engine has checked
        every value's type against the job's defaults; check ranges and choices here.
        """

    def resolve_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The tracked parameters, with values the job derives from its inputs filled in.

        Called on the driver after :meth:`validate_params` and before the parameters
        are compared with the cache's, so a value that stands for an input file (a
        model's content hash) is tracked like any other: another file is a parameter
        change, shown in the diff. Raise ConfigError when such an input is unusable.
        """
        return dict(params)

    def table_schemas(self, params: Mapping[str, Any]) -> dict[str, pa.Schema]:
        """Schemas of the result tables, without the id column (the engine prepends it)."""
        return {}

    @abstractmethod
    def list_items(self, params: Mapping[str, Any]) -> Listing:
        """List the items to process, on the driver; DataSourceError if inputs are missing."""

    def is_complete(self, item: Item, params: Mapping[str, Any]) -> bool | None:
        """Whether the item's own outputs (outside the cache) are complete.

        None (the default): no opinion, the cache decides. True: skip the item, its output
        exists. False: run it even if the cache has it done (an output that is missing,
        incomplete, or to be overwritten).
        """
        return None

    @abstractmethod
    def run_item(self, item: Item, ctx: ItemContext) -> ItemResult:
        """Process one item on a worker. Wrap each step in ``ctx.stage(name)``."""

    def on_saved(self, cache: AnalysisCache, listing: Listing) -> None:
        """Called on the driver after outcomes reach the cache (e.g. to refresh an export)."""

    def summary_lines(self, cache: AnalysisCache, listing: Listing | None) -> list[str]:
        """Extra lines for the closing summary (``listing`` is None when nothing was listed)."""
        return []

    @classmethod
    def report_sections(cls, cache: AnalysisCache) -> list[ReportSection]:
        """The job's own part of the HTML report, drawn from its cache alone (default: none).

        A classmethod: the report is written after the run and by ``nmbatch report DIR``,
        where no job object (and none of its command-line settings) exists.
        """
        return []
