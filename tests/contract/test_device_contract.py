"""One contract, every device, every hosting.

The cases come from the built-in device profiles alone (``harness.cases``): every profile that
names a simulator, on each hosting of its link kind, with the device-specific bits from the
``contract`` hook of its simulator module. This file has no per-device entry: a new device's
profile puts it here. What the contract checks is in ``harness``.
"""

from __future__ import annotations

import asyncio

import pytest

from device_profiles.profile import builtin_profile_ids, load_builtin_profile
from simulators.clock import VirtualClock
from simulators.hosting import bleak_backend
from tests.contract.harness import Case, cases, open_rig, run_contract

CASES = cases()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_device_contract(case: Case) -> None:
    with open_rig(case) as rig:
        run_contract(rig, case)


def test_every_built_in_device_with_a_simulator_is_in_the_contract() -> None:
    with_simulator = {
        i for i in builtin_profile_ids() if load_builtin_profile(i).simulator is not None
    }
    assert with_simulator == {c.profile.id for c in CASES}
    assert {c.hosting for c in CASES} == {"inproc", "ble", "pty"}
    for case in CASES:  # in-process always, and the real transport of its link kind
        assert case.hosting in {"inproc", {"ble": "ble", "serial": "pty"}[case.profile.link]}


async def _served(address: str) -> list[tuple[str, list[tuple[str, list[str]]]]]:
    """The services and characteristics bleak's real client finds at ``address``."""
    from bleak import BleakClient

    client = BleakClient(address, backend=bleak_backend.SimulatedBleakBackend)
    await client.connect()
    try:
        return [
            (s.uuid, [(c.uuid, list(c.properties)) for c in s.characteristics])
            for s in client.services
        ]
    finally:
        await client.disconnect()


def test_the_bleak_backend_serves_the_gatt_table_of_the_profile() -> None:
    address = "C0:FF:EE:77:77:77"
    ble_cases = [c for c in CASES if c.hosting == "ble"]
    assert ble_cases
    for case in ble_cases:
        bleak_backend.register(address, case.simulator(VirtualClock()), case.profile.gatt)
        try:
            served = asyncio.run(_served(address))
        finally:
            bleak_backend.unregister(address)
        assert served == [
            (s.uuid, [(c.uuid, list(c.properties)) for c in s.characteristics])
            for s in case.profile.gatt
        ], case.id
    with pytest.raises(ValueError, match="needs a GATT table"):
        bleak_backend.register("C0:FF:EE:77:77:78", object(), ())  # type: ignore[arg-type]
