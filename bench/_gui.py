"""gui_refresh: plot refresh time and stream lateness while the practitioner's window refreshes.

The measuring runs in a child process, ``python -m gui._bench`` (offscreen when there is no
display): nothing outside ``gui`` imports ``gui``, and the Qt application stays out of the
bench process. Figures (see ``gui/_bench.py`` for how each is taken):

- ``coyote3_refresh_paint_p99_ms`` / ``1khz_refresh_paint_p99_ms``: one plot refresh of 4
  channels over 30 s windows, data + setData + a synchronous repaint, at the Coyote 3's 25 ms
  samples and at 1 kHz (target <= 10 ms each);
- ``stream_lateness_p99_ms``: the session's frame lateness (as handed to the link) while the
  real window refreshes at 30 Hz (target <= 2 ms).

Never asserts; a failed child is reported as NaN figures with the reason in the notes.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from bench._common import BenchReport, report

NAME = "gui_refresh"
TARGET_REFRESH_MS = 10.0
TARGET_LATENESS_P99_MS = 2.0
_ROOT = Path(__file__).resolve().parents[1]
_KEYS = (
    "coyote3_refresh_paint_p99_ms",
    "1khz_refresh_paint_p99_ms",
    "stream_lateness_p99_ms",
)


def run(quick: bool = False) -> BenchReport:
    notes = [
        "measured in a child process: python -m gui._bench (offscreen Qt, raster, CPU only)",
        "refresh = LiveBuffer copy + min/max decimation + setData for 4 channels x (output, "
        "rate, pulses); refresh_paint adds a synchronous repaint of a 1200 x 600 plot widget",
        "stream lateness: the real window on sim:coyote3 (100 ms frames), flat 2/100 Hz at "
        "20 du on A and B, 30 Hz GUI refresh; the session's own p99 over its recent frames",
    ]
    command = [sys.executable, "-m", "gui._bench"] + (["--quick"] if quick else [])
    figures: dict[str, float]
    try:
        done = subprocess.run(
            command,
            cwd=_ROOT,
            capture_output=True,
            text=True,
            timeout=60 if quick else 300,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr else "failed")
        last = done.stdout.strip().splitlines()[-1]
        figures = {k: float(v) for k, v in json.loads(last).items()}
    except Exception as exc:  # report, never raise: a bench says what it could not measure
        notes.append(f"the GUI bench did not run: {type(exc).__name__}: {exc}")
        figures = {}
    for key in _KEYS:
        figures.setdefault(key, math.nan)
    return report(
        NAME,
        "plot refresh (4 channels, 30 s windows) and stream lateness while the window refreshes",
        figures,
        [
            ("coyote3_refresh_paint_p99_ms", "<=", TARGET_REFRESH_MS),
            ("1khz_refresh_paint_p99_ms", "<=", TARGET_REFRESH_MS),
            ("stream_lateness_p99_ms", "<=", TARGET_LATENESS_P99_MS),
        ],
        {
            "quick": quick,
            "process": "python -m gui._bench",
            "plot_size_px": "1200x600",
            "channels": 4,
            "window_s": 30.0,
            "refresh_hz": 30.0,
        },
        notes,
    )
