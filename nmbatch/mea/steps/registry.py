"""The pipeline's numbered steps, and what each one needs, uses and writes.

A step is a function of a :class:`StepInput` that reads earlier results from
the output file being built (and, if it ``needs_raw``, from the CMCR/CMTR) and
writes its own results into it. Steps register themselves with :func:`step`.
Steps that do not need raw data can run on an existing output file after the
CMCR/CMTR are gone (the second stage of two-stage processing). A step reports a
problem that does not stop the recording (no sheet row, an STA too noisy to fit)
with :meth:`StepInput.warn`; the job keeps those as the recording's warnings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import h5py

    from nmbatch.mea.reader import RawRecording

PIPELINE = {
    1: "load_recording",
    2: "section_time",
    3: "section_spikes",
    4: "dense_noise_sta",
    5: "metadata",
    6: "soma_geometry",
    7: "rf_geometry",
    8: "sheet_metadata",
    9: "cell_type",
    10: "ap_tracking",
    11: "dsgc",
}


@dataclass
class StepInput:
    """What a step works with: the recording's name, the output being built, inputs.

    ``sheet`` is the lab sheet's export (step 8) and ``labels`` the folder of
    cell-type label files (step 9); either may be None (not given, not found).
    ``settings`` are run settings a step may need that are not tracked (the AP
    model file and device of step 10); ``params`` are the tracked parameters.
    """

    recording: str
    out: h5py.File
    params: Mapping[str, Any]
    stimuli: Path
    raw: RawRecording | None = None
    sheet: Path | None = None
    labels: Path | None = None
    warnings: list[str] = field(default_factory=list)
    settings: Mapping[str, Any] = field(default_factory=dict)

    def warn(self, message: str) -> None:
        """Note a problem that leaves the step's results usable (kept as a recording flag)."""
        self.warnings.append(message)


@dataclass(frozen=True)
class Step:
    """One registered step.

    Attributes
    ----------
    number : int
        Position in the pipeline (1-11).
    run : callable
        ``run(StepInput)``; raises ``InputError`` for bad inputs.
    needs_raw : bool
        Reads the CMCR/CMTR (otherwise only the output file and the stimulus folder).
    needs_stimuli : bool
        Reads the stimulus folder.
    requires : tuple of int
        Earlier steps whose results it reads.
    params : tuple of str
        The job parameters it uses; recorded in the file with its results.
    outputs : tuple of str
        Paths it writes (``*`` matches one level), removed before it runs again.
    """

    number: int
    run: Callable[[StepInput], None]
    needs_raw: bool
    needs_stimuli: bool = False
    requires: tuple[int, ...] = ()
    params: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return PIPELINE[self.number]

    @property
    def stage(self) -> str:
        """The stage name failures are recorded under, e.g. ``step1_load_recording``."""
        return f"step{self.number}_{self.name}"

    def parameters(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The values of the parameters this step uses."""
        return {key: params[key] for key in self.params}


_REGISTRY: dict[int, Step] = {}


def register(new: Step) -> None:
    """Add a step; its number must be one of the pipeline's and its requirements earlier."""
    if new.number not in PIPELINE:
        raise ValueError(f"step {new.number} is not one of the pipeline's steps 1-{len(PIPELINE)}")
    if new.number in _REGISTRY:
        raise ValueError(f"step {new.number} ({new.name}) is registered twice")
    if any(r >= new.number for r in new.requires):
        raise ValueError(f"step {new.number} can only require earlier steps, not {new.requires}")
    _REGISTRY[new.number] = new


def step(number: int, **spec: Any) -> Callable[[Callable[[StepInput], None]], Any]:
    """Decorator registering a function as step ``number`` (keywords as :class:`Step`)."""

    def wrap(run: Callable[[StepInput], None]) -> Callable[[StepInput], None]:
        register(Step(number, run, **spec))
        return run

    return wrap


def registered() -> list[Step]:
    """All registered steps, in pipeline order."""
    return [_REGISTRY[n] for n in sorted(_REGISTRY)]


def format_steps(numbers: Iterable[int]) -> str:
    """``[1, 2, 3, 5]`` -> ``'1-3,5'``."""
    numbers = sorted(set(numbers))
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return ",".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)


def parse_steps(spec: str) -> tuple[int, ...]:
    """Step numbers from ``'all'``, ``'1-5'``, ``'6-11'``, ``'2,4'`` or ``'1-3,5'``.

    ``all`` means every registered step whose required steps are registered too.
    Any of the pipeline's numbers is accepted here; :func:`resolve` says whether
    this version has them.
    """
    spec = spec.strip().lower()
    if spec == "all":
        return tuple(
            n for n in sorted(_REGISTRY) if all(r in _REGISTRY for r in _REGISTRY[n].requires)
        )
    numbers: set[int] = set()
    for part in spec.split(","):
        lo, sep, hi = part.strip().partition("-")
        try:
            first, last = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise ValueError(f"bad step list {spec!r}: use e.g. 1-5, 6-11, 2,4 or all") from None
        if not 1 <= first <= last <= len(PIPELINE):
            raise ValueError(f"bad step range {part.strip()!r}: steps are 1-{len(PIPELINE)}")
        numbers.update(range(first, last + 1))
    return tuple(sorted(numbers))


def resolve(numbers: Iterable[int]) -> list[Step]:
    """The registered steps for ``numbers``; ValueError naming any this version lacks."""
    numbers = sorted(set(numbers))
    missing = [n for n in numbers if n not in _REGISTRY]
    if missing:
        names = ", ".join(f"{n} ({PIPELINE[n]})" for n in missing)
        raise ValueError(
            f"step(s) {names} not available in this version (available: {format_steps(_REGISTRY)})"
        )
    return [_REGISTRY[n] for n in numbers]


def depends_on(number: int, others: set[int]) -> bool:
    """Whether step ``number`` uses (directly or not) results of any of ``others``.

    An unregistered step (e.g. written by a newer version) is assumed to use
    every earlier step.
    """
    if number not in _REGISTRY:
        return any(o < number for o in others)
    return any(r in others or depends_on(r, others) for r in _REGISTRY[number].requires)
