from __future__ import annotations

import json
import os
import subprocess
import sys

from valohai_airflow.runtime.metadata import MetadataCollector, parse_metadata_line


def test_parse_lines() -> None:
    assert parse_metadata_line('{"step": 1, "acc": 0.5}') == {"step": 1, "acc": 0.5}
    assert parse_metadata_line('  {"a": [[1, 2], [3, 4]]}\n') == {"a": [[1, 2], [3, 4]]}
    assert parse_metadata_line(b'{"vh_metadata": {"loss": 0.1}}') == {"loss": 0.1}
    assert parse_metadata_line('{"vh_metadata": {"loss": 0.1}, "x": 1}') == {
        "vh_metadata": {"loss": 0.1},
        "x": 1,
    }
    for plain in ("epoch 1 done", "[1, 2]", '"{}"', "{not json}", "", "{", '{"a": 1} trailing'):
        assert parse_metadata_line(plain) is None


def test_collector_keeps_series_and_last_values() -> None:
    c = MetadataCollector()
    lines = ["starting", '{"epoch": 1, "acc": 0.5}', "log", '{"epoch": 2, "acc": 0.7}', '{"lr": 0.1}']
    for line in lines:
        c.feed(line, time="2026-01-01T00:00:00+00:00")
    assert c.last == {"epoch": 2, "acc": 0.7, "lr": 0.1}
    assert len(c.points) == 3 and all(p["_time"] == "2026-01-01T00:00:00+00:00" for p in c.points)
    series = [json.loads(line) for line in c.to_jsonl().splitlines()]
    assert series == c.points
    assert not c.truncated


def test_collector_bounds_points_and_bytes() -> None:
    c = MetadataCollector(max_points=10)
    for i in range(25):
        c.feed(json.dumps({"i": i}))
    assert len(c.points) == 10 and c.dropped_points == 15 and c.truncated
    assert c.last == {"i": 24}
    assert c.summary() == {"points": 25, "kept_points": 10, "dropped_points": 15, "truncated": True}
    b = MetadataCollector(max_bytes=200)
    for i in range(50):
        b.feed(json.dumps({"value": "x" * 20, "i": i}))
    assert 0 < len(b.points) < 50 and b.truncated and b.last["i"] == 49
    assert len(b.to_jsonl()) <= 200


def test_valohai_utils_logger_output_is_understood() -> None:
    """Run the real valohai-utils logger in a subprocess and parse what it prints."""
    code = (
        "import valohai\n"
        "with valohai.logger() as logger:\n"
        "    logger.log('epoch', 1)\n"
        "    logger.log('accuracy', 0.25)\n"
        "print('plain line')\n"
        "with valohai.logger() as logger:\n"
        "    logger.log('epoch', 2)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("VH_") and k != "VALOHAI_PORT"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    c = MetadataCollector()
    c.feed_all(out.stdout.splitlines())
    assert c.last == {"epoch": 2, "accuracy": 0.25}
    assert len(c.points) == 2
