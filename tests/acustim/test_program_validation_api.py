"""A program built in code meets the same rules as a program file, through the Python API.

``Device.start`` runs ``waveforms.validate`` on every program, however it was made: a bad
one is refused with a ``ProgramError`` that names the path of the value and the allowed
range, before anything is sent (the simulator's record stays empty and the link carries no
write). Before this, intensity 3.0 built in code ran to "completed", held only by the guard.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from acustim import Engine
from firmware_bridge.link import SimulatorLink
from waveforms import Channel, Continuous, DenseDisperse, Program, ProgramError, Ramp


def program(*segments: Continuous | DenseDisperse | Ramp, names: str = "A") -> Program:
    """A program built in code: a gentle start, then ``segments``, on one side per channel."""
    start = Ramp(2.0, 50.0, 200.0, 0.0, 1.0, label="gentle start")
    sides = {"A": "L", "B": "R", "a": "R"}
    return Program(
        name="built-in-code",
        title="Built in code",
        indication="tests",
        channels=tuple(
            Channel(name, (f"ST6-{sides[name]}", f"ST7-{sides[name]}"), (start, *segments))
            for name in names
        ),
    )


GOOD = program(Continuous(3.0, 50.0, 200.0, 1.0))


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return Engine(virtual_time=True, records=tmp_path / "records.sqlite3")


def link_of(device: object) -> SimulatorLink:
    transport = device.transport  # type: ignore[attr-defined]
    assert isinstance(transport, SimulatorLink)
    return transport


def test_intensity_3_built_in_code_is_refused_with_its_path_before_anything_is_sent(
    engine: Engine,
) -> None:
    bad = program(Continuous(3.0, 50.0, 200.0, 3.0))
    with engine:
        device = engine.connect("sim:coyote3")

        with pytest.raises(ProgramError) as info:
            device.start(bad, levels={"A": 20})

        assert str(info.value) == (
            "built-in-code: channels[0].segments[1].intensity: channel A segment 2 "
            "(continuous) intensity = 3.0 is out of range; "
            "allowed 0..1 (fraction of the channel's treatment level)"
        )
        assert device.simulator.record.intervals() == []
        assert device.simulator.record.max_output("A") == 0.0
        assert link_of(device).writes == 0
        assert engine.store is not None
        assert engine.store.sessions() == []


def test_the_same_program_with_a_valid_intensity_runs(engine: Engine) -> None:
    with engine:
        device = engine.connect("sim:coyote3")

        result = device.start(GOOD, levels={"A": 20}).wait(30)

        assert result.outcome == "completed"
        assert device.simulator.record.max_output("A") > 0.0


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        (
            program(DenseDisperse(3.0, 200.0, 1.0, low_hz=100.0, high_hz=2.0)),
            "channels[0].segments[1].low_hz: channel A segment 2 (dense_disperse) low_hz = 100.0 "
            "is not below high_hz = 2.0; allowed low_hz below high_hz, both 0.5..200 Hz",
        ),
        (
            program(Continuous(3600.0, 50.0, 200.0, 1.0)),
            "channels[0].duration_s: channel A total duration_s = 3602.0 is too long (passes "
            "the limit at segment 2); allowed at most 3600 s per channel and program",
        ),
        (
            program(Continuous(3.0, 500.0, 200.0, 1.0)),
            "channels[0].segments[1].frequency_hz: channel A segment 2 (continuous) "
            "frequency_hz = 500.0 is out of range; allowed 0.5..200 Hz",
        ),
        (
            replace(GOOD, channels=(replace(GOOD.channels[0], max_level_fraction=1.5),)),
            "channels[0].max_level_fraction: channel A max_level_fraction = 1.5 is out of range",
        ),
        (
            program(Continuous(3.0, 50.0, 200.0, 1.0), names="Aa"),
            'channels[1].name: channel 2 name = "a" is a duplicate of channel A',
        ),
        (replace(GOOD, name="Not A Slug"), 'name: program name = "Not A Slug" is not a slug'),
    ],
)
def test_every_rule_of_the_program_format_applies_to_programs_built_in_code(
    engine: Engine, bad: Program, says: str
) -> None:
    with engine:
        device = engine.connect("sim:coyote3")

        with pytest.raises(ProgramError) as info:
            device.start(bad, levels={"A": 20})

        assert says in str(info.value)
        assert device.simulator.record.intervals() == []
        assert link_of(device).writes == 0


def test_a_value_that_is_not_a_program_is_a_program_error(engine: Engine) -> None:
    with engine:
        device = engine.connect("sim:coyote3")

        with pytest.raises(ProgramError, match=r"program = \{table\} is a table, not a Program"):
            device.start({"name": "x"}, levels={"A": 20})  # type: ignore[arg-type]

        assert link_of(device).writes == 0
