"""The simulated output stage and virtual meter (``simulators.output_stage``).

The stage model alone, then each simulator's meter driven through a real session on the
engine (virtual time) and judged against the simulator's own record and gains.
"""

from __future__ import annotations

import math

import pytest

import simulators
from acustim import Engine
from simulators.clock import VirtualClock
from simulators.output_stage import OutputStage, meter_reading
from simulators.record import DeliveredInterval
from waveforms.program import Channel, Continuous, Program

SIMULATORS = ["Coyote3Simulator", "Coyote2Simulator", "Et312Simulator", "PulsePalSimulator"]


def stage(**kw: object) -> OutputStage:
    args: dict[str, object] = {
        "nominal_ma_per_du": 0.1,
        "spread": 0.2,
        "regulation": "current",
        "compliance_v": 100.0,
    }
    args.update(kw)
    return OutputStage.for_unit("model", 1, ("A", "B"), **args)  # type: ignore[arg-type]


def test_a_unit_always_gets_the_same_gains_and_units_differ() -> None:
    assert stage().gains_ma_per_du == stage().gains_ma_per_du
    other = OutputStage.for_unit(
        "model", 2, ("A", "B"), nominal_ma_per_du=0.1, spread=0.2, regulation="current"
    )
    assert other.gains_ma_per_du != stage().gains_ma_per_du


def test_the_per_unit_spread_stays_within_its_bounds() -> None:
    gains = [
        g
        for unit in range(200)
        for _ch, g in OutputStage.for_unit(
            "m", unit, ("A",), nominal_ma_per_du=1.0, spread=0.2, channel_spread=0.05,
            regulation="voltage",
        ).gains_ma_per_du
    ]  # fmt: skip
    assert min(gains) >= 0.8 * 0.95 and max(gains) <= 1.2 * 1.05
    assert max(gains) - min(gains) > 0.3  # it does spread


def test_the_load_changes_a_voltage_stage_and_a_current_stage_until_compliance() -> None:
    v = stage(regulation="voltage", compliance_v=None).with_gains(A=0.1)
    assert v.peak_ma("A", 100, 500) == pytest.approx(10.0)
    assert v.peak_ma("A", 100, 1000) == pytest.approx(5.0)
    c = stage().with_gains(A=0.1)  # 100 V compliance
    assert c.peak_ma("A", 100, 1000) == pytest.approx(10.0)  # 10 V: regulated
    assert c.peak_ma("A", 100, 20000) == pytest.approx(5.0)  # 100 V / 20 kohm


def test_the_meter_reads_peak_rms_dc_and_nothing() -> None:
    s = stage().with_gains(A=0.1)
    pulses = DeliveredInterval("A", 0.0, 1.0, 100, 50.0, 100.0, 200.0)
    assert meter_reading(s, pulses) == pytest.approx(10.0)
    assert meter_reading(s, pulses, kind="rms") == pytest.approx(10.0 * math.sqrt(0.01))
    assert meter_reading(s, pulses, kind="rms", phases=2) == pytest.approx(10.0 * math.sqrt(0.02))
    assert meter_reading(s, pulses, kind="rms", pulses_per_period=3) == pytest.approx(
        10.0 * math.sqrt(0.03)
    )
    dc = DeliveredInterval("A", 0.0, 1.0, 100, 0.0, 100.0, None)
    assert meter_reading(s, dc, kind="rms") == pytest.approx(10.0)
    idle = DeliveredInterval("A", 0.0, 1.0, 100, 0.0, 0.0, None)
    assert meter_reading(s, idle) == 0.0 and meter_reading(s, None, kind="rms") == 0.0
    with pytest.raises(ValueError, match="'peak' or 'rms'"):
        meter_reading(s, pulses, kind="avg")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", SIMULATORS)
def test_every_simulator_has_a_unit_stage_and_an_idle_meter(name: str) -> None:
    cls = getattr(simulators, name)
    sim = cls(VirtualClock())
    assert sim.output_stage.unit == 0 and sim.output_stage.unit_id == "unit-0"
    assert cls(VirtualClock(), unit=5).output_stage.gains_ma_per_du != (
        sim.output_stage.gains_ma_per_du
    )
    assert sim.meter("A") == 0.0 and sim.meter("A", "rms") == 0.0
    with pytest.raises(ValueError, match="channel"):
        sim.meter("Z")


def _session_meter(device_name: str, level: int, width: float) -> tuple[float, float, object]:
    """Run one channel at ``level`` (intensity 1, 50 Hz) and read the meter on the IO loop."""
    program = Program(
        name="meter",
        title="meter",
        indication="tests",
        channels=(Channel("A", ("LI4-L", "LI11-L"), (Continuous(60, 50.0, width, 1.0),)),),
    )
    readings: list[tuple[float, float]] = []
    with Engine(virtual_time=True, records=False) as engine:
        device = engine.connect(f"sim:{device_name}")
        sim = device.simulator

        def on_frame(index: int, frame: object) -> None:
            readings.append((sim.meter("A", "peak"), sim.meter("A", "rms")))

        session = device.start(program, levels={"A": level}, duration_s=30, on_frame=on_frame)
        assert session.wait(60).outcome == "completed"
        peak = max(p for p, _ in readings)
        rms = max(r for _, r in readings)
        return peak, rms, sim


def test_the_pulse_pal_meter_is_ohms_law_with_two_phases() -> None:
    peak, rms, sim = _session_meter("pulsepal", 1000, 200.0)
    gain = sim.output_stage.gain_ma_per_du("A")  # type: ignore[attr-defined]
    assert peak == pytest.approx(gain * 1000, rel=1e-3)
    assert rms == pytest.approx(peak * math.sqrt(2 * 200e-6 * 50), rel=0.01)
    assert sim.meter("A", load_ohm=1000) == 0.0  # the session ended: idle  # type: ignore[attr-defined]


def test_the_coyote2_meter_counts_its_bursts() -> None:
    peak, rms, sim = _session_meter("coyote2", 400, 100.0)
    gain = sim.output_stage.gain_ma_per_du("A")  # type: ignore[attr-defined]
    assert peak == pytest.approx(gain * 400, rel=1e-6)
    # 50 Hz: the codec writes X = 2 pulses of 100 us per 20 ms period
    assert rms == pytest.approx(peak * math.sqrt(2 * 100e-6 * 50), rel=1e-6)


def test_the_coyote3_meter_uses_its_own_pulse_width() -> None:
    peak, rms, sim = _session_meter("coyote3", 40, 500.0)
    gain = sim.output_stage.gain_ma_per_du("A")  # type: ignore[attr-defined]
    assert peak == pytest.approx(gain * 40, rel=1e-6)
    assert rms == pytest.approx(peak * math.sqrt(200e-6 * 50), rel=0.01)  # not 500 us
