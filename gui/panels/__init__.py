"""The window's panels: device, program, channels, session header and event log.

Each panel shows what it is given and emits signals for what the practitioner asks; the
window wires them to the engine. No panel talks to the engine itself.
"""
