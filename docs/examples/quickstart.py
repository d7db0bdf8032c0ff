"""Run a built-in program on the Coyote 3.0 simulator and read what the device delivered.

    python docs/examples/quickstart.py

Virtual time makes the 2-minute session take about a second of wall time.
"""

from acustim import Engine, load_program


def main() -> None:
    program = load_program("tmj-jaw-pain-left")
    with Engine(virtual_time=True, records=False) as engine:
        device = engine.connect("sim:coyote3")
        session = device.start(program, levels={"A": 25}, duration_s=120)
        result = session.wait()
        status = session.status()
        record = device.simulator.record  # what the simulated device delivered
        print(f"{result.outcome}: {result.reason}")
        print(f"frames sent: {status.frames_sent}, skipped: {status.frames_skipped}")
        print(f"peak output on A: {record.max_output('A'):.1f} du (level 25 x intensity)")
        print(f"device strength at the end: A={device.simulator.strength_du('A')} du")


if __name__ == "__main__":
    main()
