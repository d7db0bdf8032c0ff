"""cli_startup: how long ``acustim --help`` takes from a fresh interpreter, and what it imports.

Every run is a new ``python`` process (the bytecode caches and the OS file cache are warm, as
for a user's second command; one unrecorded run first makes sure of that). The children keep
their bytecode in a private temporary ``PYTHONPYCACHEPREFIX``, so neither
``PYTHONDONTWRITEBYTECODE`` nor a stale ``__pycache__`` in the tree (files just edited) adds
compile time to the figures, and nothing is written into the tree. Figures:

- ``help_p50_ms`` / ``_p95_ms`` / ``_max_ms``: wall time of ``python -m acustim.cli --help``
  (target p50 <= 300 ms); ``run_help_*``: the same for ``acustim run --help``;
- ``script_help_*``: the installed ``acustim`` console script next to this interpreter, if
  there is one (NaN and no target otherwise);
- ``python_startup_p50_ms``: ``python -c pass``, the part no change to acustim can remove;
- ``build_parser_p50_ms``: importing ``acustim.cli`` and building the parser, timed inside
  the child;
- ``heavy_modules_imported``: how many of numpy, bleak, serial (pyserial), PySide6 and
  pyqtgraph are in ``sys.modules`` after building the parser (target 0; the names are in
  ``conditions``);
- ``importtime_total_ms``: the sum of ``-X importtime`` self times for ``--help`` (the top
  imports are in ``conditions``).

Never asserts; a child that fails is reported as NaN figures with the reason in the notes.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from bench._common import BenchReport, Condition, Op, percentile, report

NAME = "cli_startup"
TARGET_MS = 300.0
#: top-level packages that building the parser must not import
HEAVY = ("numpy", "bleak", "serial", "PySide6", "pyqtgraph")
#: acustim's own stacks and the costlier stdlib ones: reported, no target
STACKS = (
    "acustim.engine",
    "asyncio",
    "device_profiles",
    "firmware_bridge",
    "gui",
    "safety",
    "simulators",
    "sqlite3",
)
_ROOT = Path(__file__).resolve().parents[1]
_TIMEOUT_S = 60.0  # a hang guard, not a speed limit

#: run in the child: build the parser, then say how long it took and what it imported
_PROBE = f"""
import json, sys, time
before = set(sys.modules)
start = time.perf_counter()
from acustim.cli import build_parser
build_parser()
took = time.perf_counter() - start
heavy, stacks = {HEAVY!r}, {STACKS!r}
def loaded(names):
    return sorted(n for n in names if any(m == n or m.startswith(n + ".") for m in sys.modules))
print(json.dumps({{"build_s": took, "heavy": loaded(heavy), "stacks": loaded(stacks),
                  "new_modules": len(set(sys.modules) - before)}}))
