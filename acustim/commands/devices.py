"""``acustim devices``: what can be connected: simulators, serial ports, BLE devices nearby.

Every list comes from the built-in device profiles (``firmware_bridge.discovery``), so a new
device's profile puts it here. Lists only; never opens a device.
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from acustim.commands._common import EXIT_OK, seconds_in


def cmd_devices(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    import asyncio  # here, not with the parser: ``acustim --help`` starts fast

    from firmware_bridge import discovery
    from firmware_bridge.errors import TransportError

    print("device models:", file=out)
    for p in discovery.profiles():
        own = "stops by itself" if p.stops_when_host_silent else "KEEPS RUNNING if the host stops"
        cal = "calibrated" if p.calibrated else "uncalibrated"
        print(f"  {p.id:<10} {p.name} ({p.link}, {cal}, {own})", file=out)
    print("simulators:", file=out)
    for found in discovery.simulators():
        print(f"  {found.spec:<28} {found.label}", file=out)
    ports = discovery.serial_ports()
    print("serial ports:" + ("" if ports else " none found"), file=out)
    for found in ports:
        print(f"  {found.spec:<28} {found.label}", file=out)
    if args.ble:
        try:
            nearby = asyncio.run(discovery.scan_ble(args.scan_s))
        except TransportError as exc:
            print(f"BLE: {exc}", file=err)
        else:
            print("BLE devices:" + ("" if nearby else " none found"), file=out)
            for found in nearby:
                print(f"  {found.spec:<28} {found.label}", file=out)
    print("use a spec with: acustim run PROGRAM --device SPEC", file=out)
    return EXIT_OK


def register(sub: Any) -> None:
    devices = sub.add_parser(
        "devices",
        help="list device models, simulators, serial ports and (with --ble) BLE devices",
        description="List what acustim can connect to. Each line starts with the spec to give "
        "'acustim run --device'.",
    )
    devices.add_argument("--ble", action="store_true", help="also scan for BLE devices")
    devices.add_argument(
        "--scan-s",
        type=seconds_in(0.5, 120.0, "--scan-s"),
        default=5.0,
        metavar="S",
        help="BLE scan time, 0.5..120 s (default 5 s)",
    )
    devices.set_defaults(func=cmd_devices)
