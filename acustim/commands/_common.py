"""What every command shares: exit codes, the error for a wrong argument, and the strict
readers of numbers and files that turn a user's mistake into that error."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable

from waveforms.errors import AcustimError

EXIT_OK, EXIT_USAGE, EXIT_FAULT, EXIT_INTERRUPTED = 0, 2, 3, 130
#: Output went to a pipe whose reader quit (``acustim programs | head``): exit quietly with
#: the status a Unix tool killed by SIGPIPE has.
EXIT_BROKEN_PIPE = 128 + 13

#: The longest whole number a channel value (``--level A=20``) may be written with.
MAX_NUMBER_DIGITS = 6


class UsageError(AcustimError):
    """A command-line argument is wrong."""


class Terminated(Exception):
    """SIGTERM: handled like Ctrl-C (zero output at once), exit 143."""


def silence_broken_stdout(stream: object) -> None:
    """After a write to standard output failed (its reader quit, the disk is full), point
    file descriptor 1 at the null device: what is still buffered, and Python's last flush at
    exit, then go nowhere instead of raising again (Python would print "Exception ignored"
    at exit). Only for the process's real standard output; anything else is left alone."""
    real = sys.__stdout__
    if real is None or stream is not real:
        return
    try:
        fd = real.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, fd)
        finally:
            os.close(null)
    except (OSError, ValueError):  # no real descriptor (pytest's capture): nothing to do
        pass


def shown(text: str, limit: int = 60) -> str:
    """``text`` quoted for a message: on one line and at most about ``limit`` characters."""
    quoted = repr(text)
    return quoted if len(quoted) <= limit else quoted[: limit - 4] + "...'"


def whole_number(text: str, *, max_digits: int = MAX_NUMBER_DIGITS) -> int | None:
    """``text`` as a whole number if it is 1..``max_digits`` ASCII digits, else None.

    Stricter than ``int()``: no sign, no spaces, no ``_``, no other scripts' digits and no
    ``²`` (which ``str.isdigit`` accepts and ``int`` refuses)."""
    if not 1 <= len(text) <= max_digits or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


def seconds_in(lo: float, hi: float, option: str) -> Callable[[str], float]:
    """An argparse ``type``: a finite number of seconds in ``lo..hi``, else one clear line."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and lo <= value <= hi):
            raise argparse.ArgumentTypeError(
                f"{shown(text)} is not a number of seconds in range; allowed {lo:g}..{hi:g} s"
            )
        return value

    parse.__name__ = option  # argparse names the type in some messages
    return parse


def read_regular_file(path: str, what: str, max_bytes: int) -> bytes:
    """The bytes of the regular file at ``path``, at most ``max_bytes``; else one line.

    A FIFO, a device or a directory is refused before it is opened (opening a FIFO would
    wait for a writer forever), and again after opening, in case the path changed between.
    ``what`` names the file in messages ("the screening file")."""
    from waveforms.files import NotReadable, read_regular  # here: the parser stays light

    try:
        return read_regular(path, max_bytes)
    except NotReadable as refused:
        if refused.kind is not None:
            raise UsageError(
                f"{path}: {what} is {refused.kind}, not a regular file; allowed a regular file"
            ) from None
        if refused.size is not None:
            raise UsageError(
                f"{path}: {what} size = {refused.size} bytes is too large; "
                f"allowed at most {max_bytes} bytes"
            ) from None
        raise UsageError(
            f"{path}: cannot read {what} ({refused.reason}); allowed a readable regular file"
        ) from None
