"""Staging with the local store against `cp -r` of the same tree.

Two trees: one big file (1 GiB by default) and 10,000 files of 10 KiB (100 directories of 100).
Upload side, as `finish` does it: `stage_outputs` (walk, then each file stored and hashed in one
read) into a `LocalStore` on the same disk (the default: files are hard-linked, then hashed) and
into one with `link=False` (what a store on another filesystem costs: every byte copied, hashed
while copying). Input side, as `prepare` does it for an output edge: one `materialise_input` per
upstream file from the store into `inputs/<name>/` (the objects `stage_outputs` sealed: a kernel
copy and the seal checked against the manifest's sha256; an unsealed file is hashed while copied).
Baselines: `cp -r` (a subprocess) of the same directory to the same disk, for reference; and,
for the big file's stage-out, hashing that file with the system's tools, since every stored file
needs its sha256 and the hash, not the copy, is the limit: coreutils `sha256sum` and
`openssl dgst -sha256` (OpenSSL's SHA-256, the code hashlib runs, with the CPU's SHA extensions
where it has them; Debian's `sha256sum` is not built with OpenSSL and is several times slower).
All contenders of a tree run side by side, the order reversed every other round; what a run
wrote is removed untimed after it. Ratios are THROUGHPUT ratios (baseline time ÷ our time,
higher is better), with their spread over the rounds. Everything sits in the page cache (23 GiB
RAM): this measures CPU and syscall cost, not the disk.
"""

from __future__ import annotations

import functools
import os
import shutil
import statistics
import subprocess
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import Row, alternate, interleave, round_ratios

MiB = 1024 * 1024
SMALL_FILES = 10_000
SMALL_SIZE = 10 * 1024
PREFIX = "dag/run/node/-1/1/outputs"


def write_big(root: Path, mib: int) -> None:
    root.mkdir(parents=True)
    block = os.urandom(MiB)
    with open(root / "big.bin", "wb") as fh:
        for i in range(mib):
            fh.write(i.to_bytes(8, "little") + block[8:])  # no two blocks alike


def write_small(root: Path, count: int = SMALL_FILES, size: int = SMALL_SIZE) -> None:
    data = os.urandom(size + count)
    for i in range(count):
        folder = root / f"d{i // 100:03d}"
        if i % 100 == 0:
            folder.mkdir(parents=True)
        (folder / f"f{i:05d}.bin").write_bytes(data[i : i + size])


def tree_bytes(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())


def cp_r(src: Path, dest: Path) -> Callable[[], object]:
    return lambda: subprocess.run(["cp", "-r", str(src), str(dest)], check=True)


def hash_tools(path: Path) -> dict[str, Callable[[], object]]:
    """The system's tools hashing one file (those installed), by the name a row shows."""
    commands = {
        "`sha256sum`": ["sha256sum", str(path)],
        "`openssl dgst -sha256`": ["openssl", "dgst", "-sha256", str(path)],
    }
    return {
        name: functools.partial(subprocess.run, argv, check=True, stdout=subprocess.DEVNULL)
        for name, argv in commands.items()
        if shutil.which(argv[0])
    }


def _rows(label: str, size: int, rounds: int, work: Path, src: Path, *, big: bool) -> list[Row]:
    from valohai_airflow.runtime.inputs import DownloadCache, InputSource, materialise_input
    from valohai_airflow.runtime.outputs import stage_outputs
    from valohai_airflow.store.local import LocalStore

    store_root, cp_dest, inputs = work / "store", work / "cp-dest", work / "inputs"
    cache = DownloadCache(work / "cache")

    def reset() -> None:
        for path in (store_root, cp_dest, inputs):
            shutil.rmtree(path, ignore_errors=True)

    def upload(link: bool) -> Callable[[], None]:
        def run() -> None:
            stage_outputs(src, LocalStore(store_root, link=link), PREFIX)

        return run

    rows = []
    mbps = size / MiB
    variants = {"same disk (hard links)": True} | ({"link=False (copies)": False} if big else {})
    baselines = {"`cp -r`": cp_r(src, cp_dest)} | (hash_tools(src / "big.bin") if big else {})
    times = interleave(
        baselines | {variant: upload(link) for variant, link in variants.items()}, rounds, reset=reset
    )
    for variant in variants:
        ours = statistics.median(times[variant])
        for name in baselines:
            base = statistics.median(times[name])
            reference = big and name == "`cp -r`"
            rows.append(
                Row(
                    f"stage out {label}: stage_outputs → LocalStore, {variant}, vs {name}",
                    ours,
                    base / ours,
                    f"{'for reference: ' if reference else ''}throughput ratio vs {name}; "
                    f"{mbps / ours:.0f} MiB/s vs {mbps / base:.0f} MiB/s; "
                    f"{round_ratios(times[name], times[variant])}",
                    "" if reference else "≥ 0.9×" if big else "≥ 0.8×",
                    base,
                )
            )

    # the input side reads what the upload left in the store
    collection, uris = stage_outputs(src, LocalStore(store_root, link=False), PREFIX)
    sources = [
        InputSource(uris[f.path], sha256=f.sha256, size=f.size, path_hint=f.path) for f in collection.files
    ]
    stored = store_root / PREFIX

    def materialise() -> None:
        for source in sources:  # one call per edge file, like runtime.execution
            materialise_input("data", [source], inputs, cache, keep_directories="full")

    def reset_inputs() -> None:
        shutil.rmtree(cp_dest, ignore_errors=True)
        shutil.rmtree(inputs, ignore_errors=True)

    base, ours = alternate(cp_r(stored, cp_dest), materialise, rounds, reset=reset_inputs)
    rows.append(
        Row(
            f"stage in {label}: materialise_input from LocalStore (sealed objects: copy + seal check)",
            ours,
            base / ours,
            f"throughput ratio vs `cp -r`; {mbps / ours:.0f} MiB/s vs {mbps / base:.0f} MiB/s",
            "≥ 0.8×",
            base,
        )
    )
    reset()
    return rows


def measure(workdir: Path, *, big_mib: int = 1024) -> list[Row]:
    """Five rounds for the big file; three for the small files, whose every `cp -r` costs seconds
    of metadata work on this VM (the link=False variant and the hash baselines are left out there,
    to keep `make bench` short)."""
    rows: list[Row] = []
    cases: tuple[tuple[str, Callable[[Path], None], int, bool], ...] = (
        (f"1 file of {big_mib} MiB", lambda root: write_big(root, big_mib), 5, True),
        (f"{SMALL_FILES:,} files of 10 KiB", write_small, 3, False),
    )
    for label, make, rounds, big in cases:
        work = workdir / "staging"
        src = work / "outputs"
        make(src)
        try:
            rows += _rows(label, tree_bytes(src), rounds, work, src, big=big)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return rows
