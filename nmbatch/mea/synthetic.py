"""A seeded model of a retina MEA recording with known ground truth.

Units sit on soma electrodes and leave a spatio-temporal spike waveform around
them in the 65 x 65 sensor data; a display runs a playlist at 60 fps and marks
every frame with a pulse on an analog channel; units fire from a Poisson process
whose rate follows the movie on screen (receptive fields, flashes, a moving bar:
:mod:`nmbatch.mea.synthetic_visual`). :mod:`nmbatch.mea.demo` writes the model to
CMCR/CMTR files; the eimage benchmark streams :class:`SensorSynth` blocks without a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from nmbatch.mea.axon.planted import PlantedAxon, axon_entries, plant_entries
from nmbatch.mea.mcs_layout import N_COLS, N_ROWS
from nmbatch.mea.synthetic_visual import Movie, assign_visual, frame_rates, noise_movie

FS = 20_000.0
DISPLAY_FPS = 60.0
STARTUP_PULSES = 4
PULSE_SAMPLES = 40
REFRACTORY_SAMPLES = 40
WAVEFORM_OFFSETS = np.arange(-8, 24)
AXON_LAGS = np.arange(-4, 40)  # samples around a spike that its axon may reach
FOOTPRINT_RADIUS = 4


@dataclass
class UnitModel:
    """Ground truth of one unit. ``row``/``col`` are 1-based electrodes, ``rf`` a 0-based pixel.

    ``rf`` is the noise pixel where the receptive field peaks; ``rf_center`` (y, x) its
    exact centre in noise pixels, ``rf_sigma`` (major, minor) in noise pixels,
    ``rf_angle`` the major axis' angle (radians, from +x towards +y); ``rf_sign`` +1
    ON, -1 OFF, 0 none. ``ds_preferred_deg`` is NaN for a unit not direction-tuned.
    """

    unit_id: int
    row: int
    col: int
    amplitude: float
    spread: float
    rf: tuple[int, int]
    rf_sign: int
    silent: bool = False
    axon: PlantedAxon | None = None  # its axon's ground truth (step 10), None: no axon
    spikes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    excluded: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    rf_center: tuple[float, float] = (7.0, 7.0)
    rf_sigma: tuple[float, float] = (1.0, 1.0)
    rf_angle: float = 0.0
    ds_preferred_deg: float = float("nan")
    ds_kappa: float = 0.0
    bar_peak_hz: float = 0.0


@dataclass
class RecordingModel:
    """Everything the generator planted in one recording."""

    n_samples: int
    startup_pulses: np.ndarray
    frame_times: np.ndarray
    playlist: list[Movie]
    movie_start: dict[str, int]
    movies: dict[str, np.ndarray]
    units: list[UnitModel]
    seed: int


def waveform_template(amplitude: float, spread: float) -> np.ndarray:
    """Spike waveform (time, 9, 9) around the soma: sharp trough at 0, slow rebound after."""
    t = WAVEFORM_OFFSETS.astype(float)
    temporal = -np.exp(-(t**2) / 8.0) + 0.35 * np.exp(-((t - 8.0) ** 2) / 50.0)
    temporal /= -temporal.min()
    d = np.arange(-FOOTPRINT_RADIUS, FOOTPRINT_RADIUS + 1, dtype=float)
    spatial = np.exp(-(d[:, None] ** 2 + d[None, :] ** 2) / (2 * spread**2))
    return amplitude * temporal[:, None, None] * spatial[None]


class SensorSynth:
    """65 x 65 int16 sensor data generated on demand, block by block, from a seed.

    The same block is always generated identically, so any slice is reproducible
    without holding the recording: electrode offsets, a slow common wobble that
    the high-pass filter must remove, uniform noise (-7..8) and the units' waveforms.
    """

    def __init__(self, n_samples: int, units: Sequence[UnitModel], seed: int, block: int = 2000):
        self.shape = (n_samples, N_ROWS, N_COLS)
        self.dtype = np.dtype(np.int16)
        self._block = block
        self._seed = seed
        rng = np.random.default_rng([seed, 1])
        self._offsets = rng.integers(-300, 300, (N_ROWS, N_COLS)).astype(np.int16)
        self._units = [
            (u.spikes, u.row - 1, u.col - 1, np.rint(waveform_template(u.amplitude, u.spread)))
            for u in units
            if u.spikes.size
        ]
        self._axons = [
            (u.spikes, axon_entries(u.axon, u.row - 1, u.col - 1, AXON_LAGS, (N_ROWS, N_COLS)))
            for u in units
            if u.spikes.size and u.axon is not None
        ]

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: slice) -> np.ndarray:
        start, stop, step = key.indices(self.shape[0])
        if step != 1:
            raise IndexError("SensorSynth supports contiguous slices only")
        first, last = start // self._block, (max(stop, start + 1) - 1) // self._block
        parts = [self._make_block(k) for k in range(first, last + 1)]
        data = np.concatenate(parts) if len(parts) > 1 else parts[0]
        return data[start - first * self._block : stop - first * self._block]

    def _make_block(self, k: int) -> np.ndarray:
        a = k * self._block
        b = min(a + self._block, self.shape[0])
        rng = np.random.default_rng([self._seed, 2, k])
        size = (b - a) * N_ROWS * N_COLS
        words = rng.bit_generator.random_raw(-(-size // 8)).view(np.uint8)[:size]
        data = (words & np.uint8(15)).reshape(b - a, N_ROWS, N_COLS).astype(np.int16)
        wobble = np.rint(25 * np.sin(2 * np.pi * 7.0 * np.arange(a, b) / FS)).astype(np.int16)
        data += self._offsets[None] - 7
        data += wobble[:, None, None]
        for spikes, r, c, template in self._units:
            _plant(data, a, spikes, r, c, template)
        for spikes, entries in self._axons:
            plant_entries(data, a, spikes, entries)
        return data


def _plant(data: np.ndarray, start: int, spikes: np.ndarray, row: int, col: int, template):
    """Add ``template`` around (row, col) at every spike overlapping ``data`` (vectorised)."""
    lo = np.searchsorted(spikes, start - WAVEFORM_OFFSETS[-1], "left")
    hi = np.searchsorted(spikes, start + data.shape[0] - WAVEFORM_OFFSETS[0], "left")
    if lo == hi:
        return
    t = spikes[lo:hi, None] + WAVEFORM_OFFSETS[None, :] - start
    spike_k, lag_k = np.nonzero((t >= 0) & (t < data.shape[0]))
    d = np.arange(-FOOTPRINT_RADIUS, FOOTPRINT_RADIUS + 1)
    rr, cc = np.meshgrid(row + d, col + d, indexing="ij")
    inside = (rr >= 0) & (rr < N_ROWS) & (cc >= 0) & (cc < N_COLS)
    values = template[lag_k][:, inside].astype(data.dtype)
    np.add.at(data, (t[spike_k, lag_k][:, None], rr[inside][None], cc[inside][None]), values)


def display_timeline(
    playlist: Sequence[Movie], start_s: float = 0.1
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Startup pulses, one frame time per playlist frame (samples), and each movie's first frame."""
    period = FS / DISPLAY_FPS
    start = round(start_s * FS)
    startup = start - PULSE_SAMPLES * 3 * np.arange(STARTUP_PULSES, 0, -1)
    n_frames = sum(m.n_frames for m in playlist)
    frames = np.rint(start + period * np.arange(n_frames)).astype(np.int64)
    first = np.cumsum([0] + [m.n_frames for m in playlist[:-1]])
    return (
        startup.astype(np.int64),
        frames,
        {m.name: int(f) for m, f in zip(playlist, first, strict=True)},
    )


