"""Who runs a job: this process's identity (pid, host, boot and start time) and whether another one still lives.

A pid alone is not an identity: after a crash the number may be reused. On Linux the process start time
(``/proc/<pid>/stat``) and the boot id (``/proc/sys/kernel/random/boot_id``) make it one; elsewhere the pid
is checked alone. A job owned by another host cannot be checked this way, only by its heartbeat.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


@dataclass(frozen=True)
class Owner:
    """A process that runs jobs."""

    pid: int
    host: str
    start: str | None  # "<boot id>:<start time in clock ticks>", or None where /proc is missing

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}"


@lru_cache(maxsize=1)
def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (which may hold spaces), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2:].split()


def process_start(pid: int) -> str | None:
    """``<boot id>:<start ticks>`` of a live process, or None when it cannot be read."""
    fields = _stat_fields(pid)
    boot = _boot_id()
    if fields is None or boot is None or len(fields) < 20:
        return None
    return f"{boot}:{fields[19]}"  # field 22 of stat: starttime


def this_host() -> str:
    return socket.gethostname()


def current_owner() -> Owner:
    """This process, as a job owner."""
    pid = os.getpid()
    return Owner(pid, this_host(), process_start(pid))


def owner_alive(pid: int | None, start: str | None) -> bool | None:
    """Whether process ``pid`` (started at ``start``) on this host still runs; None when it cannot be told."""
    if pid is None:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by another user
    fields = _stat_fields(pid)
    if fields is not None and fields[0] in ("Z", "X"):
        return False  # a zombie: dead, not yet reaped by its parent
    if start is not None:
        now = process_start(pid)
        if now is not None and now != start:
            return False  # the pid was reused by another process
    return True


__all__ = ["Owner", "current_owner", "owner_alive", "process_start", "this_host"]
