"""Run the requested steps on one recording, on top of what its output file already holds.

The plan: a requested step runs unless the file has it complete with the same
parameters (``--overwrite`` runs every requested step); a requested step that
uses a re-run step runs too; a completed step that uses a re-run step and was
not requested is dropped (results removed, no longer listed as complete).

The new file is built under a temporary name: a copy of the existing file
without the results about to be replaced, then the steps' results. It replaces
the existing file only when every step succeeded, or, after a failure, when it
holds every step the existing file held plus new ones (the steps done before the
failure are kept; the failed step's partial results are removed).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nmbatch.engine.errors import StageError
from nmbatch.engine.job import ItemContext
from nmbatch.mea import output
from nmbatch.mea.errors import InputError
from nmbatch.mea.reader import RawRecording
from nmbatch.mea.steps import PIPELINE, Step, StepInput, depends_on, format_steps, registered

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordingFiles:
    """One recording's name and source files."""

    name: str
    cmcr: Path
    cmtr: Path


@dataclass(frozen=True)
class Sources:
    """What the steps read besides the CMCR/CMTR: stimulus folder, sheet export, label folder."""

    stimuli: Path
    sheet: Path | None = None
    labels: Path | None = None


@dataclass
class Plan:
    """Steps to run (in order) and completed steps whose results become invalid."""

    run: list[Step]
    drop: list[int]


def plan(
    requested: list[Step],
    state: output.OutputState | None,
    params: Mapping[str, Any],
    overwrite: bool,
) -> Plan:
    """Decide what to run on top of ``state`` (see the module docstring)."""
    run = {
        s.number
        for s in requested
        if overwrite or state is None or not state.done(s.number, s.parameters(params))
    }
    grew = True
    while grew:
        extra = {s.number for s in requested if s.number not in run and depends_on(s.number, run)}
        run |= extra
        grew = bool(extra)
    done = set(state.steps) if state else set()
    drop = sorted(n for n in done - run if depends_on(n, run))
    return Plan([s for s in requested if s.number in run], drop)


@contextlib.contextmanager
def stage(ctx: ItemContext, name: str, recording: str) -> Iterator[None]:
    """``ctx.stage(name)``, turning bad-input errors into a StageError naming the recording."""
    with ctx.stage(name):
        try:
            yield
        except InputError as exc:
            raise StageError(name, f"{recording}: {exc}") from exc


def _check_prerequisites(
    todo: Plan, state: output.OutputState | None, rec: str, final: Path, ctx: ItemContext
) -> None:
    """StageError (at the step) if a step's required results will not be there."""
    have = (set(state.steps) if state else set()) - set(todo.drop)
    available = have | {s.number for s in todo.run}
    for s in todo.run:
        missing = [r for r in s.requires if r not in available]
        if missing:
            needs = ", ".join(f"{r} ({PIPELINE[r]})" for r in missing)
            with ctx.stage(s.stage):
                raise StageError(
                    s.stage,
                    f"{rec}: step {s.number} ({s.name}) needs step(s) {needs}; request them "
                    f"too (--steps) or run them first ({final.name} has steps: "
                    f"{format_steps(have) or 'none'})",
                )


def _paths_to_replace(todo: Plan) -> list[str]:
    """Results (and records) of the steps about to run or be dropped."""
    by_number = {s.number: s for s in registered()}
    patterns = []
    for number in [s.number for s in todo.run] + todo.drop:
        step = by_number.get(number)
        patterns += list(step.outputs) if step else []
        patterns.append(f"{output.RECORDS}/step{number}_{PIPELINE[number]}")  # its record
    return patterns


def process_recording(
    rec: RecordingFiles,
    requested: list[Step],
    params: Mapping[str, Any],
    out_dir: Path,
    sources: Sources,
    overwrite: bool,
    ctx: ItemContext,
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Bring ``<out_dir>/<rec.name>.h5`` up to the requested steps; return its summary row.

    Warnings of the steps that ran go to ``ctx.flags['warnings']`` (kept even when a
    later step fails) and to the row's ``warnings`` column.
    ``settings`` are the untracked run settings steps get (:class:`StepInput`).
    """
    final = out_dir / f"{rec.name}.h5"
    with stage(ctx, "prepare_output", rec.name):
        output.remove_stale_temps(final)
        state = output.read_state(final)
        todo = plan(requested, state, params, overwrite)
    if not todo.run:
        ctx.flags["completed_steps"] = sorted(state.steps)
        return output.summarize(final) | {"steps_run": "", "warnings": ""}
    _check_prerequisites(todo, state, rec.name, final, ctx)
    raw = None
    tmp = None
    try:
        if any(s.needs_raw for s in todo.run):
            with stage(ctx, "open_recording", rec.name):
                raw = RawRecording(rec.cmcr, rec.cmtr)
        with stage(ctx, "prepare_output", rec.name):
            tmp, f = output.start_file(final, state, _paths_to_replace(todo))
        failure = None
        with f:
            f.attrs.update(recording=rec.name, cmcr_path=str(rec.cmcr), cmtr_path=str(rec.cmtr))
            inp = StepInput(
                rec.name,
                f,
                params,
                sources.stimuli,
                raw,
                sources.sheet,
                sources.labels,
                settings=dict(settings or {}),
            )
            warnings: list[str] = []
            for s in todo.run:
                try:
                    with stage(ctx, s.stage, rec.name):
                        s.run(inp)
                        output.record_step(f, s.number, s.stage, s.parameters(params))
                except Exception as exc:
                    output.remove_paths(f, [*s.outputs, f"{output.RECORDS}/{s.stage}"])
                    failure = exc
                    break
                finally:
                    for message in inp.warnings:
                        warnings.append(f"{s.stage}: {rec.name}: {message}")
                        log.warning("%s", warnings[-1])
                    inp.warnings.clear()
                    if warnings:
                        ctx.flags["warnings"] = list(warnings)
            done = set(output.completed_steps(f))
        before = set(state.steps) if state else set()
        keep = failure is None or done > before
        if keep:
            with stage(ctx, "write_output", rec.name):
                output.commit(tmp, final)
        ctx.flags["completed_steps"] = sorted(done if keep else before)
        if failure is not None:
            if keep:
                log.warning("%s: kept steps %s in %s", rec.name, format_steps(done), final)
            raise failure
        summary = output.summarize(final)
        log.info("Saved: %s  Units: %d, Steps: %d", final, summary["n_units"], summary["n_steps"])
        return summary | {
            "steps_run": format_steps(s.number for s in todo.run),
            "warnings": " | ".join(warnings),
        }
    finally:
        if raw is not None:
            raw.close()
        if tmp is not None:
            tmp.unlink(missing_ok=True)
