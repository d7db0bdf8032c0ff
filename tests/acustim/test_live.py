"""The live ring buffer and its plot helpers: what a display sees is what was sent."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from acustim.live import (
    FIELDS,
    LiveBuffer,
    decimate_minmax,
    decimated_x,
    pulse_train,
)
from safety.guard import Guard
from safety.limits import resolve_limits
from tests.safety.helpers import demand, device, program


def block(values: list[float], channels: int = 2) -> np.ndarray:
    """A push block whose every field and channel holds ``values`` (+ 1000 * channel)."""
    out = np.zeros((len(FIELDS), channels, len(values)))
    for c in range(channels):
        out[:, c, :] = np.asarray(values) + 1000 * c
    return out


def test_latest_returns_the_newest_samples_oldest_first_and_pads_with_zero() -> None:
    buf = LiveBuffer(("A", "B"), sample_period_s=0.025, capacity=8)
    buf.push(10.0, block([1, 2, 3]))
    w = buf.latest(5)
    assert w.valid == 3 and w.total == 3
    assert w.field("output_du")[0].tolist() == [0, 0, 1, 2, 3]
    assert w.field("output_du")[1].tolist() == [0, 0, 1001, 1002, 1003]
    assert np.isnan(w.t_s[:2]).all()
    assert w.t_s[2:].tolist() == pytest.approx([10.0, 10.025, 10.05])


def test_the_ring_wraps_and_keeps_only_the_newest_capacity_samples() -> None:
    buf = LiveBuffer(("A", "B"), sample_period_s=0.1, capacity=5)
    for start in range(0, 12, 3):  # 0..11 in blocks of three
        buf.push(float(start), block([start, start + 1, start + 2]))
    w = buf.latest(5)
    assert w.total == 12 and w.valid == 5
    assert w.field("frequency_hz")[0].tolist() == [7, 8, 9, 10, 11]
    assert buf.latest(2).field("level_du")[0].tolist() == [10, 11]


def test_a_block_longer_than_the_buffer_keeps_its_newest_samples() -> None:
    buf = LiveBuffer(("A", "B"), sample_period_s=1.0, capacity=4)
    buf.push(0.0, block([1, 2]))
    buf.push(2.0, block(list(range(10, 20))))
    w = buf.latest(4)
    assert w.field("output_du")[0].tolist() == [16, 17, 18, 19]
    assert w.t_s.tolist() == [8.0, 9.0, 10.0, 11.0]
    assert w.total == 12


def test_bad_shapes_and_sizes_are_refused() -> None:
    buf = LiveBuffer(("A",), sample_period_s=0.1, capacity=4)
    with pytest.raises(ValueError, match="does not match"):
        buf.push(0.0, block([1, 2], channels=2))
    with pytest.raises(ValueError, match=r"1\.\.4"):
        buf.latest(5)
    with pytest.raises(ValueError, match="at least one channel"):
        LiveBuffer((), sample_period_s=0.1, capacity=4)
    with pytest.raises(ValueError, match="capacity"):
        LiveBuffer(("A",), sample_period_s=0.1, capacity=0)


def test_for_window_holds_the_whole_window() -> None:
    buf = LiveBuffer.for_window(("A",), sample_period_s=0.025, window_s=30.0)
    assert buf.capacity == 1200


def test_a_vetted_frame_goes_in_as_level_times_intensity_per_sample() -> None:
    limits = resolve_limits(device(), program(("A", "B")))
    guard = Guard(limits)
    guard.confirm_limits_written()
    guard.start(0.0)
    guard.set_level("A", 20, 0.0)
    guard.set_level("B", 8, 0.0)
    frame = None
    for k in range(1, 40):  # ramp up to the levels (4 du/s at the default rate)
        frame = guard.vet(
            [demand("A", intensity=0.5, frequency_hz=80.0), demand("B", frequency_hz=2.0)],
            k * 0.25,
        )
    assert frame is not None
    buf = LiveBuffer(("A",), sample_period_s=0.025, capacity=100)  # B is not kept
    buf.on_frame(7, frame)
    w = buf.latest(4)
    assert w.field("output_du")[0].tolist() == [10.0] * 4  # 20 du x 0.5
    assert w.field("frequency_hz")[0].tolist() == [80.0] * 4
    assert w.field("pulse_width_us")[0].tolist() == [200.0] * 4
    assert w.field("level_du")[0].tolist() == [20.0] * 4
    assert w.t_s[0] == pytest.approx(frame.t_s)


def test_a_concurrent_writer_and_reader_never_see_a_torn_window() -> None:
    """The writer pushes consecutive integers (one block at a time); every window a reader
    copies must be consecutive too, in every field and channel, whatever the interleaving."""
    buf = LiveBuffer(("A", "B", "C", "D"), sample_period_s=0.001, capacity=997)
    stop = threading.Event()
    errors: list[str] = []
    total = 200_000

    def write() -> None:
        n = 0
        while n < total:
            size = 1 + n % 37
            values = np.arange(n, n + size, dtype=np.float64)
            buf.push(n * 0.001, block(values.tolist(), channels=4))
            n += size
        stop.set()

    def read() -> None:
        reads = 0
        while not stop.is_set() or reads < 10:
            w = buf.latest(500)
            reads += 1
            if w.valid < 2:
                continue
            v = w.values[:, :, w.n - w.valid :]
            expected_last = w.total - 1
            if v[0, 0, -1] != expected_last:
                errors.append(f"newest {v[0, 0, -1]} but total {w.total}")
            diffs = np.diff(v, axis=2)
            if not np.all(diffs == 1.0):
                errors.append(f"not consecutive at read {reads}")
            if not np.all(v[:, 3] - v[:, 0] == 3000):
                errors.append("channels out of step")
            if errors:
                return

    readers = [threading.Thread(target=read) for _ in range(2)]
    writer = threading.Thread(target=write)
    for t in (*readers, writer):
        t.start()
    for t in (writer, *readers):
        t.join(30)
    assert not errors, errors[:3]
    assert buf.total >= total


def test_decimation_keeps_every_peak_and_trough() -> None:
    rng = np.random.default_rng(7)
    y = rng.normal(size=(3, 30_000))
    y[1, 12_345] = 50.0  # a one-sample spike must survive
    y[2, 29_999] = -50.0  # so must the last sample's trough
    out = decimate_minmax(y, 400)
    assert out.shape == (3, 800)
    for c in range(3):
        assert out[c].max() == y[c].max()
        assert out[c].min() == y[c].min()
    # each pair is (min, max) of its own slice of samples
    edges = (np.arange(400) * 30_000) // 400
    stops = np.append(edges[1:], 30_000)
    for b in (0, 17, 399):
        piece = y[0, edges[b] : stops[b]]
        assert out[0, 2 * b] == piece.min()
        assert out[0, 2 * b + 1] == piece.max()


def test_decimation_leaves_short_series_alone_and_uneven_lengths_work() -> None:
    y = np.arange(10.0)
    assert decimate_minmax(y, 5) is y
    out = decimate_minmax(np.arange(1001.0), 100)
    assert out.shape == (200,)
    assert out[0] == 0.0 and out[-1] == 1000.0
    with pytest.raises(ValueError, match="bins"):
        decimate_minmax(y, 0)


def test_decimated_x_matches_the_points_and_ends_at_zero() -> None:
    x = decimated_x(1200, 400, 0.025)
    assert x.shape == (800,)
    assert x[-1] == pytest.approx(0.0)
    assert x[0] == pytest.approx(-1199 * 0.025)
    assert np.all(np.diff(x) >= 0)
    short = decimated_x(10, 400, 0.1)
    assert short.tolist() == pytest.approx([-0.9 + 0.1 * k for k in range(10)])


def test_pulse_train_puts_pulses_at_the_rate_with_the_amplitude() -> None:
    f = np.full(40, 10.0)  # 10 Hz for one second (40 x 25 ms)
    a = np.full(40, 30.0)
    w = np.full(40, 250.0)
    x, y = pulse_train(f, a, w, 0.025, start_s=-1.0)
    rises = x[1:-1].reshape(-1, 4)[:, 0]
    assert len(rises) == 10
    assert np.diff(rises) == pytest.approx([0.1] * 9)
    assert rises[0] == pytest.approx(-1.0)
    heights = y[1:-1].reshape(-1, 4)
    assert heights[:, 1].tolist() == [30.0] * 10
    assert heights[:, 0].tolist() == [0.0] * 10
    assert x[0] == -1.0 and x[-1] == pytest.approx(0.0)


def test_pulse_train_follows_rate_changes_without_restarting_and_draws_biphasic() -> None:
    f = np.concatenate([np.full(20, 2.0), np.full(20, 100.0)])
    a = np.full(40, 5.0)
    x, _y = pulse_train(f, a, np.full(40, 200.0), 0.025)
    starts = x[1:-1].reshape(-1, 4)[:, 0]
    # 2 Hz for 0.5 s: one pulse at 0 (the next one falls after the rate changed); then 100 Hz
    assert starts[0] == pytest.approx(0.0)
    assert (starts < 0.5).sum() == 1
    assert 49 <= (starts >= 0.5).sum() <= 50
    xb, yb = pulse_train(np.full(4, 50.0), np.full(4, 3.0), np.full(4, 100.0), 0.025, biphasic=True)
    assert yb.min() == -3.0 and yb.max() == 3.0
    assert len(xb) == 2 + 6 * 5


def test_pulse_train_of_silence_is_a_flat_line() -> None:
    x, y = pulse_train(np.zeros(8), np.zeros(8), np.zeros(8), 0.1, start_s=-0.8)
    assert x.tolist() == pytest.approx([-0.8, 0.0])
    assert y.tolist() == [0.0, 0.0]
