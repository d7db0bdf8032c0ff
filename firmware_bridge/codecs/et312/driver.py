"""The ET-312 driver: the host-control model (``codec.py``) spoken over a byte stream.

Identify (sync and reads only), connect (key sync and exchange, identification, the limits,
read back), frames, the knob and battery polls, and close (zero, key reset), in the order
``docs/devices/et312.md`` gives. Each packet is one request of
``firmware_bridge.exchange.Exchange``: written alone, then its one reply awaited
(``ACK_TIMEOUT_S``; a sync byte ``SYNC_TRY_S``), so two packets never interleave and a
missing reply or a NACK is a fault. Replies that come while no packet waits
for one are dropped, never kept for the next packet.

This module never decides a level (the codec encodes what the guard vetted), writes nothing but
zero before ``connect`` returns, and never leaves the port open after ``close``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from device_profiles.profile import DeviceProfile
from firmware_bridge.codecs.et312.codec import (
    MODE_WAVES,
    MODEL_ET312,
    Check,
    Et312Codec,
    verify_read_back,
)
from firmware_bridge.codecs.et312.protocol import (
    BATTERY,
    CHANNELS,
    FIRMWARE,
    INTENSITY,
    KNOB,
    MODEL,
    SYSTEM_FLAGS,
    Ack,
    KeyReply,
    Nack,
    ReadReply,
    Reply,
    describe_packet,
    encrypt,
    key_exchange_packet,
    read_packet,
    register,
    session_key,
    sync_packet,
)
from firmware_bridge.driver import DeviceDriver, Identity
from firmware_bridge.errors import BridgeError, DeviceTimeout, ProtocolError, TransportClosed
from firmware_bridge.events import BatteryReport, DeviceNotice
from firmware_bridge.exchange import Exchange, ReplyTimeout
from firmware_bridge.transport import Transport
from safety.guard import VettedFrame, require_vetted
from safety.limits import SessionLimits

# --- timing -----------------------------------------------------------------------------------
#: Every write and read waits this long for its reply; then the box counts as not answering.
ACK_TIMEOUT_S = 0.2
#: Sync: a lone ``00`` every 100 ms, at most 12 times (the longest packet is 11-12 bytes).
SYNC_TRIES = 12
SYNC_TRY_S = 0.1
#: Session keys whose stale sync bytes would act on the box: the firmware takes a byte's high
#: nibble + 1 as its packet's length (et312-firmware.md section 9), so a lone 01..0F acts (0E
#: the link-slave handshake, 09..0D / 0F reload $41F0.. from flash: the power level back to
#: Normal) and a pair ``1x 1x`` has a valid checksum. A later sync sent in plain to a box that
#: kept such a key, or under it to a power-cycled box, would act; so acustim asks for a new key
#: (at most ``REKEY_TRIES`` times) until its key is outside this range.
RISKY_KEYS = range(0x01, 0x20)
REKEY_TRIES = 8
#: The main loop runs a box command 0..8.2 ms after it is written (PROTO: wait 18 ms); then
#: $4070 / $4071 read 0xFF. Connect waits this long after ``04 12``, then reads both until they
#: are 0xFF (every ``BOX_COMMAND_RETRY_S``, at most ``BOX_COMMAND_TRIES`` times), so the new
#: mode's reload of its defaults (intensity 0xFF) is over before it writes the limits.
BOX_COMMAND_WAIT_S = 0.025
BOX_COMMAND_RETRY_S = 0.02
BOX_COMMAND_TRIES = 10
KNOB_POLL_S = 1.0
BATTERY_POLL_S = 10.0
#: ``close`` never takes longer than this (zero, key reset, then the port closes regardless).
CLOSE_TIMEOUT_S = 1.5


# --- the driver -------------------------------------------------------------------------------
class Driver(DeviceDriver):
    """ET-312B / MK-312BT over any byte-stream transport (serial port, SPP, in-process link).

    Every packet waits for its reply before the next goes out (one ``Exchange`` request each),
    under the write lock (connect, frames, polls and close alike), so packets never interleave.
    The knob and battery polls ride after an output frame's writes when they are due, so they
    never delay a frame's own writes, and never follow a zero frame.
    """

    #: the box drives each channel at its front knob x intensity / 256 (et312-firmware.md)
    LEVEL_SCALED_BY = "the front knob of the channel (the box delivers level x knob / 256)"

    #: seconds each sync try waits (a Bluetooth SPP link may need more than a cable)
    sync_try_s = SYNC_TRY_S
    ack_timeout_s = ACK_TIMEOUT_S

    def __init__(self, profile: DeviceProfile, transport: Transport) -> None:
        super().__init__(profile, transport)
        self.codec = Et312Codec()
        self.model: int | None = None
        self.firmware: tuple[int, int, int] | None = None
        self.knobs: dict[str, int] | None = None
        #: one packet at a time, each with its one reply (a bad one as a ``ProtocolError``)
        self._requests: Exchange[str, Reply | ProtocolError] = Exchange(
            lambda data: self.transport.write(data)
        )
        #: the session key of the last session, tried first on a reconnect
        self._last_key: int | None = None
        self._keyed = False  # an ET-312 holds our key: close() zeroes it and resets the key
        self._ready = False  # connect() finished: frames may be written
        self._next_knob_s = 0.0
        self._next_battery_s = 0.0

    # --- identify -----------------------------------------------------------------------------
    async def _identify(self) -> Identity:
        """Sync, then the model, firmware and battery, by reads alone.

        What goes on the wire: lone sync bytes ``00`` (a one-byte packet 0..5: the box answers
        ``07`` and does nothing else, et312-firmware.md section 9) and read packets ``3C hi lo
        cs`` of $00FC..$00FF and $4203 (a read changes nothing). The firmware answers reads
        without a key, so there is no key exchange: the box is left exactly as it was found,
        without our key, and the session's ``connect`` finds it in plain (only a driver that
        ran a session before also tries its last session key, as ``connect`` does). No write
        packet, so no register that shapes output, and no key register either.
        """
        self.codec = Et312Codec()
        self._ready = self._keyed = False
        self.transport.set_disconnect_handler(self._link_lost)
        self.transport.set_receiver(self._received)
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with self._write_lock:
            self.codec.key = 0
            self.codec.parser.reset()
            key = await self._find_key()
            if key is None:
                raise DeviceTimeout(
                    f"et312: no answer from an ET-312 on {self._where} "
                    f"within {loop.time() - started:.1f} s: check the cable, 19200 baud and "
                    "that the box is switched on (if another program drove it, switch it off "
                    "and on)"
                )
            self.codec.key = key  # 0, or this driver's last session key after a lost link
            await self._check_model()
            battery = min(100, await self._read(BATTERY))
        assert self.model is not None and self.firmware is not None  # _check_model set them
        return Identity(
            device=self.profile.id,
            model=f"ET-312 (model 0x{self.model:02X})",
            firmware=".".join(str(v) for v in self.firmware),
            battery_percent=battery,
        )

    # --- connect ------------------------------------------------------------------------------
    async def connect(self, limits: SessionLimits) -> None:
        self._ready = self._keyed = False
        self.codec = Et312Codec({c.name: c.ceiling_du for c in limits.channels})
        mode = self.profile.device_settings.get("mode", MODE_WAVES)
        if not 0 <= mode <= 0xFF:
            raise BridgeError(f"{self.profile.source_path}: [device_settings] mode must be 0..255")
        if not self.transport.is_open:
            await self.transport.open()
        self.transport.set_disconnect_handler(self._link_lost)
        self.transport.set_receiver(self._received)
        async with self._write_lock:
            await self._handshake()
            await self._check_model()
            self._keyed = True
            await self._read_battery()
            await self._write_limits(mode)
        now = asyncio.get_running_loop().time()
        self._next_knob_s = now
        self._next_battery_s = now + BATTERY_POLL_S
        self._ready = True

    async def _write_limits(self, mode: int) -> None:
        """Limits before output, in the order of docs/devices/et312.md; none of it raises output.

        1. pots disabled and 0 (checked): drive 0 whatever the intensity register holds;
        2. mode + ``04 12``, then wait until both have run: the defaults reload (intensity
           0xFF) while the pots are 0;
        3. static selects, intensity 0, the slowest pulse; 4. all of it read back;
        5. the pots follow the knobs again: drive = knob x 0 / 256 = 0.
        """
        codec = self.codec
        await self._write_all(codec.adc_off_writes(await self._read(SYSTEM_FLAGS)))
        await self._verify(codec.pots_zero_checks(), "after disabling the front pots")
        await self._write_all(codec.mode_writes(mode))
        await self._wait_for_box_commands()
        await self._write_all(codec.limit_writes())
        await self._verify(codec.limit_checks(), "after writing the limits")
        await self._write_all(codec.adc_on_writes(await self._read(SYSTEM_FLAGS)))
        await self._verify(codec.adc_on_checks(), "after enabling the front pots")

    async def _verify(self, checks: list[Check], stage: str) -> None:
        values = {c.address: await self._read(c.address) for c in checks}
        verify_read_back(checks, values, stage)

    async def _wait_for_box_commands(self) -> None:
        """Until the main loop has run ``04 12`` (both command registers read 0xFF again)."""
        checks = self.codec.mode_done_checks()
        await asyncio.sleep(BOX_COMMAND_WAIT_S)
        for _ in range(BOX_COMMAND_TRIES - 1):
            values = {c.address: await self._read(c.address) for c in checks}
            if all(c.holds(values[c.address]) for c in checks):
                return
            await asyncio.sleep(BOX_COMMAND_RETRY_S)
        await self._verify(checks, "waiting for the new mode to run")

    async def _handshake(self) -> None:
        """Sync (in plain, or under acustim's last key), then the key exchange."""
        self.codec.key = 0
        self.codec.parser.reset()
        key = await self._find_key()
        if key is None:
            raise DeviceTimeout(
                f"et312: no answer to the sync byte on {self.transport.url or 'the port'}, in "
                "plain or under acustim's last key; check the cable, 19200 baud and that the "
                "box is switched on. If another program drove the box, it may have left its "
                "key: switch the box off and on, then connect again"
            )
        self.codec.key = key
        if key != 0:
            await self._write(self.codec.key_reset())
            self.codec.key = 0
        for _ in range(REKEY_TRIES):
            reply = await self._request(self.codec.wire(key_exchange_packet(0)), "the key exchange")
            if not isinstance(reply, KeyReply):
                raise ProtocolError(f"et312: expected a key reply (21 bk cs), got {_name(reply)}")
            self.codec.key = session_key(reply.box_key, 0)
            self._last_key = self.codec.key
            if self.codec.key not in RISKY_KEYS:
                break

    async def _find_key(self) -> int | None:
        """The key the box holds: 0 after a clean close or a power cycle, or acustim's last
        session key after a lost link; None if neither answers.

        A lone sync byte ``00`` (encrypted under the key tried) until ``07`` (12 tries), as the
        reference says. A ``07`` may be the NACK of a half-received packet, so it counts only if
        one more lone sync byte is answered at once (from an idle box, only a real sync is). The
        firmware answers ``07`` to a lone byte 00..05 (et312-firmware.md section 9), so a key
        off by 1..5 answers the sync too: a key counts only once a read of the model under it
        gets a read reply.

        No other key is tried: under the firmware's framing, bytes sent under a wrong key act
        on the box (``RISKY_KEYS``), and a sweep through all 255 would send every one of them
        to a box that may be running. A key left by another program needs a power cycle.
        """
        tried = [0] if not self._last_key else [0, self._last_key]
        for key in tried:
            if await self._sync(key) and await self._confirm_key(key):
                return key
        return None

    async def _sync(self, key: int) -> bool:
        """Lone sync bytes under ``key`` until the box answers one at once, twice in a row."""
        byte = encrypt(sync_packet(), key)
        replied, quiet = False, 0
        for _ in range(SYNC_TRIES):
            first = await self._exchange(byte, self.sync_try_s, "a sync byte")
            if first and isinstance(first[0], Nack):
                again = await self._exchange(byte, self.sync_try_s, "a sync byte")
                if again and isinstance(again[0], Nack):
                    return True
                first = again
            replied = replied or bool(first)
            quiet = 0 if first else quiet + 1
        if replied and quiet:  # the box is inside a packet: complete it so it is idle again
            await self._settle(byte[0])
        return False

    async def _confirm_key(self, key: int) -> bool:
        """Under ``key``, a read of the model gets a read reply; leaves the box idle."""
        packet = encrypt(read_packet(MODEL), key)
        replies = await self._exchange(packet, self.sync_try_s, "a read of the model")
        if replies and isinstance(replies[0], ReadReply):
            return True
        if not replies:  # the garbled read started a longer packet: complete it
            await self._settle(encrypt(sync_packet(), key)[0])
        return False

    async def _settle(self, byte: int) -> None:
        """Send ``byte`` alone until the box answers (it finished a packet: idle again)."""
        for _ in range(SYNC_TRIES):
            if await self._exchange(bytes([byte]), self.sync_try_s, "a lone byte"):
                return

    async def _check_model(self) -> None:
        model = await self._read(MODEL)
        if model != MODEL_ET312:
            self.model = model
            raise BridgeError(
                f"et312: the box on {self.transport.url or 'the port'} reports model "
                f"0x{model:02X}; acustim drives only the ET-312B / MK-312BT (model 0x0C). "
                "Choose the right device, or check that this is an ET-312"
            )
        major, minor, internal = [await self._read(FIRMWARE + i) for i in range(3)]
        self.model, self.firmware = model, (major, minor, internal)
        version = f"{major}.{minor}.{internal}"
        self._emit(
            DeviceNotice(
                "firmware",
                f"ET-312 (model 0x{model:02X}), firmware {version}",
                {"model": model, "firmware": version},
            )
        )

    async def _read_battery(self) -> None:
        percent = min(100, await self._read(BATTERY))
        self.battery_percent = percent
        self._emit(BatteryReport(percent))

    # --- frames -------------------------------------------------------------------------------
    async def _write_frame(self, frame: VettedFrame) -> None:
        if not self._ready:
            raise TransportClosed("et312: not connected; connect() must finish before frames")
        await self._write_all(self.codec.frame_writes(frame))
        if not frame.zero:  # a stop must not wait behind reads: checks follow output frames
            await self._check_box_kept_our_settings()
            await self._poll()

    async def _check_box_kept_our_settings(self) -> None:
        """Read the intensity registers back after every output frame.

        A front-panel key, or anything else that starts a mode on the box, reloads the mode's
        defaults (intensity 0xFF and moving selects: facts section 4), and the codec writes
        only what changed, so it would never write the intensity again. A register that does
        not read what was written means the box is running its own program: drive it to zero
        whatever that program does (front pots off and 0, as at connect), and end the session
        as a fault. Nothing resumes by itself: the practitioner starts a new session.
        """
        for c in CHANNELS:
            address = register(INTENSITY, c)
            wrote = self.codec.registers.get(address)
            got = await self._read(address)
            if wrote is not None and got != wrote:
                await self._write_all(self.codec.adc_off_writes(await self._read(SYSTEM_FLAGS)))
                await self._write_all(self.codec.zero_writes())
                raise ProtocolError(
                    f"et312: the box changed its own settings (intensity {c} reads {got}, "
                    f"{wrote} was written): a front-panel key or mode change restarts the "
                    "box's own program; output stopped (front level knobs are off until the "
                    "box is switched off and on). Press no keys on the box during a session"
                )

    async def _poll(self) -> None:
        """After a frame's writes: the front knobs every second, the battery every ten."""
        now = asyncio.get_running_loop().time()
        if now >= self._next_knob_s:
            self._next_knob_s = now + KNOB_POLL_S
            knobs = {c: await self._read(KNOB[c]) for c in CHANNELS}
            if knobs != self.knobs:
                self.knobs = knobs
                self._emit(
                    DeviceNotice(
                        "knob",
                        f"front-panel level knobs: A {knobs['A']}/255, B {knobs['B']}/255",
                        dict(knobs),
                    )
                )
        if now >= self._next_battery_s:
            self._next_battery_s = now + BATTERY_POLL_S
            await self._read_battery()

    # --- close --------------------------------------------------------------------------------
    async def close(self, zero: VettedFrame | None = None) -> None:
        """Zero (when given), then the key reset, then close the port: bounded, best effort."""
        try:
            if zero is not None:  # close writes its zero itself, not through send: check it
                zero = require_vetted(zero)
            if self._keyed and self.transport.is_open:
                try:
                    await asyncio.wait_for(self._goodbye(zero), CLOSE_TIMEOUT_S)
                except TimeoutError:
                    raise DeviceTimeout(
                        f"et312: closing took longer than {CLOSE_TIMEOUT_S:g} s; the box may "
                        "still hold its last output and our key (switch it off and on)"
                    ) from None
        finally:
            self._ready = self._keyed = False
            self.transport.set_disconnect_handler(None)
            self.transport.set_receiver(None)
            await self.transport.close()

    async def _goodbye(self, zero: VettedFrame | None) -> None:
        async with self._write_lock:
            error: BridgeError | None = None
            # each write on its own: a lost write to A must not stop B's from going out
            for packet in self.codec.zero_writes() if zero is not None else []:
                try:
                    await self._write(packet)
                except TransportClosed:
                    raise
                except BridgeError as exc:
                    error = error or exc
            try:
                await self._write(self.codec.key_reset())
                self.codec.key = 0
                self._last_key = 0
            except BridgeError as exc:
                error = error or exc
            if error is not None:
                raise error

    # --- requests -----------------------------------------------------------------------------
    async def _write_all(self, packets: Iterable[bytes]) -> None:
        for packet in packets:
            await self._write(packet)

    async def _write(self, packet: bytes) -> None:
        what = describe_packet(self.codec.plain(packet))
        reply = await self._request(packet, what)
        if isinstance(reply, Ack):
            return
        self.codec.forget()
        if isinstance(reply, Nack):
            raise ProtocolError(f"et312: the box refused {what} (NACK 07)")
        raise ProtocolError(f"et312: expected ACK 06 to {what}, got {_name(reply)}")

    async def _read(self, address: int) -> int:
        what = f"a read of ${address:04X}"
        reply = await self._request(self.codec.read(address), what)
        if isinstance(reply, ReadReply):
            return reply.value
        if isinstance(reply, Nack):
            raise ProtocolError(f"et312: the box refused {what} (NACK 07)")
        raise ProtocolError(f"et312: expected a read reply (22 v cs) to {what}, got {_name(reply)}")

    async def _request(self, packet: bytes, what: str) -> Reply:
        replies = await self._exchange(packet, self.ack_timeout_s, what)
        if not replies:
            self.codec.forget()
            raise DeviceTimeout(
                f"et312: no reply within {self.ack_timeout_s * 1000:.0f} ms to {what}; "
                "the box stopped answering (cable, power, or another program on the port)"
            )
        reply = replies[0]
        if isinstance(reply, ProtocolError):
            self.codec.forget()
            raise reply
        return reply

    async def _exchange(
        self, data: bytes, timeout_s: float, what: str
    ) -> list[Reply | ProtocolError]:
        """Write ``data`` (``what``), then wait at most ``timeout_s`` for its one reply: ``[]``
        if none came.

        Replies that came before it was written are never taken for it. Bad replies come back as
        ``ProtocolError`` values (the caller decides); a lost link raises.
        """
        try:
            return await self._requests.request(data, (what,), timeout_s)
        except ReplyTimeout:
            return []

    def _received(self, endpoint: str, data: bytes) -> None:
        self.codec.parser.feed(data)
        while True:
            try:
                reply = self.codec.parser.pop()
            except ProtocolError as exc:
                self.protocol_errors += 1
                self._requests.deliver(exc)
                continue
            if reply is None:
                return
            self._requests.deliver(reply)

    def _link_lost(self, reason: str) -> None:
        self._ready = False
        self._requests.fail(TransportClosed(f"et312: link lost ({reason})"))
        super()._link_lost(reason)


def _name(reply: Reply) -> str:
    if isinstance(reply, Ack):
        return "ACK 06"
    if isinstance(reply, Nack):
        return "NACK 07"
    if isinstance(reply, ReadReply):
        return f"a read reply (value {reply.value:02x})"
    return f"a key reply (box key {reply.box_key:02x})"
