"""``python -m bench``: run the benchmarks, print one JSON object, then a short table.

Options: ``--quick`` (small counts, a few seconds in all), ``--only NAME`` (repeatable),
``--json-only`` (no table), ``--switch-interval S`` (set ``sys.setswitchinterval`` first; the
value in force is reported either way). Progress goes to stderr. Exits 0 whatever the figures:
a benchmark reports whether a target was met, it never fails on speed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence

from bench import BENCHMARKS, BenchReport, machine
from bench._common import load_average, python_ref_loop_ms


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="acustim benchmarks (figures vs targets, as JSON)"
    )
    parser.add_argument("--quick", action="store_true", help="small counts (a few seconds)")
    parser.add_argument(
        "--only",
        action="append",
        choices=list(BENCHMARKS),
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--json-only", action="store_true", help="print the JSON, no table")
    parser.add_argument(
        "--switch-interval",
        type=float,
        metavar="S",
        help="set sys.setswitchinterval(S) before running (default: leave Python's 0.005 s)",
    )
    return parser.parse_args(argv)


def _number(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value)}"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"


def table(reports: Sequence[BenchReport]) -> str:
    """A short human summary: each target, then the other figures of each benchmark."""
    lines = [f"{'benchmark':<18} {'figure':<34} {'measured':>12} {'target':>12}  met"]
    for r in reports:
        shown: set[str] = set()
        for t in r["targets"]:
            lines.append(
                f"{r['name']:<18} {t['figure']:<34} {_number(t['measured']):>12} "
                f"{t['op'] + ' ' + _number(t['value']):>12}  {'yes' if t['met'] else 'NO'}"
            )
            shown.add(t["figure"])
        for key, value in r["figures"].items():
            if key not in shown:
                lines.append(f"{'':<18} {key:<34} {_number(value):>12}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    switch_set = args.switch_interval is not None
    if switch_set:
        sys.setswitchinterval(args.switch_interval)
    names = list(dict.fromkeys(args.only)) if args.only else list(BENCHMARKS)
    reports: list[BenchReport] = []
    started = time.perf_counter()
    load_before = load_average()
    host = machine()
    for name in names:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        t = time.perf_counter()
        reports.append(BENCHMARKS[name](args.quick))
        print(f"bench: {name} done in {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
    out = {
        "machine": host,
        "quick": bool(args.quick),
        "switch_interval_set_by_bench": switch_set,
        "total_s": time.perf_counter() - started,
        # other processes on the machine skew the timing figures: say how busy it was
        "load_average_1m_before": load_before,
        "load_average_1m_after": load_average(),
        "python_ref_loop_ms_after": python_ref_loop_ms(),
        "all_met": all(r["met"] for r in reports),
        "benchmarks": {r["name"]: r for r in reports},
    }
    print(json.dumps(out, indent=2))
    if not args.json_only:
        print()
        print(
            f"{host['cpu_count']} CPUs ({host['cpu']}), Python {host['python']}, "
            f"{host['platform']}; load {load_before:.2f}; "
            f"ref loop {host['python_ref_loop_ms']:.0f} ms; "
            f"switch interval {sys.getswitchinterval():g} s"
        )
        print(table(reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
