"""Small helpers the simulators share (the A/B channel check, UUID spelling, hex dumps).

Never imports the host side.
"""

from __future__ import annotations

AB_CHANNELS = ("A", "B")


def check_ab_channel(channel: str) -> str:
    if channel not in AB_CHANNELS:
        raise ValueError(f"channel must be 'A' or 'B', got {channel!r}")
    return channel


def normalize_uuid(char_uuid: str) -> str:
    return char_uuid.strip().lower()


def hex_bytes(data: bytes | bytearray) -> str:
    return bytes(data).hex(" ") if data else "(empty)"
