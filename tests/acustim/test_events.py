"""Session events: every kind a session reports is an ``EventKind``; displays get the channel
as data and never parse the message."""

from __future__ import annotations

import re
from pathlib import Path

from acustim import Engine
from acustim.events import EventKind, SessionEvent, event_kind
from safety.guard import NoticeKind
from tests.programs import TWO_CHANNELS

ROOT = Path(__file__).resolve().parents[2]


def test_every_guard_notice_kind_is_an_event_kind() -> None:
    assert {k.value for k in NoticeKind} <= {k.value for k in EventKind}


def test_every_device_notice_kind_a_codec_sends_is_an_event_kind() -> None:
    sent = set()
    for path in (ROOT / "firmware_bridge").rglob("*.py"):
        sent |= set(re.findall(r'DeviceNotice\(\s*"([a-z_]+)"', path.read_text(encoding="utf-8")))
    assert sent, "no DeviceNotice found: the pattern is out of date"
    assert {event_kind(k) for k in sent} <= set(EventKind) - {EventKind.DEVICE_NOTICE}


def test_an_unknown_device_notice_is_kept_as_a_device_notice() -> None:
    assert event_kind("something_new") is EventKind.DEVICE_NOTICE


def test_level_events_carry_their_channel() -> None:
    events: list[SessionEvent] = []
    with Engine(virtual_time=True, records=False) as engine:
        device = engine.connect("sim:coyote3")
        session = device.start(
            TWO_CHANNELS, levels={"A": 5, "B": 3}, duration_s=2, on_notice=events.append
        )
        assert session.wait(30).outcome == "completed"
    levels = [e for e in events if e.kind is EventKind.LEVEL]
    assert {(e.channel, e.data[e.channel]) for e in levels if e.channel} == {("A", 5), ("B", 3)}
    assert all(isinstance(e.kind, EventKind) for e in events)
    assert events[0].kind is EventKind.START
