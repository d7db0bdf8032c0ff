"""``acustim programs`` and ``acustim validate``: the program library and program files."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from acustim.commands._common import EXIT_OK, EXIT_USAGE
from waveforms.builtin import builtin_programs
from waveforms.errors import AcustimError
from waveforms.files import load_program as load_program_file


def cmd_programs(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    for p in builtin_programs():
        minutes = p.duration_s / 60
        channels = ", ".join(f"{c.name}: {' '.join(c.sites)}" for c in p.channels)
        print(f"{p.name:<28} {minutes:>4.0f} min  {p.title}", file=out)
        print(f"{'':<28}           {channels}", file=out)
    return EXIT_OK


def cmd_validate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    bad = 0
    for path in args.files:
        try:
            p = load_program_file(path)
        except AcustimError as exc:
            print(f"acustim: {exc}", file=err)
            bad += 1
            continue
        print(
            f"{path}: ok ({p.name}, {len(p.channels)} channels, {p.duration_s / 60:.1f} min)",
            file=out,
        )
    return EXIT_USAGE if bad else EXIT_OK


def register(sub: Any) -> None:
    programs = sub.add_parser("programs", help="list the built-in programs")
    programs.set_defaults(func=cmd_programs)

    validate = sub.add_parser("validate", help="check program files")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.set_defaults(func=cmd_validate)
