"""Process-level helpers whose implementation differs between operating systems.

* :func:`cpu_count`: the cores this process may run on;
* :func:`exit_with_parent`: make a worker process end when the process that started it dies;
* :func:`directory_lock`: one process at a time on a directory, released by the kernel if the holder dies.

Imports only the standard library (worker processes call :func:`exit_with_parent` at start-up).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["cpu_count", "exit_with_parent", "directory_lock", "DirectoryBusy", "LOCK_NAME"]

LOCK_NAME = ".lock"


def cpu_count() -> int:
    """The number of cores this process may use: its CPU affinity where the OS has one (Linux), else all cores."""
    if hasattr(os, "sched_getaffinity"):  # not on macOS or Windows
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux ``MemAvailable``), or ``None`` where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


# --------------------------------------------------------------------------- exit with the parent

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def exit_with_parent(parent: int | None = None) -> None:
    """End this process when ``parent`` (default: the current parent) dies, even by ``kill -9``.

    On Linux the kernel sends SIGTERM (``prctl(PR_SET_PDEATHSIG)``); it fires when the *thread* that
    started this process ends, so start workers from a thread that lives as long as the parent (the
    main thread). Elsewhere, or if prctl is unavailable, a daemon thread polls the parent's pid every second.
    Call it first thing in a worker (a pool initializer); pass the parent's pid as seen by the parent,
    so that a parent which died before this call is noticed too.
    """
    parent = os.getppid() if parent is None else parent
    if sys.platform.startswith("linux") and _set_pdeathsig(signal.SIGTERM):
        if os.getppid() != parent:  # it died before prctl took effect: no signal will come
            os._exit(1)
        return
    threading.Thread(target=_watch_parent, args=(parent,), name="exit-with-parent", daemon=True).start()


def _set_pdeathsig(sig: int) -> bool:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int, interval: float = 1.0) -> None:
    while os.getppid() == parent:  # an orphan is re-parented (to init, or a subreaper)
        time.sleep(interval)
    os._exit(1)


# --------------------------------------------------------------------------- directory lock


class DirectoryBusy(Exception):
    """Another process holds the lock of a directory; ``pid`` is its process id (None if unknown)."""

    def __init__(self, directory: Path, pid: int | None):
        super().__init__(f"{directory} is locked by process {pid if pid is not None else '(unknown)'}")
        self.directory, self.pid = directory, pid


try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
try:
    import msvcrt
except ImportError:  # POSIX
    msvcrt = None  # type: ignore[assignment]

_WINDOWS_LOCK_OFFSET = 1 << 30  # Windows locks are mandatory: lock a byte past the pid, so others can read it


@contextlib.contextmanager
def directory_lock(directory: str | os.PathLike) -> Iterator[Path]:
    """Hold an exclusive advisory lock on ``directory`` (its file ``.lock``) for the ``with`` block.

    A second holder, in this process or another, gets :class:`DirectoryBusy` with the holder's pid at
    once (no waiting). The lock belongs to an open file, so the kernel releases it when its holder
    dies, ``kill -9`` included: a lock file left by a crash does not block the next process. On exit
    the lock file is removed, and ``directory`` too if this call created it and it is still empty.
    On a platform with neither ``fcntl`` nor ``msvcrt`` nothing is locked.
    """
    directory = Path(directory)
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    fd = _acquire(path, directory)
    try:
        yield path
    finally:
        _release(fd, path)
        if created:
            with contextlib.suppress(OSError):
                directory.rmdir()  # only if empty


def _acquire(path: Path, directory: Path) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _lock(fd)
        except OSError:
            pid = _read_pid(fd)
            os.close(fd)
            raise DirectoryBusy(directory, pid) from None
        # The previous holder removes the file before it lets go of the lock: if we opened the file it
        # removed, the lock we got is on a file nobody else will open. Open the current one again.
        try:
            current = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            current = False
        if current or fcntl is None:  # Windows cannot remove an open file: there is no such race
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _lock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError (an OSError) when held
    elif msvcrt is not None:
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # OSError when held
    # else: no locking primitive on this platform; concurrent runs are not prevented.


def _read_pid(fd: int) -> int | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return int(os.read(fd, 32).decode().strip())
    except (OSError, ValueError):  # empty: the holder has not written its pid yet
        return None


def _release(fd: int, path: Path) -> None:
    # Remove the file while still holding the lock (see _acquire), then close: closing releases it.
    if fcntl is not None:
        with contextlib.suppress(OSError):
            os.unlink(path)
    os.close(fd)
    if fcntl is None:
        with contextlib.suppress(OSError):
            os.unlink(path)
