"""``python -m bench --quick`` runs and reports every benchmark in the agreed shape.

It never checks that a target is met: benchmarks measure the machine they run on, and a slow
CI machine must not fail the tests. Opt-in (``pytest -m bench``): it is deselected from the
ordinary run, which it would lengthen by the benchmarks' own run time.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.bench

ROOT = Path(__file__).resolve().parents[2]
NAMES = (
    "frame_lateness",
    "estop_latency",
    "guard_throughput",
    "render_speed",
    "device_estop",
    "gui_refresh",
    "cli_startup",
)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@pytest.fixture(scope="module")
def quick_run() -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json-only"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,  # a hang guard, not a speed limit
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed


def test_quick_run_reports_the_machine(quick_run: dict[str, Any]) -> None:
    m = quick_run["machine"]
    assert _is_number(m["cpu_count"]) and m["cpu_count"] >= 1
    assert isinstance(m["python"], str) and m["python"]
    assert isinstance(m["platform"], str) and m["platform"]
    assert quick_run["quick"] is True


def test_quick_run_reports_every_benchmark_with_figures_targets_and_met(
    quick_run: dict[str, Any],
) -> None:
    benchmarks = quick_run["benchmarks"]
    assert set(benchmarks) == set(NAMES)
    for name in NAMES:
        b = benchmarks[name]
        assert b["name"] == name
        assert b["figures"], name
        assert all(_is_number(v) for v in b["figures"].values()), name
        assert b["targets"], name
        for t in b["targets"]:
            assert t["figure"] in b["figures"], (name, t)
            assert t["op"] in ("<=", ">="), (name, t)
            assert _is_number(t["value"]) and _is_number(t["measured"]), (name, t)
            assert isinstance(t["met"], bool), (name, t)
        assert isinstance(b["met"], bool), name
        assert b["met"] == all(t["met"] for t in b["targets"]), name


def test_quick_run_measured_the_key_figures(quick_run: dict[str, Any]) -> None:
    """Something was measured (not NaN); how fast it was is not checked here."""
    b = quick_run["benchmarks"]
    for name, figure in (
        ("frame_lateness", "p99_ms"),
        ("frame_lateness", "baseline_p99_ms"),
        ("frame_lateness", "frame_period_ms"),
        ("estop_latency", "p99_ms"),
        ("estop_latency", "sim_zero_p99_ms"),
        ("guard_throughput", "vet_frames_per_s"),
        ("guard_throughput", "vet_calibrated_frames_per_s"),
        ("guard_throughput", "encode_frames_per_s"),
        ("render_speed", "x_realtime"),
    ):
        assert not math.isnan(b[name]["figures"][figure]), (name, figure)


DEVICE_CASES = (
    "coyote3_inproc",
    "coyote3_ble",
    "coyote2_inproc",
    "coyote2_ble",
    "et312_inproc",
    "et312_pty",
    "pulsepal_inproc",
    "pulsepal_pty",
)


def test_quick_run_measured_every_device_and_hosting(quick_run: dict[str, Any]) -> None:
    """Each case stopped at least once and has both latencies; the target is not checked."""
    figures = quick_run["benchmarks"]["device_estop"]["figures"]
    for case in DEVICE_CASES:
        assert figures[f"{case}_stops"] >= 1, case
        assert figures[f"{case}_frame_period_ms"] > 0, case
        for figure in ("wire_p50_ms", "wire_p99_ms", "sim_zero_p50_ms", "sim_zero_p99_ms"):
            value = figures[f"{case}_{figure}"]
            assert _is_number(value) and not math.isnan(value), (case, figure)
