"""The ``acustim`` command line: the parser and ``main``; the commands live in ``commands/``.

A user's mistake (bad program, bad argument, unknown device) is one line on stderr and exit 2,
with nothing sent to a device. Ctrl-C puts zero output on the wire at once and exits 130.
Exit codes: 0 completed, 2 bad input, 3 ended by a fault, 130 interrupted, 143 terminated,
141 when the reader of standard output quit (``acustim programs | head``: quietly, as Unix
tools do).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from typing import TextIO

# Only what the parser needs: each command module imports its engine, device, numpy or Qt
# stack inside the command that uses it, so ``acustim --help`` starts fast
# (``tests/acustim/test_cli_startup.py``, ``python -m bench --only cli_startup``).
from acustim import __version__
from acustim.commands import (
    calibrate,
    course,
    devices,
    gui,
    library,
    records,
    run,
    screening,
    simulate,
)
from acustim.commands._common import (
    EXIT_BROKEN_PIPE,
    EXIT_FAULT,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    Terminated,
    UsageError,
    silence_broken_stdout,
)
from waveforms.errors import AcustimError

#: every command module, in the order --help lists them
COMMANDS = (run, gui, library, records, course, screening, devices, simulate, calibrate)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="acustim",
        description="Run electro-acupuncture programs on stimulators or their simulators. "
        "Not a medical device; for trained practitioners.",
    )
    parser.add_argument("--version", action="version", version=f"acustim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(
    argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        code = _main(argv, out, err)
        out.flush()  # here, not at exit: a reader that quit is seen while it can be handled
        return code
    except BrokenPipeError:
        # ``acustim programs | head``: the reader has what it wanted. Exit quietly, as Unix
        # tools do; what is still buffered goes to the null device, not to a traceback.
        silence_broken_stdout(out)
        return EXIT_BROKEN_PIPE


def _main(argv: Sequence[str] | None, out: TextIO, err: TextIO) -> int:
    try:
        args = build_parser().parse_args(argv)
        code: int = args.func(args, out, err)
        return code
    except KeyboardInterrupt:
        print("stopped: output set to zero (Ctrl-C)", file=err)
        return EXIT_INTERRUPTED
    except Terminated:
        print("stopped: output set to zero (terminated)", file=err)
        return 128 + signal.SIGTERM
    except AcustimError as exc:
        print(f"acustim: {exc}", file=err)
        return _error_code(exc)
    except SystemExit as exc:  # --help / --version
        return int(exc.code or 0)


def _error_code(exc: AcustimError) -> int:
    """Exit 3 when the device or link failed; 2 for the user's input (a mistyped device too)."""
    if isinstance(exc, UsageError):  # the parser's errors: no need to load the device bridge
        return EXIT_USAGE
    # the bridge is loaded here, not with the parser (a BridgeError comes from it anyway)
    from firmware_bridge.errors import BridgeError, UnknownDeviceError

    if isinstance(exc, BridgeError) and not isinstance(exc, UnknownDeviceError):
        return EXIT_FAULT
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
