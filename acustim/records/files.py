"""Where the store lives and which paths may be opened as one, checked before SQLite is.

The default location (``$ACUSTIM_DATA_DIR`` or the user data directory), the private modes
(directory 0700, files 0600, created under a 0077 umask), and the checks that turn what SQLite
would fail on unhelpfully into one-line ``RecordsError``s: a read-only or unwritable directory,
a directory, FIFO or device in the store's place, a file that is not SQLite. Also how to read a
store from a directory where nothing can be written (immutable, or a private snapshot of a
killed writer's ``-wal``). This module never opens an SQLite connection, and never changes a
file's contents: it only reads headers, sets modes and copies into a private snapshot.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import platformdirs

from acustim.records.errors import RecordsError

__all__ = [
    "DATA_DIR_ENV",
    "STORE_FILE_NAME",
    "WHAT_TO_DO",
    "check_directory_writable",
    "check_file",
    "default_store_path",
    "ensure_directory",
    "make_private",
    "read_only_uri",
    "remove_snapshot",
    "restrictive_umask",
]

STORE_FILE_NAME: Final = "records.sqlite3"
DATA_DIR_ENV: Final = "ACUSTIM_DATA_DIR"

_DIR_MODE: Final = 0o700
_FILE_MODE: Final = 0o600
_SQLITE_MAGIC: Final = b"SQLite format 3\x00"
WHAT_TO_DO: Final = f"move it aside or set {DATA_DIR_ENV} to another directory"


def default_store_path() -> Path:
    """``$ACUSTIM_DATA_DIR/records.sqlite3`` if that is set, else under the user's data dir."""
    override = os.environ.get(DATA_DIR_ENV, "").strip()
    base = Path(override).expanduser() if override else Path(platformdirs.user_data_dir("acustim"))
    return base / STORE_FILE_NAME


_umask_lock = threading.Lock()


@contextlib.contextmanager
def restrictive_umask() -> Iterator[None]:
    # The umask is process-wide: hold it only while open() creates the directory and files.
    with _umask_lock:
        old = os.umask(0o077)
        try:
            yield
        finally:
            os.umask(old)


def ensure_directory(directory: Path) -> None:
    if directory.is_dir():
        return
    try:
        with restrictive_umask():
            directory.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        os.chmod(directory, _DIR_MODE)
    except OSError as exc:
        raise RecordsError(
            f"cannot create the records directory {directory} ({exc.strerror or exc}):"
            f" set {DATA_DIR_ENV} to a directory you can write"
        ) from exc


def _read_only_filesystem(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs (Windows): say "permission denied"
        return False


def check_directory_writable(path: Path) -> None:
    """SQLite makes its -wal and -shm files next to the store: the directory must be writable.

    Checked before SQLite tries, which would only say "unable to open database file"."""
    directory = path.parent
    if os.access(directory, os.W_OK | os.X_OK):
        return
    why = (
        "it is on a read-only filesystem"
        if _read_only_filesystem(directory)
        else "you cannot write there (permission denied)"
    )
    raise RecordsError(
        f"cannot record sessions in {directory}: {why}; set {DATA_DIR_ENV} to a directory you"
        " can write (sessions recorded there before can still be read: acustim sessions"
        f" --store {path})"
    )


def check_file(path: Path, *, writable: bool = True) -> None:
    """Refuse what SQLite would fail on with an unhelpful message, before it touches the file.

    Only a regular file is opened: a FIFO would block the open forever (and SQLite after
    it), a device is no store. Checked on the path and again on the opened file."""
    from waveforms.files import file_kind  # here: opening a store must not load numpy

    try:
        kind = file_kind(path.stat().st_mode)
        if kind is not None:
            raise RecordsError(f"{path} is {kind}, not a records store: {WHAT_TO_DO}")
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
        with os.fdopen(os.open(path, flags), "rb") as fh:
            kind = file_kind(os.fstat(fh.fileno()).st_mode)
            if kind is not None:
                raise RecordsError(f"{path} is {kind}, not a records store: {WHAT_TO_DO}")
            head = fh.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return
    except IsADirectoryError as exc:
        raise RecordsError(f"{path} is a directory, not a records store: {WHAT_TO_DO}") from exc
    except OSError as exc:
        raise RecordsError(
            f"cannot read the records store {path} ({exc.strerror or exc}): make it readable"
            f" and writable by you (mode 0600), or set {DATA_DIR_ENV} to another directory"
        ) from exc
    if head and head != _SQLITE_MAGIC:
        raise RecordsError(
            f"{path} is not an acustim records store (not an SQLite database): {WHAT_TO_DO}"
        )
    if writable and not os.access(path, os.R_OK | os.W_OK):
        raise RecordsError(
            f"cannot write the records store {path} (permission denied): make it readable"
            f" and writable by you (mode 0600), or set {DATA_DIR_ENV} to another directory"
        )


def make_private(path: Path) -> None:
    for target in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            os.chmod(target, _FILE_MODE)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise RecordsError(
                f"cannot make {target} private (mode 0600): {exc.strerror or exc}; it should"
                " belong to you"
            ) from exc


def read_only_uri(path: Path) -> tuple[str, Path | None]:
    """How to read ``path`` without writing anything next to it.

    SQLite reads a WAL store read-only if its -wal and -shm files exist or can be made. In a
    directory where nothing can be made (read-only filesystem, a backup) a store that was
    closed cleanly has everything in the main file and is read as immutable; one whose -wal
    still holds rows (its writer was killed) is copied, with its -wal, to a private temporary
    directory and read there, so no committed row is missed."""
    base = path.as_uri()
    wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
    if os.access(path.parent, os.W_OK | os.X_OK) or (wal.exists() and shm.exists()):
        return f"{base}?mode=ro", None
    if not wal.exists() or wal.stat().st_size == 0:
        return f"{base}?mode=ro&immutable=1", None
    snapshot_dir = Path(tempfile.mkdtemp(prefix="acustim-records-"))  # mode 0700
    try:
        copy = snapshot_dir / path.name
        shutil.copyfile(path, copy)
        shutil.copyfile(wal, Path(f"{copy}-wal"))
        for made in (copy, Path(f"{copy}-wal")):
            os.chmod(made, _FILE_MODE)
    except OSError as exc:
        remove_snapshot(snapshot_dir)
        raise RecordsError(
            f"cannot read the records store {path} from a read-only directory"
            f" ({exc.strerror or exc}): copy it, with its -wal file, somewhere you can write"
        ) from exc
    return f"{copy.as_uri()}?mode=ro", snapshot_dir


def remove_snapshot(snapshot_dir: Path | None) -> None:
    if snapshot_dir is not None:
        shutil.rmtree(snapshot_dir, ignore_errors=True)
