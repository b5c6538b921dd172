"""One output edge resolved over an upstream manifest of 100,000 output files.

Subject: `runtime.edge_resolution.resolve_edges` (what `prepare` runs: glob match, the name each match
gets, name-collision check, one log line per renamed file: in the every-file case 97,000 of the
100,000 basenames repeat) and, separately, the bare `runtime.globs` filter. Baseline:
`fnmatch.filter` over the same path list (it has no `**`, and its `*` crosses `/`, so it gets the
closest equivalent pattern). The manifest is built once, untimed. Two edges: a selective one
(3 % of the files) and a broad one (every file).
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

from benchmarks.common import Row, alternate

FILES = 100_000

YAML = """
- step:
    name: produce
    image: valohai-airflow/busybox:1
    command: "true"
- step:
    name: consume
    image: valohai-airflow/busybox:1
    command: "true"
    inputs:
      - {name: data, optional: true}
- pipeline:
    name: globs
    nodes:
      - {name: up, type: execution, step: produce}
      - {name: down, type: execution, step: consume}
    edges:
      - [up.output.%s, down.input.data]
"""

#: (label, our glob, the fnmatch pattern selecting the same files)
CASES = (
    ("selective edge", "shard-00*/*.csv", "shard-00*/*.csv"),
    ("every-file edge", "**", "*"),
)


def _paths() -> list[str]:
    """shard-000 … shard-099, 1,000 files each, three extensions."""
    ext = ("csv", "json", "bin")
    return [f"shard-{i // 1000:03d}/part-{i % 1000:05d}.{ext[i % 3]}" for i in range(FILES)]


def measure(workdir: Path, repeat: int) -> list[Row]:
    from valohai_airflow.loading.project import compile_project
    from valohai_airflow.runtime.edge_resolution import resolve_edges
    from valohai_airflow.runtime.globs import compile_glob
    from valohai_airflow.runtime.manifest import Manifest, ManifestFile

    paths = _paths()
    manifest = Manifest(
        execution_id="x",
        node="up",
        step="produce",
        image="valohai-airflow/busybox:1",
        outputs=[ManifestFile(path=p, uri=f"file:///store/up/{p}", size=10, sha256="0" * 64) for p in paths],
    )
    rows: list[Row] = []
    for label, pattern, fn_pattern in CASES:
        project = workdir / "globs" / label.split()[0]
        project.mkdir(parents=True, exist_ok=True)
        (project / "valohai.yaml").write_text(YAML % pattern)
        pipeline = compile_project(project / "valohai.yaml").pipelines[0]
        node = pipeline.node("down")
        expected = fnmatch.filter(paths, fn_pattern)
        got = resolve_edges(pipeline, node, {"up": [manifest]}).inputs.get("data", [])
        assert len(got) == len(expected), (label, len(got), len(expected))
        assert compile_glob(pattern).filter(paths) == expected

        base, ours = alternate(
            lambda: fnmatch.filter(paths, fn_pattern),  # noqa: B023  # run before the loop moves on
            lambda: resolve_edges(pipeline, node, {"up": [manifest]}),  # noqa: B023
            repeat,
        )
        _, bare = alternate(
            lambda: None,
            lambda: compile_glob(pattern).filter(paths),  # noqa: B023
            repeat,
        )
        note = f"{FILES:,} outputs, `{pattern}` → {len(expected):,} files; baseline fnmatch.filter `{fn_pattern}`"
        rows.append(
            Row(f"glob edge, {label}: resolve_edges", ours, ours / base, note, "< 100 ms absolute", base)
        )
        rows.append(Row(f"glob edge, {label}: runtime.globs filter only", bare, bare / base, note, "", base))
    return rows
