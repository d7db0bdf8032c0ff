"""How a value reads in a report: times on the session clock, local times, free-form values of
the session record, and escaping for the HTML page and its SVG plots.

Only turns values into text: computes nothing about a session, reads no store, imports no Qt.
"""

from __future__ import annotations

import html
from datetime import datetime

__all__ = ["clock", "esc", "local_time", "meta_text"]


def esc(value: object) -> str:
    """``value`` as text safe in HTML and SVG, in element content and in quoted attributes."""
    return html.escape(str(value), quote=True)


def clock(t_s: float) -> str:
    """m:ss, or h:mm:ss; tenths of a second below a minute."""
    t = max(0.0, t_s)
    if t < 60:
        return f"0:{t:04.1f}"
    whole = round(t)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def local_time(iso: str | None, fmt: str = "%Y-%m-%d %H:%M:%S %z") -> str:
    """An ISO time from the record in the local time zone (as recorded if it does not parse)."""
    if iso is None:
        return "-"
    try:
        return datetime.fromisoformat(iso).astimezone().strftime(fmt)
    except ValueError:
        return iso


def meta_text(value: object) -> str | None:
    """A value of the session record as text, or None when it is empty (not recorded)."""
    if value is None or value == "" or value == [] or value == {}:
        return None
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {v}" for k, v in value.items())
    return str(value)
