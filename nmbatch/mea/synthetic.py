"""A seeded model of a retina MEA recording with known ground truth.

Units sit on soma electrodes and leave a spatio-temporal spike waveform around
them in the 65 x 65 sensor data; a display runs a playlist at 60 fps and marks
every frame with a pulse on an analog channel; units fire from a Poisson process
whose rate follows a receptive field on the dense-noise movie and ON/OFF steps
on the flash movie. :mod:`nmbatch.mea.demo` writes the model to CMCR/CMTR files;
the eimage benchmark streams :class:`SensorSynth` blocks without a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from nmbatch.mea.axon.planted import PlantedAxon, axon_entries, plant_entries
from nmbatch.mea.mcs_layout import N_COLS, N_ROWS

FS = 20_000.0
DISPLAY_FPS = 60.0
NOISE_SHAPE = (15, 15)
STARTUP_PULSES = 4
PULSE_SAMPLES = 40
REFRACTORY_SAMPLES = 40
WAVEFORM_OFFSETS = np.arange(-8, 24)
AXON_LAGS = np.arange(-4, 40)  # samples around a spike that its axon may reach
FOOTPRINT_RADIUS = 4
RF_LAG_FRAMES = 3
NOISE_BASE_HZ, NOISE_GAIN = 10.0, 5.0  # rate = base * exp(gain * RF drive in [-1, 1])


@dataclass(frozen=True)
class Movie:
    """One playlist entry: a noise movie (RF drive), a flash movie (trials) or gray."""

    name: str
    n_frames: int
    kind: str
    config: dict | None = None


@dataclass
class UnitModel:
    """Ground truth of one unit. ``row``/``col`` are 1-based electrodes, ``rf`` a 0-based pixel."""

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


def noise_movie(rng: np.random.Generator, n_frames: int) -> np.ndarray:
    """Binary dense noise (frames, 15, 15) of 0/255, a new pattern every display frame.

    (Lab noise movies hold each pattern for 4 frames, 15 Hz on a 60 fps display;
    a new pattern per frame gives short synthetic recordings 4x more of them.)
    """
    return rng.integers(0, 2, (n_frames, *NOISE_SHAPE), dtype=np.uint8) * np.uint8(255)


def trial_starts(config: dict) -> np.ndarray:
    """First frame of every trial relative to the movie start (groups separated by a gap)."""
    i = np.arange(config["repeat"])
    starts = config["start_frame"] + i * config["trial_length_frame"]
    if config.get("group_count"):
        starts = starts + (i // config["group_count"]) * config.get("group_gap_frame", 0)
    return starts


def frame_rates(unit: UnitModel, model: RecordingModel, base_hz: float = 8.0) -> np.ndarray:
    """Firing rate (Hz) of a unit during every display frame of the playlist."""
    rates = np.full(model.frame_times.size, base_hz)
    weights = _rf_weights(unit.rf)
    for movie in model.playlist:
        first = model.movie_start[movie.name]
        frames = slice(first, first + movie.n_frames)
        if movie.kind == "noise":
            contrast = model.movies[movie.name].astype(float) / 127.5 - 1.0
            drive = unit.rf_sign * np.tensordot(contrast, weights, axes=2)
            lagged = np.concatenate([np.zeros(RF_LAG_FRAMES), drive[:-RF_LAG_FRAMES]])
            rates[frames] = NOISE_BASE_HZ * np.exp(NOISE_GAIN * lagged)
        elif movie.kind == "flash" and movie.config:
            half = movie.config["trial_length_frame"] // 2
            on = np.zeros(movie.n_frames, bool)
            for s in trial_starts(movie.config):
                window = slice(s, s + half) if unit.rf_sign > 0 else slice(s + half, s + 2 * half)
                on[window] = True
            rates[frames] = np.where(on, 60.0, base_hz / 2)
    return rates


def _rf_weights(center: tuple[int, int], sigma: float = 0.5) -> np.ndarray:
    y, x = np.mgrid[: NOISE_SHAPE[0], : NOISE_SHAPE[1]]
    w = np.exp(-((y - center[0]) ** 2 + (x - center[1]) ** 2) / (2 * sigma**2))
    return w / w.sum()


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


def place_units(rng: np.random.Generator, n_units: int, n_silent: int = 0) -> list[UnitModel]:
    """Units on distinct soma electrodes (>= 8 apart, off the border) with distinct RF pixels."""
    somas: list[tuple[int, int]] = []
    while len(somas) < n_units:
        r, c = (int(v) for v in rng.integers(FOOTPRINT_RADIUS + 2, N_ROWS - FOOTPRINT_RADIUS, 2))
        if all(max(abs(r - r0), abs(c - c0)) >= 8 for r0, c0 in somas):
            somas.append((r, c))
    rf_pixels = rng.permutation(NOISE_SHAPE[0] * NOISE_SHAPE[1])
    units = []
    for i, (r, c) in enumerate(somas):
        rf = divmod(int(rf_pixels[i]), NOISE_SHAPE[1])
        units.append(
            UnitModel(
                unit_id=i + 1,
                row=r,
                col=c,
                amplitude=float(rng.uniform(80, 160)),
                spread=float(rng.uniform(1.0, 1.5)),
                rf=rf,
                rf_sign=1 if i % 2 == 0 else -1,
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
) -> RecordingModel:
    """Plan a recording: timeline, units and their spike trains.

    ``movies`` gives the pixels of noise movies (shared by recordings that show
    the same movie); a noise movie not given is drawn from the seed.
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
    for unit in place_units(rng, n_units, n_silent):
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
