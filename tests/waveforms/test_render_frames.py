"""Device frames cut from a render: whole frames, and silence (all 0.0) past the end."""

from __future__ import annotations

from waveforms.program import Channel, Continuous, Program
from waveforms.render import render


def two_channel_program() -> Program:
    long = Continuous(duration_s=0.25, frequency_hz=50.0, pulse_width_us=200.0, intensity=0.5)
    short = Continuous(duration_s=0.1, frequency_hz=20.0, pulse_width_us=100.0, intensity=1.0)
    return Program(
        name="frames",
        title="Frames",
        indication="tests",
        channels=(
            Channel("A", ("ST6-L", "ST7-L"), (long,)),
            Channel("B", ("ST6-R", "ST7-R"), (short,)),
        ),
    )


def test_frames_cover_the_render_and_pad_the_last_with_silence() -> None:
    r = render(two_channel_program(), 0.025)  # 10 ticks on A, 4 on B
    assert r.n_ticks == 10
    assert r.n_frames(4) == 3
    first = r.frame(0, 4)
    assert [d.name for d in first] == ["A", "B"]
    assert first[0].intensity == (0.5,) * 4
    assert first[1].frequency_hz == (20.0,) * 4
    last = r.frame(2, 4)  # ticks 8, 9 and two ticks of padding
    assert last[0].intensity == (0.5, 0.5, 0.0, 0.0)
    assert last[0].frequency_hz == (50.0, 50.0, 0.0, 0.0)
    assert last[0].pulse_width_us == (200.0, 200.0, 0.0, 0.0)
    assert last[1].intensity == (0.0,) * 4  # B ended after tick 3: silent, as rendered
    beyond = r.frame(5, 4)
    assert all(d.intensity == (0.0,) * 4 and d.frequency_hz == (0.0,) * 4 for d in beyond)
