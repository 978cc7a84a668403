"""Fixtures for the model-layer tests: no network, ever (only this machine's loopback), and shared helpers."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest


class NetworkBlockedError(RuntimeError):
    """Raised when a test tries to open a network connection."""


def _is_loopback(address: Any) -> bool:
    """Whether a socket address is this machine's loopback (127.0.0.0/8, ::1); host names never are."""
    try:
        return ipaddress.ip_address(address[0]).is_loopback
    except (TypeError, ValueError, IndexError):
        return False


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail any connection except to a UNIX socket or a loopback address (the tests' own HTTP servers).

    Libraries are also told that they are offline.
    """
    real_connect = socket.socket.connect
    real_create_connection = socket.create_connection

    def guarded(self: socket.socket, address: Any) -> Any:
        if self.family == socket.AF_UNIX or _is_loopback(address):
            return real_connect(self, address)
        raise NetworkBlockedError(f"network access attempted in a unit test: {address!r}")

    def refuse(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        if _is_loopback(address):
            return real_create_connection(address, *args, **kwargs)
        raise NetworkBlockedError(f"network access attempted in a unit test: {address!r}")

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    yield