"""

_IMPORTTIME = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def _child_env(pycache: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPYCACHEPREFIX=pycache)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _wall_times(command: Sequence[str], runs: int, env: Mapping[str, str]) -> list[float]:
    """Seconds per run of ``command`` in a fresh process; raises if a run fails."""
    times: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(
            command,
            cwd=_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=_TIMEOUT_S,
            check=False,
        )
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            last = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["failed"]
            raise RuntimeError(f"{' '.join(command)}: exit {done.returncode}: {last[0]}")
    return times


def _spread(prefix: str, times_s: Sequence[float]) -> dict[str, float]:
    return {
        f"{prefix}p50_ms": percentile(times_s, 50) * 1000.0,
        f"{prefix}p95_ms": percentile(times_s, 95) * 1000.0,
        f"{prefix}max_ms": (max(times_s) * 1000.0) if times_s else math.nan,
    }


def _importtime(command: Sequence[str], env: Mapping[str, str]) -> tuple[float, str]:
    """The sum of ``-X importtime`` self times (ms), and the top imports by cumulative time."""
    done = subprocess.run(
        [command[0], "-X", "importtime", *command[1:]],
        cwd=_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=_TIMEOUT_S,
        check=True,
    )
    rows = [
        (int(m[1]), int(m[2]), len(m[3]) // 2, m[4])
        for m in map(_IMPORTTIME.match, done.stderr.splitlines())
        if m
    ]
    top = sorted((r for r in rows if r[2] <= 1), key=lambda r: -r[1])[:6]
    text = "; ".join(f"{name} {cumulative / 1000:.1f} ms" for _, cumulative, _, name in top)
    return sum(r[0] for r in rows) / 1000.0, text


def _measure(
    runs: int, python: str, script: Path | None, env: Mapping[str, str]
) -> tuple[dict[str, float], dict[str, Condition]]:
    def timed(command: Sequence[str]) -> list[float]:
        return _wall_times(command, runs + 1, env)[1:]  # the first run warms the caches

    help_cmd = [python, "-m", "acustim.cli", "--help"]
    figures = _spread("help_", timed(help_cmd))
    figures.update(_spread("run_help_", timed([python, "-m", "acustim.cli", "run", "--help"])))
    if script is not None:
        figures.update(_spread("script_help_", timed([str(script), "--help"])))
    figures["python_startup_p50_ms"] = percentile(timed([python, "-c", "pass"]), 50) * 1000.0
    probes = []
    for _ in range(runs):
        done = subprocess.run(
            [python, "-c", _PROBE],
            cwd=_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_S,
            check=True,
        )
        probes.append(json.loads(done.stdout.strip().splitlines()[-1]))
    figures["build_parser_p50_ms"] = percentile([p["build_s"] for p in probes], 50) * 1000.0
    figures["modules_imported_by_parser"] = float(probes[-1]["new_modules"])
    heavy = sorted({name for p in probes for name in p["heavy"]})
    figures["heavy_modules_imported"] = float(len(heavy))
    figures["importtime_total_ms"], top_imports = _importtime(help_cmd, env)
    conditions: dict[str, Condition] = {
        "heavy_modules_found": ", ".join(heavy) or "none",
        "heavy_modules_checked": ", ".join(HEAVY),
        "stacks_imported_by_parser": ", ".join(probes[-1]["stacks"]) or "none",
        "top_imports": top_imports,
    }
    return figures, conditions


def run(quick: bool = False) -> BenchReport:
    runs = 5 if quick else 20
    python = sys.executable
    script: Path | None = Path(python).with_name("acustim.exe" if os.name == "nt" else "acustim")
    notes = [
        f"{runs} runs per command, each a fresh interpreter ({python}), after one unrecorded "
        "run that warms the bytecode and file caches; wall time includes the interpreter's start",
        "bytecode in a private temporary PYTHONPYCACHEPREFIX (PYTHONDONTWRITEBYTECODE unset)",
        "build_parser: 'from acustim.cli import build_parser; build_parser()' timed in the child",
    ]
    if script is not None and not script.is_file():
        notes.append(f"no console script at {script}: script_help_* not measured")
        script = None
    conditions: dict[str, Condition] = {
        "runs": runs,
        "quick": quick,
        "python": python,
        "script": str(script) if script is not None else "none",
        "parent_dont_write_bytecode": bool(sys.flags.dont_write_bytecode),
    }
    figures: dict[str, float] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="acustim-bench-pycache-") as pycache:
            figures, found = _measure(runs, python, script, _child_env(pycache))
        conditions.update(found)
    except Exception as exc:  # report, never raise: a bench says what it could not measure
        notes.append(f"not measured: {type(exc).__name__}: {exc}")
    for key in (
        *_spread("help_", []),
        *_spread("run_help_", []),
        "python_startup_p50_ms",
        "build_parser_p50_ms",
        "modules_imported_by_parser",
        "heavy_modules_imported",
        "importtime_total_ms",
    ):
        figures.setdefault(key, math.nan)
    targets: list[tuple[str, Op, float]] = [
        ("help_p50_ms", "<=", TARGET_MS),
        ("run_help_p50_ms", "<=", TARGET_MS),
        ("heavy_modules_imported", "<=", 0.0),
    ]
    if script is not None:
        targets.append(("script_help_p50_ms", "<=", TARGET_MS))
    return report(
        NAME,
        "acustim --help from a fresh interpreter: wall time, and what building the parser imports",
        figures,
        targets,
        conditions,
        notes,
    )
