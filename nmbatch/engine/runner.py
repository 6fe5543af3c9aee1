"""Fan a job's items out as Dask tasks and commit their outcomes as they arrive.

The driver keeps a bounded number of tasks in flight, commits each task's outcome
(already durable: the worker staged it) as it arrives, and shows progress. Very
short items are grouped several to a task so that Dask's per-task cost (about a
millisecond or two) does not dominate. A task whose worker died is looked at
before anything is recorded: only an item that was *running* when its worker died,
every time, is recorded as ``worker_lost``; items merely queued on a dying worker
are sent again.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distributed import Client, as_completed
from distributed.scheduler import KilledWorker

from nmbatch.engine import faults
from nmbatch.engine.cache import AnalysisCache
from nmbatch.engine.commit import Staged
from nmbatch.engine.errors import environment_problem
from nmbatch.engine.job import Job, Listing
from nmbatch.engine.layout import STAGING_PREFIX, STARTED_PREFIX
from nmbatch.engine.outcome import ItemRecord, TaskOutcome, failed_record, lost_record
from nmbatch.engine.plan import Plan
from nmbatch.engine.progress import Progress
from nmbatch.engine.worker import TaskSpec, run_task

log = logging.getLogger(__name__)


@dataclass
class Pacing:
    """How the runner paces tasks (run settings from ``nmbatch.runner``)."""

    tasks_per_thread: int = 2
    expected_threads: int = 0
    no_worker_warning: float = 30.0
    task_duration_target: float = 1.0
    max_items_per_task: int = 500
    allowed_failures: int = 2
    progress: bool | None = None
    progress_interval: float = 15.0
    refresh_interval: float = 5.0


@dataclass
class RunReport:
    """What a run did, for the closing summary, the run record and the exit code."""

    listed: int = 0
    selected: int = 0
    skipped: Counter = field(default_factory=Counter)
    todo: int = 0
    done: int = 0
    failed: Counter = field(default_factory=Counter)
    failed_items: list[tuple[str, str, str, str]] = field(default_factory=list)
    adopted: int = 0
    interrupted: bool = False
    elapsed_s: float = 0.0

    @property
    def n_failed(self) -> int:
        return sum(self.failed.values())

    def take(self, records: Sequence[ItemRecord]) -> int:
        """Count a task's records; return how many failed."""
        failed = 0
        for r in records:
            if r.status == "done":
                self.done += 1
                continue
            failed += 1
            self.failed[(r.stage or "run", r.error_type or "Error")] += 1
            self.failed_items.append(
                (r.item_id, r.label or "", r.stage or "run", r.error_message or "")
            )
        return failed


def _watch_for_workers(client: Client, stop: threading.Event, interval: float) -> None:
    """Warn while no worker is connected (jobs pending in a queue, or failing to start)."""
    waited = 0.0
    while not stop.wait(interval):
        waited = waited + interval if not client.nthreads() else 0.0
        if waited:
            log.warning(
                "no Dask worker connected for %.0f s: are the worker jobs pending or failing? "
                "(on SLURM: squeue, and the worker logs)",
                waited,
            )


