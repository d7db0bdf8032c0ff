"""The wheel holds every package and data file of the source tree.

A hand-written package list once left ``acustim.commands`` out of the wheel, so the README's
first command (a non-editable install) failed while every test passed on an editable one. This
builds the wheel from the project's own files and checks what it holds.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Shipped data: the program library, the acupoint catalogue and the device profiles.
DATA_GLOBS = ("waveforms/library/*.toml", "waveforms/*.toml", "device_profiles/*.toml")


def project_files() -> list[str]:
    """The files a clone holds (tracked, plus new files git does not ignore)."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [line for line in out.splitlines() if (ROOT / line).is_file()]


def test_the_wheel_holds_every_package_and_data_file(tmp_path: Path) -> None:
    files = project_files()
    src = tmp_path / "src"
    for name in files:
        target = src / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--wheel-dir",
            str(wheels),
            str(src),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = wheels.glob("acustim-*.whl")
    held = set(zipfile.ZipFile(wheel).namelist())

    packages = sorted(
        str(Path(name).parent)
        for name in files
        if name.endswith("__init__.py") and not name.startswith(("tests/", "docs/"))
    )
    assert "acustim/commands" in packages  # the one that went missing
    missing = [p for p in packages if f"{p}/__init__.py" not in held]
    assert not missing, f"packages left out of the wheel: {missing}"
    modules = [
        n for n in files if n.endswith(".py") and str(Path(n).parent) in packages and n not in held
    ]
    assert not modules, f"modules left out of the wheel: {modules}"
    data = sorted({str(p.relative_to(src)) for g in DATA_GLOBS for p in src.glob(g)})
    assert len(data) > 10
    assert not [d for d in data if d not in held], "data files left out of the wheel"
    typed = [f"{p}/py.typed" for p in packages if f"{p}/py.typed" in files]
    assert not [t for t in typed if t not in held], "py.typed markers left out of the wheel"
    assert not [n for n in held if n.startswith("tests/")], "tests do not ship"
