"""render_speed: seconds of program rendered per CPU second.

A 4-channel, 30-minute program with every segment kind (ramps, continuous, dense-disperse,
intermittent) in a different order on each channel, so segment boundaries do not line up,
validated with ``waveforms.files.validate_program`` and rendered whole at 25 ms ticks (the
Coyote 3 sample period) with ``waveforms.render.render``. CPU time is
``time.process_time`` (this process, all threads; nothing else runs during this benchmark).
"""

from __future__ import annotations

import time

from bench._common import BenchReport, report
from waveforms.files import validate_program
from waveforms.program import (
    Channel,
    Continuous,
    DenseDisperse,
    Intermittent,
    Program,
    Ramp,
    Segment,
)
from waveforms.render import render

NAME = "render_speed"
TARGET_X_REALTIME = 1000.0
TICK_S = 0.025
PROGRAM_S = 1800.0


def _timeline(shift: int) -> tuple[Segment, ...]:
    """30 minutes of mixed segments; ``shift`` rotates the pattern and its lengths."""
    pattern: list[Segment] = [
        Ramp(37.5 + 5 * shift, 80.0, 200.0, 0.0, 1.0, label="ramp up"),
        Continuous(120.0, 80.0, 200.0, 0.9, label="continuous"),
        DenseDisperse(150.0, 250.0, 0.8, low_hz=2.0, high_hz=100.0, low_s=3.0, high_s=3.0),
        Intermittent(90.0, 50.0, 200.0, 0.85, on_s=3.0, off_s=1.0, label="intermittent"),
        Continuous(60.0 + 7.5 * shift, 2.0, 300.0, 1.0, label="low rate"),
        Ramp(42.5, 80.0, 200.0, 1.0, 0.4, label="ramp down"),
    ]
    pattern = pattern[shift:] + pattern[:shift]
    out: list[Segment] = []
    total = 0.0
    while True:
        for seg in pattern:
            if total + seg.duration_s >= PROGRAM_S:
                rest = PROGRAM_S - total
                out.append(Continuous(rest, 80.0, 200.0, 0.5, label="to the end"))
                return tuple(out)
            out.append(seg)
            total += seg.duration_s


def bench_program() -> Program:
    program = Program(
        name="bench-render",
        title="Bench render",
        indication="benchmark only",
        channels=tuple(
            Channel(name, (f"ST{6 + k}-L", f"ST{7 + k}-L"), _timeline(k))
            for k, name in enumerate(("A", "B", "C", "D"))
        ),
    )
    validate_program(program)
    return program


def run(quick: bool = False) -> BenchReport:
    program = bench_program()
    min_cpu_s = 0.2 if quick else 2.0
    render(program, TICK_S)  # warm up (imports, numpy's first calls)
    renders = 0
    cpu_start = time.process_time()
    wall_start = time.perf_counter()
    while True:
        rendered = render(program, TICK_S)
        renders += 1
        cpu_s = time.process_time() - cpu_start
        if cpu_s >= min_cpu_s and renders >= 3:
            break
    wall_s = time.perf_counter() - wall_start
    program_s = program.duration_s
    figures: dict[str, float] = {
        "x_realtime": renders * program_s / cpu_s,
        "x_realtime_wall": renders * program_s / wall_s,
        "ms_per_render": cpu_s / renders * 1000.0,
        "renders": renders,
        "ticks_per_render": rendered.n_ticks,
    }
    return report(
        NAME,
        "seconds of a 4-channel 30-minute mixed program rendered per CPU second at 25 ms ticks",
        figures,
        [("x_realtime", ">=", TARGET_X_REALTIME)],
        {
            "program_s": program_s,
            "channels": len(program.channels),
            "segments": sum(len(c.segments) for c in program.channels),
            "segment_kinds": ", ".join(
                sorted({s.kind for c in program.channels for s in c.segments})
            ),
            "tick_s": TICK_S,
            "cpu_clock": "time.process_time",
        },
    )
