"""A guard beside each node container: removes it when the task's process dies without doing so.

SIGKILL (the supervisor's escalation 5 s after a SIGTERM that was not enough, the kernel's OOM
killer, `kill -9`) runs no handler in the task's process, so `on_kill` cannot remove the container,
which would run on until the next try of the node. Before creating the container the operator starts
this module as a small process in its own session (signals to the task's process group do not reach
it) that waits for its parent, the task's process, to end: on a pidfd where Linux has one, else by
polling `os.getppid()` (it changes when the parent dies). Then it force-removes the container by
name and exits. A task that ends normally stops its guard first (`stop`). The guard imports nothing
of Airflow, and the engine's client only once the parent is gone: one idle interpreter per running node.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time

#: Removal is tried again after these delays: a parent killed while the engine was still creating
#: the container could otherwise race the first attempt.
RETRY_DELAYS = (0.0, 1.0, 3.0)
POLL_SECONDS = 0.5


def start(container_name: str, docker_url: str) -> subprocess.Popen[bytes]:
    """Start the guard of `container_name` (not created yet) for this process."""
    return subprocess.Popen(
        [sys.executable, "-m", __name__, str(os.getpid()), container_name, docker_url],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(guard: subprocess.Popen[bytes]) -> None:
    """The task removed its container itself: end the guard (it holds no state)."""
    guard.terminate()
    try:
        guard.wait(timeout=10)
    except subprocess.TimeoutExpired:
        guard.kill()
        guard.wait(timeout=10)


def wait_for_parent(parent: int) -> None:
    """Return once process `parent` (this process's parent at start) has ended."""
    try:
        fd = os.pidfd_open(parent)
    except (AttributeError, OSError):
        fd = -1
    if fd >= 0:
        try:
            if os.getppid() == parent:  # the pidfd is the parent's, not a reused pid's
                select.select([fd], [], [])
                return
        finally:
            os.close(fd)
    while os.getppid() == parent:
        time.sleep(POLL_SECONDS)


def remove_container(container_name: str, docker_url: str) -> None:
    """Force-remove the container; the next try of the node removes it if all attempts fail."""
    from valohai_airflow.engine.docker import DockerEngine
    from valohai_airflow.engine.interface import EngineError

    engine = DockerEngine(docker_url)
    try:
        for delay in RETRY_DELAYS:
            time.sleep(delay)
            try:
                engine.remove(container_name)
                return
            except EngineError:  # not there (yet), or the engine is busy: try again
                continue
    finally:
        engine.close()


def main(argv: list[str]) -> None:
    parent, container_name, docker_url = int(argv[0]), argv[1], argv[2]
    wait_for_parent(parent)
    remove_container(container_name, docker_url)


if __name__ == "__main__":
    main(sys.argv[1:])
