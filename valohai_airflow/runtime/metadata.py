"""Execution metadata: the JSON objects a step prints on stdout (VALOHAI.md §4.4).

A line that is one JSON object is a metadata point (`{"vh_metadata": {...}}`, what
valohai-utils prints inside deployments, is unwrapped); every other line is plain log. The full
series is kept for the store, bounded in points and bytes (`truncated` says when points were
dropped); the last value per key is always kept, because edges and conditions read it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

DEFAULT_MAX_POINTS = 100_000
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
TIME_KEY = "_time"


def parse_metadata_line(line: str | bytes) -> dict[str, Any] | None:
    """The metadata point on this stdout line, or None when it is plain log."""
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    text = text.strip()
    if len(text) < 2 or text[0] != "{" or text[-1] != "}":
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    point: dict[str, Any] = value
    inner = point.get("vh_metadata")
    if len(point) == 1 and isinstance(inner, dict):
        return inner
    return point


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


class MetadataCollector:
    """Feed it stdout lines; it keeps the bounded series and the last value per key."""

    def __init__(self, max_points: int = DEFAULT_MAX_POINTS, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_points = max_points
        self.max_bytes = max_bytes
        self.points: list[dict[str, Any]] = []
        self.last: dict[str, Any] = {}
        self.total_points = 0
        self.dropped_points = 0
        self._bytes = 0

    @property
    def truncated(self) -> bool:
        return self.dropped_points > 0

    def feed(self, line: str | bytes, *, time: str | None = None) -> dict[str, Any] | None:
        """Record the line if it is metadata; returns the point (with `_time`) or None."""
        point = parse_metadata_line(line)
        if point is None:
            return None
        if TIME_KEY not in point:
            point = {**point, TIME_KEY: time or now_iso()}
        self.total_points += 1
        for key, value in point.items():
            if key != TIME_KEY:
                self.last[key] = value
        size = len(json.dumps(point, default=str)) + 1
        if len(self.points) >= self.max_points or self._bytes + size > self.max_bytes:
            self.dropped_points += 1
        else:
            self.points.append(point)
            self._bytes += size
        return point

    def feed_all(self, lines: Iterable[str | bytes]) -> None:
        for line in lines:
            self.feed(line)

    def to_jsonl(self) -> bytes:
        """The kept series, one JSON object per line (the file stored next to the outputs)."""
        return b"".join(json.dumps(p, default=str).encode() + b"\n" for p in self.points)

    def summary(self) -> dict[str, Any]:
        return {
            "points": self.total_points,
            "kept_points": len(self.points),
            "dropped_points": self.dropped_points,
            "truncated": self.truncated,
        }
