"""size_text: binary units named for their divisor, exact where a unit holds the size as a small whole number."""

from __future__ import annotations

import pytest

from valohai_airflow.sizes import size_text


@pytest.mark.parametrize(
    "size, text",
    [
        (0, "0 B"),
        (900, "900 B"),
        (1023, "1023 B"),
        (1024, "1 KiB"),
        (1536, "1536 B"),
        (20_000, "19.5 KiB"),
        (64 * 1024**2, "64 MiB"),  # what the OOM message said as "64 MB"
        (1000 * 1000, "976.6 KiB"),  # a decimal megabyte is not a MiB
        (16 * 1024**3, "16 GiB"),
        (3 * 1024**3 // 2, "1536 MiB"),  # a limit reads as it was set
        (1024**3 + 1, "1.0 GiB"),
        (5 * 1024**4, "5 TiB"),
        (2048 * 1024**5, "2048 PiB"),  # the largest unit goes on counting
    ],
)
def test_size_text(size: int, text: str) -> None:
    assert size_text(size) == text
