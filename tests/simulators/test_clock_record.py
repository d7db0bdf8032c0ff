"""Clocks that drive simulators, and the delivery record that serves as the test oracle."""

from __future__ import annotations

import ast
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulators import (
    Clock,
    DeliveredInterval,
    DeliveryRecord,
    FunctionClock,
    VirtualClock,
    WallClock,
)


def _iv(
    start_s: float,
    end_s: float,
    strength_du: int = 100,
    intensity_pct: float = 50.0,
    channel: str = "A",
    frequency_hz: float = 100.0,
) -> DeliveredInterval:
    return DeliveredInterval(
        channel=channel,
        start_s=start_s,
        end_s=end_s,
        strength_du=strength_du,
        frequency_hz=frequency_hz,
        intensity_pct=intensity_pct,
    )


# -- clocks -------------------------------------------------------------------------------


def test_virtual_clock_starts_at_given_time_and_moves_only_when_advanced() -> None:
    clock = VirtualClock(5.0)
    assert clock.now_s() == 5.0
    assert clock.now_s() == 5.0
    clock.advance(0.25)
    assert clock.now_s() == pytest.approx(5.25)
    clock.advance(0.0)
    assert clock.now_s() == pytest.approx(5.25)


@pytest.mark.parametrize("dt_s", [-0.001, math.nan, math.inf])
def test_virtual_clock_refuses_negative_or_non_finite_advance(dt_s: float) -> None:
    clock = VirtualClock()
    with pytest.raises(ValueError, match="dt_s"):
        clock.advance(dt_s)
    assert clock.now_s() == 0.0


def test_virtual_clock_set_jumps_forward_but_never_backwards() -> None:
    clock = VirtualClock(1.0)
    clock.set(3.0)
    assert clock.now_s() == 3.0
    clock.set(3.0)
    with pytest.raises(ValueError, match="backwards"):
        clock.set(2.999)
    assert clock.now_s() == 3.0


def test_wall_clock_is_monotonic() -> None:
    clock = WallClock()
    readings = [clock.now_s() for _ in range(100)]
    assert readings == sorted(readings)


def test_function_clock_reads_the_wrapped_callable() -> None:
    values: Iterator[float] = iter([1.5, 2.5])
    clock = FunctionClock(lambda: next(values))
    assert clock.now_s() == 1.5
    assert clock.now_s() == 2.5


def test_every_clock_satisfies_the_clock_protocol() -> None:
    clocks: list[Clock] = [VirtualClock(), WallClock(), FunctionClock(lambda: 0.0)]
    for clock in clocks:
        assert isinstance(clock, Clock)


# -- intervals ------------------------------------------------------------------------------


def test_interval_output_is_strength_scaled_by_waveform_intensity() -> None:
    assert _iv(0.0, 1.0, strength_du=120, intensity_pct=25.0).output_du == pytest.approx(30.0)
    assert _iv(0.0, 1.0, strength_du=120, intensity_pct=0.0).output_du == 0.0
    assert _iv(0.0, 1.0, strength_du=0, intensity_pct=100.0).output_du == 0.0


@pytest.mark.parametrize(
    ("start_s", "end_s", "strength_du", "intensity_pct"),
    [(1.0, 0.5, 10, 10.0), (0.0, 1.0, -1, 10.0), (0.0, 1.0, 10, 100.5), (0.0, 1.0, 10, -1.0)],
)
def test_interval_rejects_impossible_values(
    start_s: float, end_s: float, strength_du: int, intensity_pct: float
) -> None:
    with pytest.raises(ValueError, match=r"DeliveredInterval|strength_du|intensity_pct"):
        _iv(start_s, end_s, strength_du=strength_du, intensity_pct=intensity_pct)


def test_interval_is_frozen() -> None:
    interval = _iv(0.0, 1.0)
    with pytest.raises(AttributeError):
        interval.strength_du = 5  # type: ignore[misc]


# -- record -----------------------------------------------------------------------------------


def test_output_at_uses_half_open_intervals() -> None:
    record = DeliveryRecord()
    record.add(_iv(0.0, 1.0, strength_du=100, intensity_pct=50.0))
    record.add(_iv(1.0, 2.0, strength_du=100, intensity_pct=20.0))
    assert record.output_at("A", 0.0) == pytest.approx(50.0)
    assert record.output_at("A", 0.999) == pytest.approx(50.0)
    assert record.output_at("A", 1.0) == pytest.approx(20.0)
    assert record.output_at("A", 2.0) == 0.0


