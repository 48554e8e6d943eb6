"""One process per run directory: an OS file lock that a killed process releases.

Two `resume=<dir>` at once, or two runs given the same `hydra.run.dir`, would train the
same stage into the same files. Every process that works in a run directory holds an
exclusive `fcntl.flock` on `<dir>/.medalign.lock`; the kernel drops it when the process
exits, however it exits (SIGKILL included), so a stale lock never needs cleaning up. The
file records who holds it, for the error the second process gets:

    with run_lock(run_dir):        # curriculum directory
        ...
    RunDir.create(path, ...)       # a stage directory: takes the lock itself

Within one process the lock is re-entrant (a curriculum's nested calls share it).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from medalign.errors import MedalignError

LOCK_NAME = ".medalign.lock"
_held: dict[str, RunLock] = {}


class RunDirInUse(MedalignError):
    """Another live process works in this run directory."""


class RunLock:
    """The held lock of one run directory; `release()` (or process exit) frees it."""

    def __init__(self, path: Path, handle: IO[str]) -> None:
        self.path, self._handle, self._count = path, handle, 1

    def release(self) -> None:
        self._count -= 1
        if self._count > 0 or self._handle.closed:
            return
        _held.pop(str(self.path), None)
        fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def acquire(path: Path) -> RunLock:
    """Lock run directory `path` (created if needed) or raise RunDirInUse naming the holder."""
    path = Path(path).resolve()
    held = _held.get(str(path))
    if held is not None:
        held._count += 1
        return held
    path.mkdir(parents=True, exist_ok=True)
    handle = open(path / LOCK_NAME, "a+")  # noqa: SIM115 - held for the run's lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        who = _describe(handle.read())
        handle.close()
        raise RunDirInUse(
            f"{path} is in use by {who}; wait for it to end or stop it, then run again"
        ) from None
    record = {"pid": os.getpid(), "host": socket.gethostname(), "started": _now()}
    try:  # who holds it, for the error others get; the lock itself is the flock
        os.ftruncate(handle.fileno(), 0)
        os.write(handle.fileno(), (json.dumps(record) + "\n").encode())
    except OSError:  # a full disk: still locked, only the description is missing
        pass
    lock = RunLock(path, handle)
    _held[str(path)] = lock
    return lock


@contextmanager
def run_lock(path: Path) -> Iterator[RunLock]:
    """Hold the lock of `path` for the `with` block."""
    lock = acquire(path)
    try:
        yield lock
    finally:
        lock.release()


def holder(path: Path) -> str | None:
    """Who holds `path`'s lock ("PID N on host (started ...)"), or None if nobody does:
    a `running` manifest without a holder was left by a process that is gone."""
    path = Path(path).resolve()
    if str(path) in _held:
        return _describe((path / LOCK_NAME).read_text())
    lock_file = path / LOCK_NAME
    if not lock_file.is_file():
        return None
    with open(lock_file) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _describe(handle.read())
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


def _describe(text: str) -> str:
    try:
        info = json.loads(text)
        return f"PID {info['pid']} on {info['host']} (started {info['started']})"
    except (ValueError, KeyError, TypeError):
        return "another process (started at an unknown time)"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def reported_status(status: str | None, run_dir: Path) -> str | None:
    """The status a reader shows: a `running` manifest whose directory nobody holds was
    left by a process that is gone (killed, SIGKILL after a preemption): `interrupted`."""
    if status == "running" and Path(run_dir).is_dir() and holder(run_dir) is None:
        return "interrupted"
    return status
