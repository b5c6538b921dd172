"""A real SeaweedFS S3 server for the store tests (shared with the runtime tests)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support import seaweed


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[seaweed.S3Endpoint]:
    endpoint = seaweed.acquire()
    try:
        yield endpoint
    finally:
        seaweed.release()


@pytest.fixture
def s3_bucket(s3_endpoint: seaweed.S3Endpoint) -> str:
    name = f"t-{uuid.uuid4().hex[:12]}"
    seaweed.make_bucket(s3_endpoint, name)
    return name
