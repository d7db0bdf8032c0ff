"""Live output for displays: a thread-safe ring buffer of what was sent, and plot helpers.

The IO thread pushes every frame the stream puts on the wire (``LiveBuffer.push_frame``, called
from a session's ``on_frame``); a display reads copies at its own pace (``LiveBuffer.latest``).
Writers and readers share one lock that is held only to copy a few preallocated numpy arrays,
so the IO thread never waits for a display.

Also here, because any display (the Qt app, a web page, a notebook) needs them:
``decimate_minmax`` (peak-preserving min/max per pixel column, so that plotting costs the
same whatever the sample rate or window) and ``pulse_train`` (the pulses a window of samples
implies, for a pulse-level view).

Qt-free. Never touches a transport, the guard or the streamer, never blocks the IO thread
beyond a copy, and never decides anything about output: it only keeps what was sent.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from safety.guard import VettedFrame

__all__ = [
    "FIELDS",
    "LiveBuffer",
    "LiveWindow",
    "decimate_minmax",
    "decimated_x",
    "drop_flat_runs",
    "pulse_train",
]

FloatArray = npt.NDArray[np.float64]

#: What the buffer keeps per channel and per sample, in this order (the first axis).
FIELDS: tuple[str, ...] = ("output_du", "frequency_hz", "pulse_width_us", "level_du")
OUTPUT, FREQUENCY, PULSE_WIDTH, LEVEL = range(len(FIELDS))


@dataclass(frozen=True, eq=False)
class LiveWindow:
    """A copy of the newest ``n`` samples: ``values[field, channel, sample]``, oldest first,
    for the ``fields`` asked for (all of ``FIELDS`` unless told).

    When fewer than ``n`` samples were ever pushed, the first ``n - valid`` samples are zero
    (nothing was delivered then). ``t_s`` holds each sample's start time (NaN where empty).
    ``total`` counts every sample pushed since the buffer was made.
    """

    channels: tuple[str, ...]
    sample_period_s: float
    values: FloatArray
    t_s: FloatArray
    valid: int
    total: int
    fields: tuple[str, ...] = FIELDS

    @property
    def n(self) -> int:
        return int(self.values.shape[2])

    def field(self, name: str) -> FloatArray:
        """``values`` of one field, shape (channels, samples)."""
        row: FloatArray = self.values[self.fields.index(name)]
        return row

    def channel(self, name: str) -> int:
        return self.channels.index(name)


class LiveBuffer:
    """A fixed-size ring of per-sample values per channel; one writer, any number of readers.

    ``channels`` are the ones to keep (a frame may carry more: a device's unused channels).
    Everything is preallocated; pushing a frame copies a handful of floats under the lock.
    """

    def __init__(self, channels: Sequence[str], *, sample_period_s: float, capacity: int) -> None:
        if not channels:
            raise ValueError("LiveBuffer needs at least one channel")
        if capacity < 1:
            raise ValueError(f"LiveBuffer capacity must be >= 1 sample, got {capacity}")
        if not sample_period_s > 0:
            raise ValueError(f"sample_period_s must be > 0, got {sample_period_s!r}")
        self.channels = tuple(channels)
        self.sample_period_s = float(sample_period_s)
        self.capacity = int(capacity)
        self._values = np.zeros((len(FIELDS), len(self.channels), self.capacity))
        self._t = np.full(self.capacity, np.nan)
        self._total = 0  # samples ever written; the next one goes to _total % capacity
        self._lock = threading.Lock()
        self._index = {name: k for k, name in enumerate(self.channels)}

    @classmethod
    def for_window(
        cls, channels: Sequence[str], *, sample_period_s: float, window_s: float
    ) -> LiveBuffer:
        """A buffer that holds at least ``window_s`` seconds of samples."""
        return cls(
            channels,
            sample_period_s=sample_period_s,
            capacity=max(1, int(np.ceil(window_s / sample_period_s))),
        )

    @property
    def total(self) -> int:
        """Samples pushed so far (a cheap way for a reader to see whether anything is new)."""
        return self._total

    # --- writing (the IO thread) ---------------------------------------------------------------
    def push(self, t_s: float, block: FloatArray) -> None:
        """Append ``block[field, channel, sample]`` (samples ``sample_period_s`` apart from
        ``t_s``). A block longer than the buffer keeps only its newest samples."""
        if block.shape[:2] != self._values.shape[:2]:
            raise ValueError(
                f"block shape {block.shape} does not match fields x channels "
                f"{self._values.shape[:2]}"
            )
        n = int(block.shape[2])
        if n == 0:
            return
        times = t_s + np.arange(n) * self.sample_period_s
        if n > self.capacity:
            block, times = block[:, :, -self.capacity :], times[-self.capacity :]
            skipped = n - self.capacity
        else:
            skipped = 0
        m = int(block.shape[2])
        with self._lock:
            start = (self._total + skipped) % self.capacity
            first = min(m, self.capacity - start)
            self._values[:, :, start : start + first] = block[:, :, :first]
            self._t[start : start + first] = times[:first]
            if first < m:
                self._values[:, :, : m - first] = block[:, :, first:]
                self._t[: m - first] = times[first:]
            self._total += n

    def push_frame(self, frame: VettedFrame) -> None:
        """Append one vetted frame (the session's ``on_frame``; runs on the IO thread)."""
        channels = [c for c in frame.channels if c.name in self._index]
        n = max((len(c.intensity) for c in channels), default=0)
        if n == 0:
            return
        block = np.zeros((len(FIELDS), len(self.channels), n))
        for c in channels:
            k = self._index[c.name]
            block[OUTPUT, k] = np.asarray(c.intensity, dtype=np.float64) * c.level_du
            block[FREQUENCY, k] = c.frequency_hz
            block[PULSE_WIDTH, k] = c.pulse_width_us
            block[LEVEL, k] = c.level_du
        self.push(frame.t_s, block)

    def on_frame(self, index: int, frame: VettedFrame) -> None:
        """The signature of ``Device.start(on_frame=...)``: pass ``buffer.on_frame``."""
        self.push_frame(frame)

    # --- reading (any thread) ------------------------------------------------------------------
    def latest(self, n: int, fields: Sequence[str] = FIELDS) -> LiveWindow:
        """A copy of the newest ``n`` samples (``n`` at most the capacity), oldest first, of
        ``fields`` only (copying less keeps the lock shorter)."""
        if not 1 <= n <= self.capacity:
            raise ValueError(f"latest(n): n must be within 1..{self.capacity}, got {n}")
        unknown = [f for f in fields if f not in FIELDS]
        if unknown:
            raise ValueError(f"latest: unknown field {unknown[0]!r}; fields are {FIELDS}")
        rows = [FIELDS.index(f) for f in fields]
        values = np.zeros((len(rows), len(self.channels), n))
        t = np.full(n, np.nan)
        with self._lock:
            total = self._total
            valid = min(n, total)
            if valid:
                end = total % self.capacity  # one past the newest sample
                start = (end - valid) % self.capacity
                pad = n - valid
                for k, row in enumerate(rows):
                    data = self._values[row]
                    if start < end:
                        values[k, :, pad:] = data[:, start:end]
                    else:
                        first = self.capacity - start
                        values[k, :, pad : pad + first] = data[:, start:]
                        values[k, :, pad + first :] = data[:, :end]
                if start < end:
                    t[pad:] = self._t[start:end]
                else:
                    first = self.capacity - start
                    t[pad : pad + first] = self._t[start:]
                    t[pad + first :] = self._t[:end]
        return LiveWindow(
            self.channels, self.sample_period_s, values, t, valid, total, tuple(fields)
        )

    def clear(self) -> None:
        with self._lock:
            self._values.fill(0.0)
            self._t.fill(np.nan)
            self._total = 0


def decimate_minmax(y: FloatArray, bins: int) -> FloatArray:
    """Peak-preserving decimation along the last axis: the min then the max of each of ``bins``
    near-equal slices, interleaved (``2 * bins`` values). With ``2 * bins`` samples or fewer,
    ``y`` is returned as it is (nothing to gain). Works on (..., samples) arrays."""
    n = int(y.shape[-1])
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    if n <= 2 * bins:
        return y
    edges = (np.arange(bins, dtype=np.int64) * n) // bins
    lo = np.minimum.reduceat(y, edges, axis=-1)
    hi = np.maximum.reduceat(y, edges, axis=-1)
    out = np.empty((*y.shape[:-1], 2 * bins), dtype=y.dtype)
    out[..., 0::2] = lo
    out[..., 1::2] = hi
    return out


def drop_flat_runs(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The same polyline with the inside points of every flat run removed (a flat run drawn
    from its first to its last point looks exactly the same). Program output is mostly flat
    (a set level, one pulse rate per segment), so this often drops most of the points."""
    n = int(y.shape[0])
    if n <= 2:
        return x, y
    keep = np.ones(n, dtype=bool)
    keep[1:-1] = (y[1:-1] != y[:-2]) | (y[1:-1] != y[2:])
    return x[keep], y[keep]


def decimated_x(n: int, bins: int, sample_period_s: float, *, end_s: float = 0.0) -> FloatArray:
    """The fixed x array (seconds, the newest sample at ``end_s``) that goes with
    ``decimate_minmax(y[..., :n], bins)``: compute once per plot size, reuse every refresh."""
    t = end_s - (n - 1 - np.arange(n, dtype=np.float64)) * sample_period_s
    if n <= 2 * bins:
        return t
    edges = (np.arange(bins, dtype=np.int64) * n) // bins
    stops = np.append(edges[1:], n) - 1
    x = np.empty(2 * bins)
    x[0::2] = t[edges]
    x[1::2] = t[stops]
    return x


def pulse_train(
    frequency_hz: FloatArray,
    amplitude: FloatArray,
    pulse_width_us: FloatArray,
    sample_period_s: float,
    *,
    start_s: float = 0.0,
    biphasic: bool = False,
    min_width_s: float = 0.0,
) -> tuple[FloatArray, FloatArray]:
    """The pulse train implied by per-sample rate, amplitude and pulse width.

    Sample ``k`` covers ``[start_s + k*T, start_s + (k+1)*T)``. Pulses fall where the running
    phase (the integral of the rate) crosses a whole number, so a rate change never restarts
    the train. Each pulse is a rectangle of its sample's amplitude and pulse width (at least
    ``min_width_s`` wide, so a 250 us pulse stays visible on a one-second plot); a biphasic
    pulse adds the opposite phase right after. Returns ``(x_s, y)`` for a step-free polyline
    that sits at zero between pulses.
    """
    f = np.clip(np.asarray(frequency_hz, dtype=np.float64), 0.0, None)
    a = np.asarray(amplitude, dtype=np.float64)
    w = np.asarray(pulse_width_us, dtype=np.float64) * 1e-6
    n = int(f.shape[0])
    end_s = start_s + n * sample_period_s
    if n == 0:
        return np.array([start_s, end_s]), np.zeros(2)
    phase_end = np.cumsum(f * sample_period_s)
    phase_start = phase_end - f * sample_period_s
    first = np.floor(phase_start - 1e-9) + 1.0  # first whole phase inside the sample
    first[phase_start <= 1e-9] = 0.0  # a train starts with a pulse at its first instant
    counts = np.where(f > 0, np.floor(phase_end - 1e-9) - first + 1.0, 0.0)
    counts = np.clip(counts, 0, None).astype(np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.array([start_s, end_s]), np.zeros(2)
    owner = np.repeat(np.arange(n), counts)
    offset = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    phase = first[owner] + offset
    t = start_s + owner * sample_period_s + (phase - phase_start[owner]) / f[owner]
    width = np.maximum(w[owner], min_width_s)
    amp = a[owner]
    if biphasic:
        xs = np.stack([t, t, t + width, t + width, t + 2 * width, t + 2 * width], axis=1)
        ys = np.stack([0 * amp, amp, amp, -amp, -amp, 0 * amp], axis=1)
    else:
        xs = np.stack([t, t, t + width, t + width], axis=1)
        ys = np.stack([0 * amp, amp, amp, 0 * amp], axis=1)
    x = np.concatenate([[start_s], xs.ravel(), [end_s]])
    y = np.concatenate([[0.0], ys.ravel(), [0.0]])
    return x, y
