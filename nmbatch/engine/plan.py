"""What a run would do and why: each listed item in one group, before anything runs.

"To do" is a set difference (DataJoint's autopopulate): the selected items minus
those whose results are current. An item runs when it is new, failed before (with
``--retry-errors``), its done record was made with other parameters or provenance
(after 'recompute'), its inputs changed (its fingerprint), or the job says its own
output is missing. ``nmbatch plan`` / ``--plan`` prints the groups and exits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nmbatch.engine.errors import ConfigError, DataSourceError
from nmbatch.engine.index import ItemIndex
from nmbatch.engine.job import Item, Job, Listing
from nmbatch.engine.outcome import Stamp

NEW = "new"
FAILED_BEFORE = "failed before"
PARAMS_CHANGED = "parameters changed"
CODE_CHANGED = "code or libraries changed"
INPUT_CHANGED = "input changed"
OUTPUT_MISSING = "output missing or incomplete"
DONE = "done"
OUTPUT_EXISTS = "output exists"
# ItemIndex.compare's answer -> the item's group
COMPARED_GROUPS = {
    "new": NEW,
    "failed": FAILED_BEFORE,
    "parameters": PARAMS_CHANGED,
    "provenance": CODE_CHANGED,
    "input": INPUT_CHANGED,
    "current": DONE,
}
RUN_GROUPS = (NEW, FAILED_BEFORE, PARAMS_CHANGED, CODE_CHANGED, INPUT_CHANGED, OUTPUT_MISSING)


@dataclass
class Selection:
    """How to pick items from the listing (run settings, never tracked parameters)."""

    start: int | None = None
    end: int | None = None
    limit: int | None = None
    only: Sequence[str] = ()
    retry_errors: bool = False

    def validate(self) -> None:
        """Refuse selections that cannot mean anything (before anything is opened)."""
        for name in ("start", "end", "limit"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"--{name} {value}: must be 0 or more")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ConfigError(f"--start {self.start} --end {self.end}: --end must be after --start")


@dataclass
class Plan:
    """Every selected item in one group; ``todo`` the ones this run processes, in order."""

    listed: int
    selected: int
    groups: dict[str, list[Item]] = field(default_factory=dict)
    skipped_failed: list[Item] = field(default_factory=list)
    todo: list[Item] = field(default_factory=list)
    unmatched_only: list[str] = field(default_factory=list)
    limited: int = 0

    def count(self, group: str) -> int:
        return len(self.groups.get(group, []))


def make_plan(
    job: Job,
    listing: Listing,
    params: Mapping[str, Any],
    index: ItemIndex,
    stamp: Stamp,
    selection: Selection,
    recompute_changed: bool,
) -> Plan:
    """Group the listed items. ``recompute_changed``: items done with other parameters or
    provenance run (the decision was recompute, or the plan shows what it would do)."""
    items = list(listing.items)
    seen: set[str] = set()
    repeated = {i.id for i in items if i.id in seen or seen.add(i.id)}
    if repeated:
        raise DataSourceError(
            f"{job.name}: item ids must be unique, repeated: {sorted(repeated)[:5]}"
        )
    plan = Plan(listed=len(items), selected=0)
    items = items[selection.start : selection.end]
    if selection.only:
        wanted = set(selection.only)
        known = {i.id for i in items} | {i.label for i in items}
        plan.unmatched_only = [w for w in selection.only if w not in known]
        items = [i for i in items if i.id in wanted or i.label in wanted]
    plan.selected = len(items)
    ask_job = _checks_outputs(job)
    for item in items:
        group = _group(job, item, params, index, stamp, ask_job)
        plan.groups.setdefault(group, []).append(item)
        if group == FAILED_BEFORE and not selection.retry_errors:
            plan.skipped_failed.append(item)
        elif group in (PARAMS_CHANGED, CODE_CHANGED) and not recompute_changed:
            continue
        elif group in RUN_GROUPS:
            plan.todo.append(item)
    if selection.limit is not None and len(plan.todo) > selection.limit:
        plan.limited = len(plan.todo) - selection.limit
        plan.todo = plan.todo[: selection.limit]
    return plan


def _group(
    job: Job, item: Item, params: Mapping[str, Any], index: ItemIndex, stamp: Stamp, ask_job: bool
) -> str:
    """``ask_job``: the job's own completeness check comes first."""
    own = job.is_complete(item, params) if ask_job else None
    if own is True:
        return OUTPUT_EXISTS
    compared = index.compare(item.id, stamp, item.fingerprint)
    if own is False and compared != "new":  # a first run's items are new, not "run again"
        return OUTPUT_MISSING
    return COMPARED_GROUPS[compared]


def _checks_outputs(job: Job) -> bool:
    """Whether the job has its own completeness check (most leave it to the cache)."""
    return type(job).is_complete is not Job.is_complete


def format_plan(name: str, plan: Plan, verbose: bool = False, limit: int = 20) -> str:
    """The plan as a person reads it: what would run and why, what is skipped."""
    run = [(g, plan.groups.get(g, [])) for g in RUN_GROUPS]
    would_run = len(plan.todo)
    lines = [f"=== {name}: plan (nothing is run) ===", f"  listed {plan.listed:>10}"]
    if plan.selected != plan.listed:
        lines.append(f"  selected {plan.selected:>8}  (--start/--end/--only)")
    lines.append(f"  would run {would_run:>7}")
    notes = {
        FAILED_BEFORE: "with --retry-errors" if not plan.skipped_failed else "",
        PARAMS_CHANGED: "on recompute",
        CODE_CHANGED: "on recompute",
    }
    for group, members in run:
        runs = [m for m in members if m in plan.todo]
        if runs:
            note = notes.get(group, "")
            lines.append(f"    {group:<30}{len(runs):>7}  {note}".rstrip())
            lines += _listed(runs, verbose, limit)
    skipped = plan.selected - would_run
    lines.append(f"  skipped {skipped:>9}")
    for group, members, note in (
        (DONE, plan.groups.get(DONE, []), ""),
        (OUTPUT_EXISTS, plan.groups.get(OUTPUT_EXISTS, []), "the job's own check"),
        (FAILED_BEFORE, plan.skipped_failed, "--retry-errors runs them"),
        (
            PARAMS_CHANGED,
            [m for m in plan.groups.get(PARAMS_CHANGED, []) if m not in plan.todo],
            "kept: continue was chosen",
        ),
        (
            CODE_CHANGED,
            [m for m in plan.groups.get(CODE_CHANGED, []) if m not in plan.todo],
            "kept: continue was chosen",
        ),
    ):
        if members:
            lines.append(f"    {group:<30}{len(members):>7}  {note}".rstrip())
            lines += _listed(members, verbose, limit)
    if plan.limited:
        lines.append(f"    {'over --limit':<30}{plan.limited:>7}")
    for wanted in plan.unmatched_only:
        lines.append(f"  warning: --only {wanted} matches no listed item")
    return "\n".join(lines)


def _listed(items: list[Item], verbose: bool, limit: int) -> list[str]:
    if not verbose:
        return []
    lines = [f"      {i.id}" + (f"  ({i.label})" if i.label else "") for i in items[:limit]]
    if len(items) > limit:
        lines.append(f"      ... and {len(items) - limit} more")
    return lines
