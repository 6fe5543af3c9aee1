"""Zero-phase IIR filtering of many channels at once, chunk by chunk.

:func:`zero_phase` gives ``scipy.signal.sosfiltfilt(sos, x, axis=0)`` for a
(samples, channels) block as float32, several times faster on 4225 channels
(figures in ``bench/bench_eimage.py``): scipy runs each channel's recursion one
sample at a time, while here every second-order section runs as block matrix
products (a block of ``n`` outputs is a lower-triangular Toeplitz matrix of the
impulse response times the block's inputs, plus the contribution of the
section's state), which BLAS does for all channels together. The states are scipy's
(transposed direct form II), so scipy's start-up conditions (odd extension,
``sosfilt_zi``) carry over exactly.

:func:`filtered_chunks` filters a recording too long for memory in chunks. Each
chunk is read with a margin on both sides, long enough for the impulse response
to die out, so its kept part equals filtering the whole recording at once
within float32 precision.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache

import numpy as np
from scipy import signal

BLOCK = 16
BLOCKS_PER_GROUP = 8
SETTLE_TOLERANCE = 1e-7

Reader = Callable[[int, int], np.ndarray]


def highpass_sos(cutoff_hz: float, order: int, fs: float) -> np.ndarray:
    """Butterworth high-pass as second-order sections."""
    return signal.butter(order, cutoff_hz, "highpass", fs=fs, output="sos")


def settle_samples(sos: np.ndarray, tol: float = SETTLE_TOLERANCE) -> int:
    """Samples after which the impulse response stays below ``tol`` of its peak."""
    n = 1024
    while True:
        impulse = np.zeros(n)
        impulse[0] = 1.0
        h = np.abs(signal.sosfilt(sos, impulse))
        last = int(np.nonzero(h > tol * h.max())[0][-1])
        if last < n // 2:
            return last + 1
        n *= 4


@lru_cache(maxsize=32)
def _section_operators(section: tuple[float, ...], n: int, reverse: bool):
    """Block operators of one section: outputs ``T @ u + O @ z``, next state ``A^n @ z + R @ u``.

    For the backward pass over blocks taken from the end, the operators are
    flipped (``J T J``, ``J O``, ``R J`` with ``J`` the reversal), so that pass
    runs in place on the forward-ordered data.
    """
    b0, b1, b2, _, a1, a2 = section
    a = np.array([[-a1, 1.0], [-a2, 0.0]])
    b = np.array([b1 - a1 * b0, b2 - a2 * b0])
    powers = [np.eye(2)]
    for _ in range(n):
        powers.append(a @ powers[-1])
    impulse = np.array([b0] + [powers[k - 1][0] @ b for k in range(1, n)])
    toeplitz = np.zeros((n, n))
    for i in range(n):
        toeplitz[i, : i + 1] = impulse[i::-1]
    observe = np.array([powers[k][0] for k in range(n)])
    drive = np.stack([powers[n - 1 - j] @ b for j in range(n)], axis=1)
    if reverse:
        toeplitz, observe, drive = toeplitz[::-1, ::-1], observe[::-1], drive[:, ::-1]
    as32 = [np.ascontiguousarray(m, dtype=np.float32) for m in (toeplitz, observe, drive)]
    return *as32, powers[n]


def _sosfilt_blocked(sos: np.ndarray, x: np.ndarray, zi: np.ndarray, reverse: bool = False):
    """``scipy.signal.sosfilt(sos, x, axis=0, zi=zi)`` in place on a C-contiguous float32 ``x``.

    With ``reverse``, filters ``x[::-1]`` (and writes the result back in forward order).
    """
    n_blocks, rest = divmod(x.shape[0], BLOCK)
    body, tail = (x[rest:], x[:rest][::-1]) if reverse else (x[: x.shape[0] - rest], x[-rest:])
    blocks = body.reshape(n_blocks, BLOCK, -1)
    groups = range(0, n_blocks, BLOCKS_PER_GROUP)
    states = np.empty((BLOCKS_PER_GROUP, 2, x.shape[1]), np.float32)
    for section, z in zip(sos, zi, strict=True):
        toeplitz, observe, drive, a_n = _section_operators(tuple(section), BLOCK, reverse)
        z = z.astype(np.float64)
        for g in reversed(groups) if reverse else groups:
            u = blocks[g : g + BLOCKS_PER_GROUP]
            inputs = np.matmul(drive, u)
            for k in reversed(range(u.shape[0])) if reverse else range(u.shape[0]):
                states[k] = z
                z = a_n @ z + inputs[k]
            out = np.matmul(toeplitz, u)
            out += np.matmul(observe, states[: u.shape[0]])
            u[...] = out
        if rest:
            tail[...] = signal.sosfilt(section[None], tail, axis=0, zi=z[None])[0]


class ZeroPhase:
    """Forward-backward filter along axis 0, as ``scipy.signal.sosfiltfilt`` (float32 result).

    Calling it returns a view into a work buffer that is reused by the next call
    (no fresh large arrays, hence no page faults, chunk after chunk). The first
    sample is subtracted first (and its filtered value, DC gain squared times
    it, added back): float32 then only carries the signal's variations, not an
    electrode's offset.
    """

    def __init__(self, sos: np.ndarray):
        self.sos = np.asarray(sos, dtype=np.float64)
        zeros = min(int((self.sos[:, 2] == 0).sum()), int((self.sos[:, 5] == 0).sum()))
        self.pad = 3 * (2 * len(self.sos) + 1 - zeros)
        self.zi = signal.sosfilt_zi(self.sos)[:, :, None]
        gain = np.prod(self.sos[:, :3].sum(axis=1) / self.sos[:, 3:].sum(axis=1))
        self.dc_gain2 = np.float32(gain**2)
        self._work = np.empty(0, np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = x.reshape(x.shape[0], -1)
        pad = self.pad
        if x.shape[0] <= pad:
            raise ValueError(f"zero_phase needs more than {pad} samples, got {x.shape[0]}")
        size = (x.shape[0] + 2 * pad) * x.shape[1]
        if self._work.size < size:
            self._work = np.empty(size, np.float32)
        ext = self._work[:size].reshape(-1, x.shape[1])
        body = ext[pad:-pad]
        offset = x[0].astype(np.float32)
        np.subtract(x, offset, out=body, casting="unsafe")
        ext[:pad] = -body[pad:0:-1]
        ext[-pad:] = 2 * body[-1] - body[-2 : -pad - 2 : -1]
        _sosfilt_blocked(self.sos, ext, self.zi * ext[0])
        _sosfilt_blocked(self.sos, ext, self.zi * ext[-1], reverse=True)
        if self.dc_gain2:
            body += self.dc_gain2 * offset
        return body


def zero_phase(sos: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``scipy.signal.sosfiltfilt(sos, x, axis=0)`` for (samples, ...) data, as float32."""
    return ZeroPhase(sos)(x)


def filtered_chunks(
    read: Reader,
    n_samples: int,
    sos: np.ndarray,
    chunk: int,
    before: int = 0,
    after: int = 0,
    starts: Iterable[int] | None = None,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(a, lo, block)`` for chunks ``[a, a + chunk)`` of ``[0, n_samples)``.

    ``block`` (valid until the next chunk is yielded: its buffer is reused)
    holds the zero-phase filtered samples ``[lo, hi)`` with
    ``lo = max(a - before, 0)`` and ``hi = min(a + chunk + after, n_samples)``, as
    if the whole ``[0, n_samples)`` had been filtered at once. ``read(lo, hi)``
    returns raw samples (any trailing shape, flattened to channels). ``starts``
    limits the chunks to those starting there (multiples of ``chunk``).
    """
    margin = settle_samples(sos)
    zero_phase_chunk = ZeroPhase(sos)
    for a in range(0, n_samples, chunk) if starts is None else starts:
        lo, hi = max(a - before, 0), min(a + chunk + after, n_samples)
        read_lo, read_hi = max(lo - margin, 0), min(hi + margin, n_samples)
        filtered = zero_phase_chunk(read(read_lo, read_hi))
        yield a, lo, filtered[lo - read_lo : hi - read_lo]
