"""Unit tests run inside the boundary of tests/support/boundary.py: no Docker, no network, no server."""

from __future__ import annotations

import sys
from collections.abc import Generator

import pytest

from tests.support.boundary import GUARD, HINT

sys.addaudithook(GUARD)  # audit hooks cannot be removed: GUARD refuses only while it watches


def _watched() -> Generator[None, object, object]:
    with GUARD.watch() as refused:
        result = yield
    if refused:
        pytest.fail(f"{'; '.join(refused)}: {HINT}", pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _watched())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _watched())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, object, object]:
    if nextitem is None:  # the session's last tear-down also stops the other folders' servers
        return (yield)
    return (yield from _watched())