def test_output_is_zero_where_nothing_was_recorded() -> None:
    record = DeliveryRecord()
    assert record.output_at("A", 0.0) == 0.0
    record.add(_iv(1.0, 2.0))
    assert record.output_at("A", 0.5) == 0.0
    assert record.output_at("B", 1.5) == 0.0


def test_record_refuses_overlapping_intervals_on_one_channel() -> None:
    record = DeliveryRecord()
    record.add(_iv(0.0, 1.0))
    with pytest.raises(ValueError, match="overlaps"):
        record.add(_iv(0.5, 1.5))
    with pytest.raises(ValueError, match="overlaps"):
        record.add(_iv(-0.5, 0.1))
    record.add(_iv(0.5, 1.5, channel="B"))


def test_record_keeps_intervals_sorted_even_when_added_out_of_order() -> None:
    record = DeliveryRecord()
    record.add(_iv(1.0, 2.0))
    record.add(_iv(0.0, 1.0))
    record.add(_iv(0.5, 0.7, channel="B"))
    assert [iv.start_s for iv in record.intervals("A")] == [0.0, 1.0]
    assert [(iv.channel, iv.start_s) for iv in record.intervals()] == [
        ("A", 0.0),
        ("B", 0.5),
        ("A", 1.0),
    ]
    assert record.channels() == ["A", "B"]


def test_record_drops_zero_length_intervals() -> None:
    record = DeliveryRecord()
    record.add(_iv(1.0, 1.0))
    assert record.intervals() == []


def test_extend_last_lengthens_the_latest_interval_of_a_channel() -> None:
    record = DeliveryRecord()
    record.add(_iv(0.0, 1.0))
    record.extend_last("A", 3.0)
    assert record.intervals("A") == [_iv(0.0, 3.0)]
    assert record.end_s == 3.0
    with pytest.raises(ValueError, match="shrink"):
        record.extend_last("A", 2.0)
    with pytest.raises(ValueError, match="no interval"):
        record.extend_last("B", 2.0)


def test_max_output_considers_only_intervals_touching_the_window() -> None:
    record = DeliveryRecord()
    record.add(_iv(0.0, 1.0, intensity_pct=10.0))
    record.add(_iv(1.0, 2.0, intensity_pct=90.0))
    record.add(_iv(2.0, 3.0, intensity_pct=30.0))
    assert record.max_output("A") == pytest.approx(90.0)
    assert record.max_output("A", 2.0) == pytest.approx(30.0)
    assert record.max_output("A", 0.0, 0.999) == pytest.approx(10.0)
    assert record.max_output("A", 0.5, 0.5) == pytest.approx(10.0)
    assert record.max_output("B") == 0.0


def test_first_time_output_zero_is_the_end_of_the_last_output() -> None:
    record = DeliveryRecord()
    record.add(_iv(0.0, 1.0))
    record.add(_iv(1.0, 2.0, intensity_pct=0.0))
    record.add(_iv(2.0, 3.0))
    record.add(_iv(3.0, 5.0, intensity_pct=0.0))
    assert record.first_time_output_zero_after("A", 0.0) == 3.0
    assert record.first_time_output_zero_after("A", 4.0) == 4.0


def test_first_time_output_zero_is_none_while_still_delivering_at_the_end() -> None:
    record = DeliveryRecord()
    record.add(_iv(0.0, 1.0))
    assert record.first_time_output_zero_after("A", 0.0) is None
    record.observe_until(1.5)
    assert record.first_time_output_zero_after("A", 0.0) == 1.0


def test_first_time_output_zero_when_nothing_was_delivered_is_the_query_time() -> None:
    record = DeliveryRecord()
    record.add(_iv(0.0, 1.0, intensity_pct=0.0))
    assert record.first_time_output_zero_after("A", 0.25) == 0.25
    assert record.first_time_output_zero_after("B", 0.25) == 0.25


def test_events_keep_their_order_and_cannot_be_changed_from_outside() -> None:
    record = DeliveryRecord()
    record.add_event(0.1, "block_dropped", "A freq[0] 5 outside 10..240")
    record.add_event(0.2, "frame_ignored", "short")
    record.events.clear()
    assert record.events == [
        (0.1, "block_dropped", "A freq[0] 5 outside 10..240"),
        (0.2, "frame_ignored", "short"),
    ]
    assert record.events_of("frame_ignored") == [(0.2, "frame_ignored", "short")]


# -- independence -------------------------------------------------------------------------------

_HOST_SIDE = {"firmware_bridge", "safety", "acustim", "gui"}


def test_simulators_package_imports_nothing_from_the_host_side() -> None:
    package_dir = Path(__file__).resolve().parents[2] / "simulators"
    offenders: list[str] = []
    for path in sorted(package_dir.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in _HOST_SIDE]
    assert offenders == []
