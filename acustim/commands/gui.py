"""``acustim gui``: open the practitioner's window.

It never imports the ``gui`` package (nothing outside ``gui`` does): it runs
``python -m gui`` with the same interpreter and the options given. On POSIX the process
becomes the window (``os.execv``), so Ctrl-C and SIGTERM reach the window, which stops output
before it closes. Elsewhere it runs the window as a child and waits for it, without killing it
on Ctrl-C (the window gets the Ctrl-C itself and stops output first).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, TextIO

from acustim.commands._common import EXIT_INTERRUPTED


def gui_argv(args: argparse.Namespace) -> list[str]:
    """The command line that opens the window with these options."""
    argv = [sys.executable, "-m", "gui", "--device", args.device]
    if args.no_connect:
        argv.append("--no-connect")
    if args.program:
        argv += ["--program", args.program]
    if args.store:
        argv += ["--store", args.store]
    if args.no_record:
        argv.append("--no-record")
    return argv


def cmd_gui(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    import subprocess  # here, not with the parser: ``acustim --help`` starts fast

    argv = gui_argv(args)
    out.flush()
    err.flush()
    if os.name == "posix" and not args.wait:
        os.execv(argv[0], argv)  # does not return
    child = subprocess.Popen(argv)
    while True:
        try:
            return child.wait()
        except KeyboardInterrupt:  # the window got it too and is stopping output: wait for it
            if child.poll() is not None:
                return EXIT_INTERRUPTED


def register(sub: Any) -> None:
    gui = sub.add_parser(
        "gui",
        help="open the practitioner's window",
        description="Open the practitioner's window: device, program and placement map, "
        "channel levels, live plots and a STOP that Space or Esc reach from anywhere.",
        epilog="example: acustim gui --device sim:coyote3 --program tmj-jaw-pain-left",
    )
    gui.add_argument(
        "--device",
        default="sim:coyote3",
        help="device to connect on start: sim:<device> or <device>@<port or address> "
        "(default: sim:coyote3)",
    )
    gui.add_argument("--no-connect", action="store_true", help="do not connect on start")
    gui.add_argument(
        "--program", help="program to show first: a built-in name or a program file (.toml)"
    )
    gui.add_argument("--store", metavar="PATH", help="records database (default: user data dir)")
    gui.add_argument("--no-record", action="store_true", help="do not record sessions")
    gui.add_argument(
        "--wait",
        action="store_true",
        help="run the window as a child process and wait for it (the default on POSIX "
        "replaces this process with the window)",
    )
    gui.set_defaults(func=cmd_gui)
