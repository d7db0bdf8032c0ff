"""The engine: the one way the CLI, the GUI and Python scripts reach devices.

An ``Engine`` owns the IO thread. ``Engine.connect("sim:coyote3")`` opens a device;
``Device.start(program, levels=...)`` runs a session on it and returns a ``Session`` whose
methods are safe to call from any thread (they hand the work to the IO loop). Everything that
touches a transport, the guard or the streamer runs on the IO thread.

Device specs: ``sim:<device>`` (built-in simulator), ``<device>@<port or address>`` (a real
device through the link its profile names), e.g. ``coyote3@AA:BB:CC:DD:EE:FF``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import threading
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from acustim.events import NoticeHandler
from acustim.prestart import PlanItem, UnconfirmedError, prepare
from acustim.records import RecordStore, validate_patient_code
from acustim.runner import SessionConfig, SessionRunner, SessionStatus
from device_profiles.profile import DeviceProfile, load_profile
from firmware_bridge.discovery import Found, scan_ble
from firmware_bridge.driver import Identity, make_driver
from firmware_bridge.errors import BridgeError, DeviceTimeout, UnknownDeviceError
from firmware_bridge.link import ByteStreamLink, SimulatorLink, link_for_simulator
from firmware_bridge.runtime import IoThread
from firmware_bridge.serial_port import SerialTransport
from firmware_bridge.streamer import StreamResult
from firmware_bridge.transport import Transport, make_transport
from safety.guard import VettedFrame
from safety.limits import SessionLimits
from waveforms.builtin import find_program
from waveforms.errors import AcustimError
from waveforms.files import load_program as load_program_file
from waveforms.program import Program

if TYPE_CHECKING:
    from acustim.calibration import CalibrationRecord

T = TypeVar("T")


class DeviceBusyError(AcustimError, RuntimeError):
    """A session was started on a device that is already running (or starting) one."""


def load_program(name_or_path: str | os.PathLike[str]) -> Program:
    """A built-in or user program by name, or a program file by path."""
    text = str(name_or_path)
    if text.endswith(".toml") or os.sep in text:
        return load_program_file(name_or_path)
    return find_program(text)


def resolve_device(spec: str) -> tuple[DeviceProfile, Transport]:
    """Parse a device spec into its profile and an unopened transport."""
    if spec.startswith("sim:"):
        name = spec[4:]
        profile = load_profile(name)
        if profile.simulator is None:
            raise UnknownDeviceError(f"{profile.id} has no simulator")
        return profile, link_for_simulator(profile.simulator, spec)
    if "@" in spec:
        name, where = spec.split("@", 1)
        profile = load_profile(name)
        scheme = {"ble": "ble://", "serial": "serial://"}[profile.link]
        transport = make_transport(where if "://" in where else scheme + where)
        if isinstance(transport, SerialTransport) and profile.serial_baud is not None:
            transport.baudrate = profile.serial_baud
        return profile, transport
    raise UnknownDeviceError(
        f"device {spec!r}: use sim:<device> for a simulator or <device>@<port or address>, "
        "e.g. sim:coyote3 or coyote3@AA:BB:CC:DD:EE:FF"
    )


#: How long closing waits for a session to put zero on the wire and end.
CLOSE_WAIT_S = 5.0


class Engine:
    """Owns the IO thread and the records store. Use as a context manager."""

    def __init__(
        self, *, virtual_time: bool = False, records: RecordStore | bool | Path = True
    ) -> None:
        self.io = IoThread(virtual_time=virtual_time)
        self._own_store = False
        self.store: RecordStore | None
        if isinstance(records, RecordStore):
            self.store = records
        elif records is True or isinstance(records, Path):
            path = records if isinstance(records, Path) else None
            try:
                self.store = RecordStore.open(path)
            except BaseException:
                self.io.close()
                raise
            self._own_store = True
        else:
            self.store = None
        self.devices: list[Device] = []

    def connect(
        self, spec: str | Transport, *, profile: DeviceProfile | str | None = None
    ) -> Device:
        """Open a device's link and run its handshake; return the device once it answered.

        Connected means the device answered as its profile's model does (``Device.identify``:
        the handshake only, nothing that can change output is written), not merely that a
        port opened: a serial port opens whether or not a box is on it. ``device.identity`` is
        what the device said. When the link does not open, or the device does not answer,
        the link is closed again and a one-line ``BridgeError`` says why (the CLI exits 3;
        ``UnknownDeviceError``, e.g. an unsupported model, exits 2). The link stays open
        afterwards; limits and zero are written when a session starts, whose own connect
        handshakes again (and whose end closes the link; the next session reopens it).

        ``spec`` is a device spec (``sim:coyote3``, ``et312@/dev/ttyUSB0``) or an unopened
        transport object, which then needs ``profile`` (an id or a loaded profile)."""
        if isinstance(spec, Transport):
            if profile is None:
                raise UnknownDeviceError("a transport needs a device profile, e.g. 'coyote3'")
            transport = spec
            profile = load_profile(profile) if isinstance(profile, str) else profile
            label = f"{profile.id}@{transport.url}"
        else:
            profile, transport = resolve_device(spec)
            label = spec
        self.io.run(transport.open(), timeout_s=30.0)
        device = Device(self, label, profile, transport)
        device.identify()  # on failure: the link is closed and the error says why, in one line
        device.apply_calibration()  # a valid stored calibration of this very device, if any
        self.devices.append(device)
        return device

    def scan_ble(self, timeout_s: float = 5.0) -> concurrent.futures.Future[list[Found]]:
        """Scan for BLE stimulators on the IO thread (never blocks the caller). The future
        holds what was found, or a ``TransportError`` that says why this machine cannot
        scan."""
        return self.io.submit(scan_ble(timeout_s=timeout_s))

    def close(self) -> None:
        """Stop every session (zero output), close every device, stop the IO thread.

        Every session is asked to stop before any is waited for, and one device that hangs
        does not keep the others from being closed."""
        try:
            sessions = [d.session for d in self.devices if d.session is not None]
            for session in sessions:
                session.stop("the engine was closed")
            for session in sessions:
                with contextlib.suppress(Exception):
                    session.wait(CLOSE_WAIT_S)
            for device in self.devices:
                with contextlib.suppress(Exception):
                    device.close()
        finally:
            self.io.close()
            if self._own_store and self.store is not None:
                self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Device:
    """One device that answered its handshake. Runs one session at a time.

    ``identity`` is what the device said in its latest handshake (``identify``, which
    ``Engine.connect`` runs): model, firmware, battery as the device told them, never a figure
    from another device. It is None until a handshake succeeded, after a failed one, and
    after ``close``. A session's battery figures come from that session's own driver
    (``SessionStatus.battery_percent``)."""

    #: The longest (wall clock) ``identify`` waits for the IO loop; each codec's handshake
    #: times out well before (on the loop's clock, so virtual time too), this is a backstop.
    IDENTIFY_WAIT_S = 60.0

    def __init__(
        self, engine: Engine, spec: str, profile: DeviceProfile, transport: Transport
    ) -> None:
        self.engine = engine
        self.spec = spec
        self.profile = profile
        self.transport = transport
        self.session: Session | None = None
        self.identity: Identity | None = None
        #: the profile as loaded, before a stored calibration of this device was applied
        #: (``apply_calibration``; None while none is applied)
        self.base_profile: DeviceProfile | None = None
        #: the stored calibration in force on this device (``acustim.calibration``), and
        #: why none is when a file exists but cannot be applied (expired, unreadable)
        self.calibration: CalibrationRecord | None = None
        self.calibration_note: str | None = None
        self._start_lock = threading.Lock()
        self._starting = False

    def identify(self) -> Identity:
        """Run the device's handshake (``DeviceDriver.identify``) on the IO loop and return
        what the device said; also kept as ``identity``.

        Writes nothing that can change output (each codec's ``_identify`` says what it
        sends). Reopens the link if a session's end closed it, and leaves it open when the
        device answered. When it does not, the link is closed, ``identity`` is None and a
        one-line ``BridgeError`` (``DeviceTimeout`` when nothing answered) is raised. Refused
        while a session runs or starts (``DeviceBusyError``): a session's connect
        handshakes by itself."""
        with self._start_lock:
            if self._starting or (self.session is not None and not self.session.done):
                raise DeviceBusyError(
                    f"{self.spec} is running a session; it cannot be identified until it ends"
                )
            self._starting = True
        try:
            self.identity = None
            try:
                self.identity = self._handshake()
            except BaseException:
                if self.engine.io.alive:  # the driver closed it; make sure of it
                    with contextlib.suppress(Exception):
                        self.engine.io.run(self.transport.close(), timeout_s=CLOSE_WAIT_S)
                raise
            return self.identity
        finally:
            with self._start_lock:
                self._starting = False

    def _handshake(self) -> Identity:
        driver = make_driver(self.profile, self.transport)
        future = self.engine.io.submit(driver.identify())
        try:
            return future.result(self.IDENTIFY_WAIT_S)
        except concurrent.futures.TimeoutError:
            future.cancel()  # the driver closes the link when it is cancelled
            raise DeviceTimeout(
                f"{self.spec}: the handshake took longer than {self.IDENTIFY_WAIT_S:g} s; "
                "the link was closed"
            ) from None
        except AcustimError:
            raise
        except Exception as exc:  # a transport's or a codec's own error: one line all the same
            text = " ".join(str(exc).split())
            raise BridgeError(
                f"{self.spec}: the handshake failed: {type(exc).__name__}: {text}"
            ) from None

    def apply_calibration(self) -> CalibrationRecord | None:
        """Look up this device's stored calibration (``acustim.calibration.lookup``: by its
        serial number, port, BLE address or simulator unit) and, when it is valid, run every
        later session with the profile's limits carrying it (the guard then caps rms current
        and current density). An expired or unreadable file is not applied and
        ``calibration_note`` says why, in one line. Returns the record applied, if any."""
        from acustim.calibration import applied_profile, lookup

        base = self.base_profile or self.profile
        self.profile, self.base_profile = base, None
        self.calibration = None
        found = lookup(self)
        self.calibration_note = found.note
        if found.record is not None:
            self.base_profile = base
            self.profile = applied_profile(base, found.record)
            self.calibration = found.record
        return self.calibration

    @property
    def simulator(self) -> Any:
        """The simulator object behind a ``sim:`` device (for engineers and tests), else None."""
        if isinstance(self.transport, SimulatorLink | ByteStreamLink):
            return self.transport.simulator
        return None

    @property
    def level_scaled_by(self) -> str:
        """What the device itself does to a level after it arrives, in words ("" when it
        delivers it as sent): the ET-312's front knobs scale every level again, so a display
        of delivered device units must say so."""
        from device_profiles.profile import codec_module

        return str(codec_module(self.profile).Driver.LEVEL_SCALED_BY)

    @property
    def link_open(self) -> bool:
        """The link to the device is open now (a session closes it when it ends)."""
        return bool(self.transport.is_open)

    def on_simulator(self, fn: Callable[[Any], T], timeout_s: float = 2.0) -> T:
        """A ``sim:`` device only: run ``fn(simulator)`` on the IO loop, where the simulator
        lives (it is not thread-safe), and return its result; for the app's fault panel and
        tests. Raises UnknownDeviceError for a real device."""
        sim = self.simulator
        if sim is None:
            raise UnknownDeviceError(f"{self.spec} is not a simulator")
        return self.engine.io.call(lambda: fn(sim), timeout_s=timeout_s)

    def drop_link(self, reason: str = "link lost (simulated)") -> None:
        """A ``sim:`` device only: its in-process link drops, as a real link does (for tests,
        demonstrations and the app's screenshots)."""
        transport = self.transport
        if not isinstance(transport, SimulatorLink | ByteStreamLink):
            raise UnknownDeviceError(f"{self.spec} is not a simulator: its link cannot be dropped")
        self.engine.io.call(lambda: transport.drop(reason))

    def start(
        self,
        program: Program | str,
        *,
        levels: dict[str, int] | None = None,
        ceilings: dict[str, int] | None = None,
        duration_s: float | None = None,
        rise_fraction_per_s: float | None = None,
        electrode_area_cm2: float | None = None,
        reconnect_s: float = 0.0,
        patient: str | None = None,
        notes: str = "",
        screening: Mapping[str, bool] | None = None,
        acknowledged: Collection[str] = (),
        onset_days: int | None = None,
        on_notice: NoticeHandler | None = None,
        on_frame: Callable[[int, VettedFrame], None] | None = None,
        confirmed: Collection[PlanItem] | None = None,
        load_test: bool = False,
    ) -> Session:
        """Start a session. Bad levels, ceilings or programs, an unsafe electrode placement, a
        Bell's palsy onset too recent, or a screening that does not clear raise here, before
        anything is sent (see ``acustim.admission``). Output starts at zero and rises at the
        ramp rate to ``levels``.

        ``screening`` maps the questions of ``safety.screening.SCREENING_QUESTIONS`` to yes
        (True) or no; ``acknowledged`` names the precautions the practitioner acknowledged.
        Without answers, the patient's latest clear screening in the store is used.

        ``confirmed``: the items of the pre-start plan (``acustim.prestart.prepare`` with the
        same inputs) that were shown and confirmed; the CLI and the app pass
        ``plan.items``. The plan is made again here, and a session with an item not among
        them is refused (``UnconfirmedError``). ``None`` (a script): not checked.

        ``load_test``: a calibration into a load resistor (``acustim.calibration.calibrate``
        makes these): no screening, and refused with a patient code, screening answers or any
        program but the built-in load program (``acustim.prestart.check_load_test``)."""
        with self._start_lock:  # one session at a time, however many threads ask
            if self._starting or (self.session is not None and not self.session.done):
                raise DeviceBusyError(
                    f"{self.spec} is already running a session; stop it or wait for it to end"
                )
            self._starting = True
        try:
            self.session = self._start(
                program,
                levels=levels,
                ceilings=ceilings,
                duration_s=duration_s,
                rise_fraction_per_s=rise_fraction_per_s,
                electrode_area_cm2=electrode_area_cm2,
                reconnect_s=reconnect_s,
                patient=patient,
                notes=notes,
                screening=screening,
                acknowledged=acknowledged,
                onset_days=onset_days,
                on_notice=on_notice,
                on_frame=on_frame,
                confirmed=confirmed,
                load_test=load_test,
            )
            return self.session
        finally:
            with self._start_lock:
                self._starting = False

    def _start(
        self,
        program: Program | str,
        *,
        levels: dict[str, int] | None,
        ceilings: dict[str, int] | None,
        duration_s: float | None,
        rise_fraction_per_s: float | None,
        electrode_area_cm2: float | None,
        reconnect_s: float,
        patient: str | None,
        notes: str,
        screening: Mapping[str, bool] | None,
        acknowledged: Collection[str],
        onset_days: int | None,
        on_notice: NoticeHandler | None,
        on_frame: Callable[[int, VettedFrame], None] | None,
        confirmed: Collection[PlanItem] | None,
        load_test: bool = False,
    ) -> Session:
        prog = Program.checked(load_program(program) if isinstance(program, str) else program)
        patient_code = validate_patient_code(patient) if patient is not None else None
        if load_test and confirmed is None:
            raise UnconfirmedError(
                "a load test needs its pre-start plan confirmed, 'no person is connected' "
                "among it (confirmed=plan.items; acustim.calibration.calibrate does this)"
            )
        # the pre-start plan (the same the CLI and the app showed): every refusal raises here
        admission = prepare(
            self,
            prog,
            levels=levels,
            ceilings=ceilings,
            duration_s=duration_s,
            rise_fraction_per_s=rise_fraction_per_s,
            electrode_area_cm2=electrode_area_cm2,
            patient=patient_code,
            onset_days=onset_days,
            screening=screening,
            acknowledged=acknowledged,
            load_test=load_test,
        ).admission(confirmed)
        prog = admission.program
        config = SessionConfig(
            program=prog,
            levels_du=dict(levels or {}),
            ceilings_du=ceilings,
            session_s=duration_s,
            rise_fraction_per_s=rise_fraction_per_s,
            electrode_area_cm2=electrode_area_cm2,
            reconnect_s=reconnect_s,
            patient=patient_code,
            notes=notes,
            screening=admission.record(),
            warnings=admission.warnings,
            calibration=None if self.calibration is None else self.calibration.meta(),
            load_test=load_test,
        )
        runner = SessionRunner(
            config,
            self.profile,
            make_driver(self.profile, self.transport),
            store=self.engine.store,
            device_label=self.spec,
            on_notice=on_notice,
            on_frame=on_frame,
        )
        return Session(self.engine, runner)

    def close(self) -> None:
        """Stop this device's session (zero output) and close its link (``identity`` is then
        None: nothing is known about what is on the link any more)."""
        self.identity = None
        if self.session is not None and not self.session.done:
            self.session.stop("device closed")
            with contextlib.suppress(concurrent.futures.TimeoutError):
                self.session.wait(CLOSE_WAIT_S)
        if self.engine.io.alive:
            self.engine.io.run(self.transport.close(), timeout_s=CLOSE_WAIT_S)


class Session:
    """A running session; every method may be called from any thread."""

    def __init__(self, engine: Engine, runner: SessionRunner) -> None:
        self._io = engine.io
        self.runner = runner
        self._future: concurrent.futures.Future[StreamResult] = self._io.submit(runner.run())

    @property
    def done(self) -> bool:
        return self._future.done()

    @property
    def session_id(self) -> int | None:
        return self.runner.session_id

    @property
    def limits(self) -> SessionLimits:
        """The limits this session runs under (resolved before anything was sent; fixed)."""
        return self.runner.limits

    def status(self) -> SessionStatus:
        return self.runner.status

    def set_level(self, channel: str, level_du: int) -> None:
        """Raise (at the ramp rate) or lower (at once) a channel's level."""
        self._io.call(lambda: self.runner.set_level(channel, level_du))

    def pause(self) -> None:
        """Zero output now and hold the program; raising a level resumes. Never blocks the
        caller (a GUI thread)."""
        if not self.done and self._io.alive:
            self._io.call_soon(self.runner.pause)

    def resume(self) -> dict[str, int]:
        """After a pause: every channel back to its level before the pause, ramping from zero
        (recorded). Returns the targets set (empty when the session was not paused)."""
        if self.done or not self._io.alive:
            return {}
        return self._io.call(self.runner.resume)

    def stop(self, reason: str = "stopped by the practitioner") -> None:
        """Emergency stop: the zero frame goes on the wire at once and the session ends.
        Never blocks the caller (a GUI thread); ``wait()`` to see the session end."""
        if not self.done and self._io.alive:
            self._io.call_soon(lambda: self.runner.stop(reason))

    def wait(self, timeout_s: float | None = None) -> StreamResult:
        """Block until the session ends; returns how it ended."""
        return self._future.result(timeout_s)
