"""Hosting simulators where host code can reach them: a raw pty (serial devices, real
pyserial) and a bleak backend (BLE devices, bleak's real ``BleakClient``). The in-process
links live in ``firmware_bridge.link``. Never imports the host side."""