def poisson_spikes(
    rng: np.random.Generator, edges: np.ndarray, rates: np.ndarray, n_samples: int
) -> np.ndarray:
    """Spike samples of a piecewise-constant rate (``rates[i]`` on ``[edges[i], edges[i+1])``)."""
    durations = np.diff(edges)
    counts = rng.poisson(rates * durations / FS)
    starts = np.repeat(edges[:-1], counts)
    spikes = starts + np.floor(rng.random(starts.size) * np.repeat(durations, counts)).astype(int)
    spikes = np.sort(spikes[(spikes >= 0) & (spikes < n_samples)])
    while spikes.size > 1:
        keep = np.concatenate([[True], np.diff(spikes) >= REFRACTORY_SAMPLES])
        if keep.all():
            break
        spikes = spikes[keep]
    return spikes.astype(np.int64)


def place_units(
    rng: np.random.Generator, n_units: int, n_silent: int = 0, spacing: int = 8
) -> list[UnitModel]:
    """Units on distinct soma electrodes (>= ``spacing`` apart, off the border)."""
    somas: list[tuple[int, int]] = []
    attempts = 0
    while len(somas) < n_units:
        attempts += 1
        if attempts > 1000 * n_units:
            raise ValueError(f"cannot place {n_units} units {spacing} electrodes apart")
        r, c = (int(v) for v in rng.integers(FOOTPRINT_RADIUS + 2, N_ROWS - FOOTPRINT_RADIUS, 2))
        if all(max(abs(r - r0), abs(c - c0)) >= spacing for r0, c0 in somas):
            somas.append((r, c))
    units = []
    for i, (r, c) in enumerate(somas):
        units.append(
            UnitModel(
                unit_id=i + 1,
                row=r,
                col=c,
                amplitude=float(rng.uniform(80, 160)),
                spread=float(rng.uniform(1.0, 1.5)),
                rf=(0, 0),
                rf_sign=0,
                silent=i >= n_units - n_silent,
            )
        )
    return units


