"""A new device is one profile, one codec module and one simulator module, and nothing else.

The test-only device ``fakedev`` (``tests/contract/fakedev``: its profile, its codec with its
driver, its simulator with its contract hook) is put among the built-in profiles, as if
``device_profiles/fakedev.toml`` had been added (a copy of the profile folder with it, which
``device_profiles.profile.builtin_folder`` then names). No other file changes, and no file of
the packages names it. Then the links, ``make_driver``, the contract suite, the bench's
device list, discovery and ``acustim devices`` all have it.
"""

from __future__ import annotations

import ast
import asyncio
import io
from pathlib import Path

import pytest

import device_profiles.profile
from acustim.cli import main
from bench import _devices as bench_devices
from device_profiles.profile import DeviceProfile, builtin_profile_ids, load_profile
from firmware_bridge import discovery, make_driver, make_transport
from firmware_bridge.link import (
    BYTE_STREAM_SIMULATORS,
    SimulatorLink,
    hostings,
    link_for_profile,
    link_for_simulator,
    simulator_factory,
)
from firmware_bridge.vtime import VirtualTimeLoop
from tests.contract.fakedev import codec as fake_codec
from tests.contract.fakedev.simulator import FakeDevSimulator
from tests.contract.harness import cases, open_rig, run_contract

ROOT = Path(__file__).resolve().parents[2]
FAKEDEV = Path(__file__).resolve().parent / "fakedev"
PACKAGES = ("acustim", "bench", "device_profiles", "firmware_bridge", "gui", "safety")
PACKAGES += ("simulators", "waveforms")


@pytest.fixture
def fakedev(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DeviceProfile:
    """The built-in profiles and fakedev's, as the built-in profile folder."""
    folder = tmp_path / "device_profiles"
    folder.mkdir()
    shipped = device_profiles.profile.builtin_folder()
    for ident in builtin_profile_ids():
        text = (shipped / f"{ident}.toml").read_text(encoding="utf-8")
        (folder / f"{ident}.toml").write_text(text, encoding="utf-8")
    (folder / "fakedev.toml").write_text((FAKEDEV / "fakedev.toml").read_text(), "utf-8")
    monkeypatch.setattr(device_profiles.profile, "builtin_folder", lambda: folder)
    return load_profile("fakedev")


def test_no_file_of_the_packages_names_the_new_device() -> None:
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*"):
            if path.suffix in {".py", ".toml"}:
                assert "fakedev" not in path.read_text(encoding="utf-8"), path


def test_the_new_profile_is_a_built_in_device(fakedev: DeviceProfile) -> None:
    assert "fakedev" in builtin_profile_ids()
    assert fakedev.source_path == "fakedev.toml"
    assert fakedev.codec_module_path == "tests.contract.fakedev.codec"
    assert fakedev.simulator_module_path == "tests.contract.fakedev.simulator"
    assert [c.uuid for s in fakedev.gatt for c in s.characteristics] == [
        fake_codec.CONTROL_CHAR,
        fake_codec.STATUS_CHAR,
    ]


def test_the_links_and_make_driver_take_it_up(fakedev: DeviceProfile) -> None:
    assert simulator_factory("fakedev") is FakeDevSimulator
    assert hostings(fakedev) == ("inproc", "ble")
    assert "fakedev" not in BYTE_STREAM_SIMULATORS  # a BLE device: a GATT link
    loop = VirtualTimeLoop()
    try:
        for link in (
            make_transport("sim:fakedev"),
            link_for_simulator("fakedev"),
            link_for_simulator(fakedev.simulator or ""),  # as the engine asks for it
            link_for_profile(fakedev),
        ):
            assert isinstance(link, SimulatorLink)
            assert link.url == "sim:fakedev"
            loop.run_until_complete(link.open())
            assert isinstance(link.simulator, FakeDevSimulator)
            driver = make_driver(fakedev, link)
            assert type(driver) is fake_codec.Driver
            loop.run_until_complete(link.close())
    finally:
        loop.close()


@pytest.mark.parametrize("hosting", ["inproc", "ble"])
def test_the_contract_suite_runs_on_it(fakedev: DeviceProfile, hosting: str) -> None:
    found = {c.id: c for c in cases()}
    assert {"fakedev-inproc", "fakedev-ble"} <= set(found)
    case = found[f"fakedev-{hosting}"]
    assert case.simulator is FakeDevSimulator
    assert case.hook.level_du == 5
    with open_rig(case) as rig:
        run_contract(rig, case)


def test_the_device_lists_have_it(fakedev: DeviceProfile) -> None:
    assert "sim:fakedev" in [f.spec for f in discovery.simulators()]
    assert fakedev in discovery.profiles()
    bench_cases = [(c.device, c.hosting, c.level_du) for c in bench_devices.cases()]
    assert ("fakedev", "inproc", 5) in bench_cases
    assert ("fakedev", "ble", 5) in bench_cases
    out, err = io.StringIO(), io.StringIO()
    assert main(["devices"], out=out, err=err) == 0
    text = out.getvalue()
    assert "  fakedev    Fake Device (tests only) (ble, uncalibrated, stops by itself)" in text
    assert "sim:fakedev" in text


def test_a_ble_scan_would_match_its_advertised_name(
    fakedev: DeviceProfile, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bleak

    class Advert:
        name = "FAKEDEV"
        address = "C0:FF:EE:12:34:56"

    async def discover(timeout: float) -> list[Advert]:
        return [Advert()]

    monkeypatch.setattr(bleak.BleakScanner, "discover", staticmethod(discover))
    found = asyncio.run(discovery.scan_ble(0.5))
    assert [f.spec for f in found] == ["fakedev@C0:FF:EE:12:34:56"]


def test_its_simulator_imports_nothing_of_the_host_side() -> None:
    tree = ast.parse((FAKEDEV / "simulator.py").read_text(encoding="utf-8"))
    imported = {
        node.module or ""
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 0
    } | {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    host_side = {"firmware_bridge", "safety", "acustim", "gui", "device_profiles"}
    assert not {name for name in imported if name.split(".")[0] in host_side}
