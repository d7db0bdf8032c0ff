"""Column values: rows to the text and numbers SQLite stores, and back, checked both ways.

Frames' channels and the JSON objects (meta, screening answers, event data) are compact JSON,
floats written with ``repr`` (they read back bit for bit); a number that is not finite, or a
value that is not JSON, is a ``RecordsError`` before anything is queued. A column that does not
decode is a ``RecordsError`` naming where it is ("damaged"). Also the values the store stamps on
a session: the UTC time and the acustim version. This module never touches SQLite or a file.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from acustim.records.errors import RecordsError
from acustim.records.rows import ChannelFrame

__all__ = [
    "acustim_version",
    "decode_channels",
    "dumps_object",
    "encode_channels",
    "finite",
    "loads_object",
    "utc_now",
]


@functools.cache
def acustim_version() -> str:
    """The installed acustim's version ("unknown" when not installed), as sessions and
    reports record it."""
    try:
        return metadata.version("acustim")
    except metadata.PackageNotFoundError:
        return "unknown"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def finite(value: float, what: str) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise RecordsError(f"{what} must be a finite number, got {value!r}")
    return number


def _floats(values: Sequence[float], what: str) -> list[float]:
    return [finite(value, what) for value in values]


def encode_channels(channels: Sequence[ChannelFrame]) -> str:
    rows: list[list[object]] = []
    for ch in channels:
        if isinstance(ch.level_du, bool) or not isinstance(ch.level_du, int):
            raise RecordsError(f"channel {ch.name!r}: level_du must be an int, got {ch.level_du!r}")
        rows.append(
            [
                ch.name,
                ch.level_du,
                _floats(ch.frequency_hz, f"channel {ch.name!r} frequency_hz"),
                _floats(ch.pulse_width_us, f"channel {ch.name!r} pulse_width_us"),
                _floats(ch.intensity, f"channel {ch.name!r} intensity"),
            ]
        )
    return json.dumps(rows, separators=(",", ":"), allow_nan=False)


def dumps_object(value: dict[str, object], what: str) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise RecordsError(f"{what} must be JSON-compatible: {exc}") from exc


def loads_object(text: str, where: str) -> dict[str, object]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise RecordsError(f"{where} is damaged (bad JSON: {exc})") from exc
    if not isinstance(value, dict):
        raise RecordsError(f"{where} is damaged (expected a JSON object)")
    return value


def decode_channels(text: str, where: str) -> tuple[ChannelFrame, ...]:
    try:
        rows: Any = json.loads(text)
        channels = []
        for name, level_du, frequency_hz, pulse_width_us, intensity in rows:
            channels.append(
                ChannelFrame(
                    name=str(name),
                    level_du=int(level_du),
                    frequency_hz=tuple(float(x) for x in frequency_hz),
                    pulse_width_us=tuple(float(x) for x in pulse_width_us),
                    intensity=tuple(float(x) for x in intensity),
                )
            )
        return tuple(channels)
    except (ValueError, TypeError) as exc:
        raise RecordsError(f"{where} is damaged (bad channels: {exc})") from exc
