"""Step 4: dense-noise spike-triggered averages (no raw data needed)."""

from __future__ import annotations

import logging

import numpy as np

from nmbatch.mea.frames import frames_to_samples
from nmbatch.mea.sta import dense_noise_sta, spike_frames
from nmbatch.mea.steps.registry import StepInput, step
from nmbatch.mea.stimuli import load_movie

log = logging.getLogger(__name__)


@step(
    4,
    needs_raw=False,
    needs_stimuli=True,
    requires=(1, 2),
    params=("sta_movie_prefix", "sta_frames"),
    outputs=("units/*/sta_*",),
)
def dense_noise_sta_step(inp: StepInput) -> None:
    """Write ``units/<unit>/sta_<movie>`` (frames, height, width) for each noise movie.

    Noise movies are the playlist's movies whose name starts with
    ``sta_movie_prefix``; a recording without one gets no STA (not an error). A
    unit with no spike in a usable frame gets no STA for that movie.
    """
    stimulus = inp.out["stimulus"]
    frames = stimulus["frame_times"][()]
    prefix, n_before = str(inp.params["sta_movie_prefix"]), int(inp.params["sta_frames"])
    playlist = dict.fromkeys(str(m) for m in stimulus.attrs["playlist"])
    movies = [m for m in playlist if m.startswith(prefix)]
    if not movies:
        log.info("%s: no movie starting with %r, no STA", inp.recording, prefix)
    units = list(inp.out["units"].values())
    spikes = [u["spike_times"][()] for u in units]
    for movie in movies:
        shown = stimulus[f"movie_frames/{movie}"][()]
        n_frames = int(shown[0, 1] - shown[0, 0])
        pixels = load_movie(inp.stimuli, movie, n_frames)
        ends = frames_to_samples(shown[:, 1], frames)
        per_unit = [
            np.concatenate(
                [
                    spike_frames(s, frames, f, n_frames, e)
                    for (f, _), e in zip(shown, ends, strict=True)
                ]
            )
            for s in spikes
        ]
        sta, counts = dense_noise_sta(per_unit, pixels, n_before)
        for unit, average, count in zip(units, sta, counts, strict=True):
            if count:
                ds = unit.create_dataset(f"sta_{movie}", data=average)
                ds.attrs.update(n_spikes=int(count), frames_before=n_before)
