"""Step 3: each unit's spikes per movie section and per trial (no raw data needed)."""

from __future__ import annotations

import numpy as np

from nmbatch.mea.errors import InputError
from nmbatch.mea.frames import frames_to_samples, spikes_in_windows, trial_frames
from nmbatch.mea.steps.registry import StepInput, step
from nmbatch.mea.stimuli import load_trial_config


def _trial_windows(inp: StepInput, movie: str, shown: np.ndarray, frames: np.ndarray):
    """Trial windows (samples) over every showing of ``movie``, or None without a config."""
    config = load_trial_config(inp.stimuli, movie)
    if config is None:
        return None
    try:
        trials = np.concatenate([trial_frames(config, end - first) + first for first, end in shown])
    except ValueError as exc:
        raise InputError(f"trial config of {movie}: {exc}") from exc
    return frames_to_samples(trials, frames)


@step(
    3,
    needs_raw=False,
    needs_stimuli=True,
    requires=(1, 2),
    outputs=("units/*/spike_times_sectioned",),
)
def section_spikes(inp: StepInput) -> None:
    """Write ``units/<unit>/spike_times_sectioned/<movie>/``.

    ``full_spike_times`` are the spikes in the movie's section(s);
    ``trials_start_end`` (trials, 2), ``trials_spike_times`` (all trials'
    spikes, concatenated) and ``trials_spike_offsets`` (trials + 1; trial i is
    ``trials_spike_times[offsets[i]:offsets[i + 1]]``) exist when the movie has a
    trial config. All times are samples of the recording.
    """
    stimulus = inp.out["stimulus"]
    frames = stimulus["frame_times"][()]
    movies = list(dict.fromkeys(str(m) for m in stimulus.attrs["playlist"]))
    sections = {m: stimulus[f"section_time/{m}"][()] for m in movies}
    trials = {m: _trial_windows(inp, m, stimulus[f"movie_frames/{m}"][()], frames) for m in movies}
    for unit in inp.out["units"].values():
        spikes = unit["spike_times"][()]
        sectioned = unit.create_group("spike_times_sectioned")
        for movie in movies:
            group = sectioned.create_group(movie)
            group.create_dataset(
                "full_spike_times", data=spikes_in_windows(spikes, sections[movie])[0]
            )
            if trials[movie] is not None:
                times, offsets = spikes_in_windows(spikes, trials[movie])
                group.create_dataset("trials_start_end", data=trials[movie])
                group.create_dataset("trials_spike_times", data=times)
                group.create_dataset("trials_spike_offsets", data=offsets)