class Runner:
    """One run's task loop: submit, keep a bounded number in flight, commit outcomes."""

    def __init__(
        self,
        client: Client,
        spec: TaskSpec,
        cache: AnalysisCache,
        report: RunReport,
        pacing: Pacing,
        on_refresh: Callable[[], None] = lambda: None,
    ):
        self.client, self.spec, self.cache, self.report, self.pacing = (
            client,
            spec,
            cache,
            report,
            pacing,
        )
        self.on_refresh = on_refresh
        self.in_flight: dict[Any, list] = {}
        self.results = as_completed()
        self.deaths: Counter = Counter()
        self.per_item = 0.0
        self.chunk = 1
        self._threads = {"count": 0, "checked": -1.0}
        self._last_refresh = time.monotonic()

    def capacity(self) -> int:
        """Tasks to keep in flight; the worker count is asked at most once a second."""
        now = time.monotonic()
        if now - self._threads["checked"] >= 1.0:
            self._threads.update(count=sum(self.client.nthreads().values()), checked=now)
        expected = max(self._threads["count"], self.pacing.expected_threads)
        return max(2, expected * self.pacing.tasks_per_thread)

    def submit(self, items: list) -> None:
        task = f"{self.spec.job.name}-{uuid.uuid4().hex[:12]}"
        attempts = [self.cache.attempts(i.id) + 1 for i in items]
        future = self.client.submit(
            run_task, self.spec, task, items, attempts, key=task, pure=False
        )
        self.in_flight[future] = items
        self.results.add(future)

    def run(self, todo: Sequence) -> RunReport:
        """Run ``todo``; on Ctrl-C (KeyboardInterrupt) cancel what is in flight and stop."""
        started = time.monotonic()
        queue = deque(todo)
        progress = Progress(
            self.spec.job.name, len(todo), self.pacing.progress, self.pacing.progress_interval
        )
        stop_watch = threading.Event()
        threading.Thread(
            target=_watch_for_workers,
            args=(self.client, stop_watch, self.pacing.no_worker_warning),
            daemon=True,
        ).start()

        def fill() -> None:
            limit = self.capacity()
            while queue and len(self.in_flight) < limit:
                self.submit([queue.popleft() for _ in range(min(self.chunk, len(queue)))])

        try:
            fill()
            for future in self.results:
                items = self.in_flight.pop(future)
                records = self._commit(future, items, queue)
                if records:
                    faults.checkpoint("after-commit")
                    progress.update(len(records), self.report.take(records))
                    self._adapt_chunk(records)
                    if self.cache.compact():
                        faults.checkpoint("after-compaction")
                    self._refresh()
                fill()
        except KeyboardInterrupt:
            self.report.interrupted = True
            self.client.cancel(list(self.in_flight))
            raise
        finally:
            stop_watch.set()
            progress.close()
            self.report.elapsed_s = time.monotonic() - started
        return self.report

    def _commit(self, future: Any, items: list, queue: deque) -> list[ItemRecord]:
        """Commit a finished task from its staged folder; [] when its items go again.

        The staged folder is the outcome, whatever Dask says of the task's answer: it
        may have been lost with a worker that died after the task finished.
        """
        task = str(future.key)
        if future.status == "error":
            exc = future.exception()
            if environment_problem(exc):
                raise exc  # a full or read-only disk stops the run; it is not the item's fault
            if isinstance(exc, KilledWorker):
                outcome = self._worker_died(task, items, queue, exc)
            else:  # the task itself broke (e.g. its folder is not writable)
                outcome = TaskOutcome(
                    task,
                    tuple(
                        failed_record(
                            i.id,
                            i.label,
                            self.spec.stamp,
                            exc,
                            stage="store",
                            attempt=self.cache.attempts(i.id) + 1,
                        )
                        for i in items
                    ),
                )
            return self.cache.commit(outcome) if outcome is not None else []
        records = self.cache.commit(TaskOutcome(task, (), f"{STAGING_PREFIX}/{task}"))
        if not records:
            queue.extendleft(reversed(items))
        return records

    def _worker_died(
        self, task: str, items: list, queue: deque, exc: KilledWorker
    ) -> TaskOutcome | None:
        """A task whose workers kept dying: keep what it finished, find the item that kills."""
        staged = f"{STAGING_PREFIX}/{task}"
        if self.cache.store.exists(staged):
            finished = TaskOutcome(task, (), staged)
            if Staged.read(self.cache.store, staged).record is not None:
                return finished  # it had finished; only its answer was lost
        folder = Path(self.spec.cache_root) / staged
        starts = list(folder.glob(f"{STARTED_PREFIX}*")) if folder.is_dir() else []
        if len(items) > 1:  # run them one per task to find which one kills workers
            for item in items:
                self.submit([item])
            return None
        item = items[0]
        self.deaths[item.id] += len(starts)
        worker = _last_worker(starts, exc)
        self.cache.store.delete(staged)
        if self.deaths[item.id] > self.pacing.allowed_failures:
            record = lost_record(
                item.id,
                item.label,
                self.spec.stamp,
                self.deaths[item.id],
                worker,
                self.cache.attempts(item.id) + 1,
            )
            return TaskOutcome(task, (record,))
        queue.appendleft(item)  # it was queued, not running, when its worker died: innocent
        return None

    def _adapt_chunk(self, records: list[ItemRecord]) -> None:
        durations = [r.duration_s for r in records if r.duration_s]
        if durations:
            mean = sum(durations) / len(durations)
            self.per_item = mean if self.per_item == 0 else 0.8 * self.per_item + 0.2 * mean
            wanted = int(self.pacing.task_duration_target / max(self.per_item, 1e-6))
            self.chunk = max(1, min(self.pacing.max_items_per_task, wanted))

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._last_refresh >= self.pacing.refresh_interval:
            self._last_refresh = now
            self.cache.update_counts()
            self.on_refresh()


def _last_worker(starts: list[Path], exc: KilledWorker) -> str | None:
    """The address of the last worker the item died on (from its start marks, or Dask's)."""
    if starts:
        newest = max(starts, key=lambda p: p.stat().st_mtime)
        return newest.read_text() or None
    last = getattr(exc, "last_worker", None)
    return getattr(last, "address", None) or (str(last) if last else None)


def run_plan(
    client: Client,
    job: Job,
    params: Mapping[str, Any],
    cache: AnalysisCache,
    listing: Listing,
    plan: Plan,
    report: RunReport,
    pacing: Pacing,
) -> RunReport:
    """Run a plan's items on ``client``, committing outcomes into ``cache`` as they arrive.

    The in-process form of a run (the command line, tests and notebooks use it); call
    :func:`finish` afterwards, also after an interruption.
    """
    cache.prepare_arrays()
    spec = TaskSpec(
        job,
        params,
        job.table_schemas(params),
        cache.id_column,
        cache.label_column,
        cache.stamp,
        cache.worker_root,
    )
    runner = Runner(client, spec, cache, report, pacing, lambda: job.on_saved(cache, listing))
    return runner.run(plan.todo)


def finish(cache: AnalysisCache, job: Job, listing: Listing, report: RunReport) -> None:
    """After a run (finished or not): commit stragglers, merge parts, refresh counts and exports."""
    report.adopted += cache.sweep_staging()
    cache.compact(final=not report.interrupted)
    cache.update_counts()
    job.on_saved(cache, listing)
