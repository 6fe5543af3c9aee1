"""The step registry: --steps parsing, what each step needs, and the run plan."""

from pathlib import Path

import pytest
import yaml

from nmbatch.mea.output import OutputState
from nmbatch.mea.pipeline import plan
from nmbatch.mea.steps import depends_on, format_steps, parse_steps, registered, registry, resolve
from nmbatch.mea.steps.registry import Step, register

PARAMS = yaml.safe_load((Path(__file__).parents[1] / "jobs" / "mea.yaml").read_text())
EVERY = tuple(s.number for s in registered())


@pytest.mark.parametrize(
    "spec, numbers",
    [
        ("1-5", (1, 2, 3, 4, 5)),
        ("6-11", (6, 7, 8, 9, 10, 11)),
        ("3,4", (3, 4)),
        (" 1-2, 5 ", (1, 2, 5)),
        ("all", EVERY),
        ("ALL", EVERY),
    ],
)
def test_parse_steps(spec, numbers):
    assert parse_steps(spec) == numbers


@pytest.mark.parametrize("spec", ["0-3", "5-12", "4-2", "x", "1-", ""])
def test_parse_steps_rejects(spec):
    with pytest.raises(ValueError):
        parse_steps(spec)


def test_all_is_every_registered_step_and_these_steps_are_registered():
    assert {1, 2, 3, 4, 5, 6, 7, 8, 9, 11} <= set(EVERY)


def test_a_step_this_version_lacks_is_named(monkeypatch):
    monkeypatch.delitem(registry._REGISTRY, 10, raising=False)
    monkeypatch.delitem(registry._REGISTRY, 6)
    with pytest.raises(ValueError, match=r"6 \(soma_geometry\), 10 \(ap_tracking\).*available"):
        resolve(parse_steps("6-11"))


def test_format_steps():
    assert format_steps([5, 1, 2, 3]) == "1-3,5"
    assert format_steps([]) == ""


def test_registry_declares_raw_needs_and_requirements():
    steps = {s.number: s for s in registered()}
    assert {n for n, s in steps.items() if s.needs_raw} == {1, 2, 5}
    assert steps[3].requires == (1, 2) and steps[4].requires == (1, 2)
    assert steps[6].requires == (1,) and steps[7].requires == (4,)
    assert steps[9].requires == (1,) and steps[11].requires == (1, 2, 6, 7)
    assert steps[1].stage == "step1_load_recording"
    assert steps[11].stage == "step11_dsgc" and steps[11].needs_stimuli
    assert all(set(s.params) <= set(PARAMS) for s in steps.values())


def test_register_refuses_bad_steps(monkeypatch):
    monkeypatch.delitem(registry._REGISTRY, 6)
    with pytest.raises(ValueError, match="twice"):
        register(Step(1, lambda inp: None, needs_raw=True))
    with pytest.raises(ValueError, match="earlier"):
        register(Step(6, lambda inp: None, needs_raw=False, requires=(7,)))
    with pytest.raises(ValueError, match="not one of"):
        register(Step(12, lambda inp: None, needs_raw=False))


def test_dependencies_are_transitive_and_unknown_steps_depend_on_earlier_ones():
    assert depends_on(3, {2}) and depends_on(4, {1})
    assert not depends_on(5, {1, 2}) and not depends_on(2, {1})
    assert depends_on(11, {4}) and depends_on(11, {6}) and not depends_on(11, {8, 9})
    assert not depends_on(8, {1, 2, 3, 4, 5}) and not depends_on(7, {8})


def _state(steps, params=PARAMS):
    return OutputState(
        None, {n: {"step": n, **s.parameters(params)} for n in steps for s in resolve([n])}
    )


def test_plan_runs_only_what_is_missing_or_changed():
    requested = resolve(range(1, 6))
    assert [s.number for s in plan(requested, None, PARAMS, False).run] == [1, 2, 3, 4, 5]
    assert plan(requested, _state([1, 2, 3, 4, 5]), PARAMS, False).run == []
    assert [s.number for s in plan(requested, _state([1, 2, 3]), PARAMS, False).run] == [4, 5]
    changed = dict(PARAMS, sta_frames=30)
    assert [s.number for s in plan(requested, _state([1, 2, 3, 4, 5]), changed, False).run] == [4]
    overwrite = plan(resolve([3]), _state([1, 2, 3, 4, 5]), PARAMS, True)
    assert [s.number for s in overwrite.run] == [3] and overwrite.drop == []


def test_plan_reruns_or_drops_what_depends_on_a_rerun_step():
    changed = dict(PARAMS, frame_threshold=0.2)
    todo = plan(resolve(range(1, 6)), _state([1, 2, 3, 4, 5]), changed, False)
    assert [s.number for s in todo.run] == [2, 3, 4]
    todo = plan(resolve([2]), _state([1, 2, 3, 4, 5]), PARAMS, True)
    assert [s.number for s in todo.run] == [2] and todo.drop == [3, 4]
