"""Errors of the device bridge. Every one of them ends a stream with zero output."""

from __future__ import annotations

from waveforms.errors import AcustimError


class BridgeError(AcustimError):
    """Root of the bridge's errors."""


class TransportError(BridgeError):
    """The link to a device failed (open, write, read)."""


class TransportClosed(TransportError):
    """The link is closed or was lost."""


class ProtocolError(BridgeError):
    """The device sent bytes that do not follow its protocol."""


class DeviceTimeout(BridgeError):
    """The device did not answer in time."""


class UnknownDeviceError(BridgeError):
    """A device URL or name the bridge does not know."""
