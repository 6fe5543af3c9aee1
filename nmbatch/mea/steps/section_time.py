"""Step 2: display frame times from the frame pulses, and each movie's time section."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from nmbatch.mea.errors import InputError
from nmbatch.mea.frames import detect_frame_times, frames_to_samples, movie_frames
from nmbatch.mea.steps.registry import StepInput, step
from nmbatch.mea.stimuli import load_movie_lengths, load_playlist


@step(
    2,
    needs_raw=True,
    needs_stimuli=True,
    params=(
        "frame_channel",
        "frame_percentile",
        "frame_threshold",
        "frame_skip_pulses",
        "section_pre_margin_frames",
        "section_post_margin_frames",
    ),
    outputs=("stimulus",),
)
def section_time(inp: StepInput) -> None:
    """Write ``stimulus/frame_times``, ``movie_frames/<movie>`` and ``section_time/<movie>``.

    Movies play back to back from the first frame after the start-up pulses.
    A movie's section runs from ``pre`` frames before its first frame to
    ``post`` frames after its last (clipped to the frames found), in samples,
    one row per time the movie was shown.
    """
    raw, p = inp.raw, inp.params
    playlist = load_playlist(inp.stimuli, inp.recording)
    lengths = load_movie_lengths(inp.stimuli, playlist)
    channel = int(p["frame_channel"])
    if not 0 <= channel < raw.n_analog_channels:
        raise InputError(f"no analog channel {channel} (the CMCR has {raw.n_analog_channels})")
    try:
        frames = detect_frame_times(
            lambda a, b: raw.read_analog(channel, a, b),
            raw.n_samples,
            float(p["frame_percentile"]),
            float(p["frame_threshold"]),
            int(p["frame_skip_pulses"]),
        )
    except ValueError as exc:
        raise InputError(f"analog channel {channel}: {exc}") from exc
    needed = sum(lengths[m] for m in playlist)
    if frames.size < needed:
        raise InputError(
            f"{frames.size} display frames found on analog channel {channel} (after dropping "
            f"{p['frame_skip_pulses']} start-up pulses), but the playlist shows {needed}"
        )
    spans: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for movie, first, end in movie_frames(playlist, lengths):
        spans[movie].append((first, end))
    group = inp.out.create_group("stimulus")
    group.attrs["playlist"] = playlist
    group.create_dataset("frame_times", data=frames).attrs["unit"] = "samples"
    pre, post = int(p["section_pre_margin_frames"]), int(p["section_post_margin_frames"])
    for movie, shown in spans.items():
        shown = np.array(shown, dtype=np.int64)
        section = np.stack([shown[:, 0] - pre, shown[:, 1] + post], axis=1).clip(0, frames.size)
        group.create_dataset(f"movie_frames/{movie}", data=shown)
        group.create_dataset(f"section_time/{movie}", data=frames_to_samples(section, frames))
