"""The unit boundary (tests/support/boundary.py) holds: inside a unit test, Docker, the network and the
servers are refused for real (not by a mock), loopback is allowed."""

from __future__ import annotations

import socket
import subprocess

import docker
import pytest

from tests.support.boundary import GUARD, BoundaryError, refusal

UNROUTABLE = ("192.0.2.1", 9)  # TEST-NET-1: never answers, so without the guard the timeout would end it


def test_the_network_is_refused() -> None:
    with GUARD.expected() as refused, pytest.raises(BoundaryError, match="tests/integration"):
        socket.create_connection(UNROUTABLE, timeout=5)
    assert refused == [f"connects to {UNROUTABLE!r}"]
    with GUARD.expected() as refused, pytest.raises(BoundaryError):
        socket.getaddrinfo("pypi.org", 443)
    assert refused == ["looks up 'pypi.org'"]


def test_the_docker_engine_is_refused_also_when_the_client_wraps_the_error() -> None:
    with GUARD.expected() as refused, pytest.raises(docker.errors.DockerException, match="tests/integration"):
        docker.APIClient(base_url="unix:///var/run/docker.sock", timeout=10)  # asks the engine's version
    assert refused == ["connects to the Unix socket /var/run/docker.sock"]


@pytest.mark.parametrize("argv", [["docker", "info"], ["docker-compose", "version"], ["weed", "version"]])
def test_docker_compose_and_seaweedfs_are_not_started(argv: list[str]) -> None:
    with GUARD.expected() as refused, pytest.raises(BoundaryError):
        subprocess.run(argv, capture_output=True, timeout=30, check=False)
    assert refused == [f"starts `{argv[0]}`"]


def test_a_server_the_test_starts_on_loopback_is_allowed() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server, socket.create_connection(server.getsockname(), 5):
        pass
    assert socket.getaddrinfo("localhost", 80)
    assert GUARD.refused == []


@pytest.mark.parametrize(
    "event, args, allowed",
    [
        ("socket.connect", (None, ("::1", 80, 0, 0)), True),
        ("socket.connect", (None, ("10.0.0.1", 80)), False),
        ("socket.getaddrinfo", (None, 80, 0, 0, 0), True),
        ("socket.getaddrinfo", ("192.0.2.1", 80, 0, 0, 0), True),  # no query: its connect is checked
        ("socket.getaddrinfo", (b"example.com", 80, 0, 0, 0), False),
        ("subprocess.Popen", ("/usr/bin/docker", ["docker", "ps"], None, None), False),
        ("subprocess.Popen", (None, ["/usr/local/bin/weed", "server"], None, None), False),
        ("subprocess.Popen", (None, ["bash", "-c", "true"], None, None), True),
        ("open", ("/etc/hosts", "r", 0), True),
    ],
)
def test_what_is_refused(event: str, args: tuple[object, ...], allowed: bool) -> None:
    assert (refusal(event, args) is None) == allowed
