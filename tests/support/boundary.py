"""What a unit test may not do: reach Docker, the network, or start a server process.

`-m unit` (tests/unit) promises tests that run without a Docker engine, without a network and without
a server such as SeaweedFS. tests/unit/conftest.py installs `GUARD` as an audit hook (sys.addaudithook
sees every call, also those made inside libraries) and watches each unit test's set-up, call and
tear-down: a connection anywhere but loopback, a connection to a Unix socket (Docker's engine listens
on one), a DNS lookup of another host, or the start of `docker`, `docker-compose` or `weed` is refused
with `BoundaryError` and fails the test, also when the code under test swallows the error. A server a
unit test starts itself on 127.0.0.1 (an HTTP handler in a thread) is allowed. What a subprocess does
is not seen; the one download (valohai-yaml's sdist) happens before the session (tests/conftest.py).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

PROGRAMS = frozenset({"docker", "docker-compose", "weed"})  # the engine's CLI, Compose, SeaweedFS
EVENTS = frozenset({"socket.connect", "socket.getaddrinfo", "subprocess.Popen"})
HINT = "a unit test needs no Docker, network or server: it belongs in tests/integration"


class BoundaryError(RuntimeError):
    """A unit test reached for Docker, the network or a server."""


def _address(host: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | str | None:
    """The host as an IP address when it is one, else its name (None for the local host)."""
    if host is None or host in ("", b""):
        return None
    name = os.fsdecode(host) if isinstance(host, bytes) else str(host)
    try:
        return ipaddress.ip_address(name.split("%")[0])
    except ValueError:
        return name


def _is_loopback(host: Any) -> bool:
    address = _address(host)
    return address is None or address == "localhost" or (not isinstance(address, str) and address.is_loopback)


def refusal(event: str, args: tuple[Any, ...]) -> str | None:
    """Why this audit event is out of bounds for a unit test, or None when it is allowed."""
    if event == "socket.connect":
        address = args[1]
        if isinstance(address, str | bytes):
            return f"connects to the Unix socket {os.fsdecode(address)}"
        if isinstance(address, tuple) and _is_loopback(address[0]):
            return None
        return f"connects to {address!r}"
    if event == "socket.getaddrinfo":  # a name is a DNS query; an IP address is not (its connect is checked)
        return (
            f"looks up {args[0]!r}"
            if isinstance(_address(args[0]), str) and not _is_loopback(args[0])
            else None
        )
    if event == "subprocess.Popen":
        executable, argv = args[0], args[1]
        if executable is None:
            executable = argv if isinstance(argv, str | bytes | os.PathLike) else next(iter(argv), "")
        program = os.path.basename(os.fsdecode(executable))
        return f"starts `{program}`" if program in PROGRAMS else None
    return None


class Guard:
    """The audit hook: refuses out-of-bounds events while a unit test runs, and keeps each refusal so a
    swallowed one still fails the test."""

    def __init__(self) -> None:
        self.watching = False
        self.refused: list[str] = []

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.watching or event not in EVENTS:
            return
        reason = refusal(event, args)
        if reason is not None:
            self.refused.append(reason)
            raise BoundaryError(f"{reason}: {HINT}")

    @contextmanager
    def watch(self) -> Iterator[list[str]]:
        """Refuse while inside; yields the refusals of this stretch."""
        self.watching, self.refused = True, []
        try:
            yield self.refused
        finally:
            self.watching = False

    @contextmanager
    def expected(self) -> Iterator[list[str]]:
        """Refusals a test provokes on purpose (to show the guard works): kept here, not failing it."""
        start = len(self.refused)
        seen: list[str] = []
        try:
            yield seen
        finally:
            seen.extend(self.refused[start:])
            del self.refused[start:]


GUARD = Guard()