def build_model(
    seed: int,
    playlist: Sequence[Movie],
    n_units: int,
    n_silent: int = 0,
    tail_s: float = 0.1,
    movies: dict[str, np.ndarray] | None = None,
    n_no_rf: int = 0,
    spacing: int = 8,
) -> RecordingModel:
    """Plan a recording: timeline, units, their visual responses and spike trains.

    ``movies`` gives the pixels of noise movies (shared by recordings that show
    the same movie); a noise movie not given is drawn from the seed. ``n_no_rf``
    responsive units have no receptive field (their STA is noise).
    """
    rng = np.random.default_rng([seed, 0])
    startup, frames, movie_start = display_timeline(playlist)
    period = FS / DISPLAY_FPS
    n_samples = int(frames[-1] + period + tail_s * FS)
    given = movies or {}
    pixels = {
        m.name: given[m.name] if m.name in given else noise_movie(rng, m.n_frames)
        for m in playlist
        if m.kind == "noise"
    }
    model = RecordingModel(
        n_samples, startup, frames, list(playlist), movie_start, pixels, [], seed
    )
    edges = np.concatenate([[0], frames, [int(frames[-1] + period)], [n_samples]])
    units = place_units(rng, n_units, n_silent, spacing)
    assign_visual(rng, units, n_no_rf)
    for unit in units:
        if not unit.silent:
            rates = np.concatenate([[8.0], frame_rates(unit, model), [8.0]])
            unit.spikes = poisson_spikes(rng, edges, rates, n_samples)
        n_excluded = max(3, unit.spikes.size // 20)
        unit.excluded = np.sort(rng.integers(0, n_samples, n_excluded)).astype(np.int64)
        model.units.append(unit)
    return model


def analog_channels(model: RecordingModel, seed: int) -> np.ndarray:
    """Analog data (2, samples) int32: row 0 a light reference, row 1 one pulse per frame."""
    rng = np.random.default_rng([seed, 3])
    data = rng.integers(-5, 6, (2, model.n_samples)).astype(np.int32)
    pulses = np.concatenate([model.startup_pulses, model.frame_times])
    on = (pulses[:, None] + np.arange(PULSE_SAMPLES)[None, :]).ravel()
    data[1, on[on < model.n_samples]] += 3000
    level = np.full(model.frame_times.size, 0.5)
    for name, movie in model.movies.items():
        first = model.movie_start[name]
        level[first : first + movie.shape[0]] = movie.mean(axis=(1, 2)) / 255.0
    first = model.frame_times[0]
    data[0, first:] += np.repeat(
        np.rint(1000 * level).astype(np.int32),
        np.diff(np.append(model.frame_times, model.n_samples)),
    )
    return data
