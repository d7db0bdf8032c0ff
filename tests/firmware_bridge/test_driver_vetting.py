"""Every device's driver refuses a frame the safety guard did not make, before any byte.

The check lives once, in ``DeviceDriver.send``; this runs it for every built-in device on its
in-process simulator, connected, so a forged frame would otherwise reach the wire.
"""

from __future__ import annotations

import pytest

from acustim import Engine
from device_profiles import builtin_profile_ids
from firmware_bridge.driver import make_driver
from safety import UnvettedFrameError, resolve_limits
from tests.safety.helpers import program


class Lookalike:
    """Has a frame's attributes, but the guard did not make it."""

    zero = False
    channels = ()
    t_s = 0.0


@pytest.mark.parametrize("device_id", builtin_profile_ids())
def test_a_frame_the_guard_did_not_make_never_reaches_the_device(device_id: str) -> None:
    with Engine(virtual_time=True, records=False) as engine:
        device = engine.connect(f"sim:{device_id}")
        driver = make_driver(device.profile, device.transport)
        limits = resolve_limits(device.profile.limits, program(("A",)))
        engine.io.run(driver.connect(limits), timeout_s=10)
        written: list[bytes] = []
        real_write = device.transport.write

        async def spy(data: bytes, **kw: str) -> None:
            written.append(bytes(data))
            await real_write(data, **kw)

        device.transport.write = spy  # type: ignore[method-assign]
        for forged in (Lookalike(), object(), None, b"\xb0" + bytes(19)):
            with pytest.raises(UnvettedFrameError):
                engine.io.run(driver.send(forged), timeout_s=5)  # type: ignore[arg-type]
        assert written == []
        device.transport.write = real_write  # type: ignore[method-assign]
        assert device.simulator.record.max_output("A") == 0.0
        engine.io.run(driver.close(), timeout_s=10)
