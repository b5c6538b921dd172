"""S3Store.put_tree / get_tree against a plain boto3 transfer loop, on a local SeaweedFS.

The server is tests/support/seaweed.py's (127.0.0.1, free ports, stopped by pid). Baseline: the
same boto3 client and the same `TransferConfig` (threshold, chunk size, max_concurrency), one
`S3Transfer` shared by a thread pool of `max_concurrency` workers calling upload_file /
download_file per file (after one list_objects_v2 walk for downloads) — what one would write by
hand for full concurrency. `stage_outputs` (what `finish` runs: every file uploaded and hashed
as the transfer manager reads it) is measured against the same baseline and, for the big file,
against hashing it with `sha256sum` and `openssl dgst -sha256` for reference (the server, not the
hash, is the limit here). Two trees: one big file (multipart) and many 10 KiB files; the sizes
are smaller than the local group's because SeaweedFS shares the 2 cores with the client. Rounds
alternate; uploads are deleted and downloads removed untimed after each run. Ratios are
THROUGHPUT ratios (baseline time ÷ our time, higher is better).
"""

from __future__ import annotations

import shutil
import statistics
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.common import Row, alternate, interleave, round_ratios
from benchmarks.staging import MiB, hash_tools, tree_bytes, write_big, write_small

BUCKET = "bench"


def _rows(label: str, store: object, src: Path, work: Path, rounds: int) -> list[Row]:
    from boto3.s3.transfer import S3Transfer

    from valohai_airflow.runtime.outputs import stage_outputs
    from valohai_airflow.store.base import tree_files
    from valohai_airflow.store.s3 import S3Store

    assert isinstance(store, S3Store)
    client, config = store.client, store.transfer_config
    transfer = S3Transfer(client=client, config=config)  # type: ignore[arg-type]
    files = tree_files(src)
    size = tree_bytes(src)
    dest = work / "download"

    def plain_upload(prefix: str) -> None:
        with ThreadPoolExecutor(config.max_concurrency) as pool:
            list(pool.map(lambda rel: transfer.upload_file(str(src / rel), BUCKET, f"{prefix}/{rel}"), files))

    def plain_download(prefix: str) -> None:
        keys = [
            item["Key"]
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/")
            for item in page.get("Contents", [])
        ]

        def fetch(key: str) -> None:
            target = dest / key[len(prefix) + 1 :]
            target.parent.mkdir(parents=True, exist_ok=True)
            transfer.download_file(BUCKET, key, str(target))

        with ThreadPoolExecutor(config.max_concurrency) as pool:
            list(pool.map(fetch, keys))

    def clean_uploads() -> None:
        for prefix in ("up-plain", "up-ours", "up-stage"):
            store.delete_prefix(prefix)

    tools = hash_tools(src / "big.bin") if (src / "big.bin").exists() else {}
    contenders = {
        "plain": lambda: plain_upload("up-plain"),
        "put_tree": lambda: store.put_tree(src, "up-ours"),
        "stage_outputs": lambda: stage_outputs(src, store, "up-stage"),
    }
    times = interleave(contenders | tools, rounds, reset=clean_uploads)
    mib = size / MiB

    def row(name: str, subject: str, baseline: str, what: str, target: str) -> Row:
        base, ours = statistics.median(times[baseline]), statistics.median(times[subject])
        spread = round_ratios(times[baseline], times[subject])
        note = f"{what}; {mib / ours:.0f} MiB/s vs {mib / base:.0f} MiB/s; {spread}"
        return Row(name, ours, base / ours, note, target, base)

    plain = "throughput ratio vs boto3 S3Transfer + thread pool, same TransferConfig"
    rows = [
        row(f"S3 put_tree {label}", "put_tree", "plain", plain, "≥ 0.9×"),
        row(f"S3 stage_outputs {label} (upload and sha256)", "stage_outputs", "plain", plain, "≥ 0.9×"),
    ]
    rows += [
        row(f"S3 stage_outputs {label} vs {tool}", "stage_outputs", tool, f"for reference: vs {tool}", "")
        for tool in tools
    ]
    note = plain + "; {:.0f} MiB/s vs {:.0f} MiB/s"
    store.put_tree(src, "down")
    base, ours = alternate(
        lambda: plain_download("down"),
        lambda: store.get_tree("down", dest),
        rounds,
        reset=lambda: shutil.rmtree(dest, ignore_errors=True),
    )
    rows.append(
        Row(f"S3 get_tree {label}", ours, base / ours, note.format(mib / ours, mib / base), "≥ 0.9×", base)
    )
    store.delete_prefix("down")
    return rows


def measure(workdir: Path, *, big_mib: int = 128, small_files: int = 500, rounds: int = 3) -> list[Row]:
    from tests.support.seaweed import SeaweedServer, make_bucket
    from valohai_airflow.store.s3 import S3Store

    server = SeaweedServer()
    rows: list[Row] = []
    try:
        endpoint = server.start()
        make_bucket(endpoint, BUCKET)
        store = S3Store(
            BUCKET,
            endpoint_url=endpoint.endpoint_url,
            access_key=endpoint.access_key,
            secret_key=endpoint.secret_key,
            region_name=endpoint.region,
        )
        cases: tuple[tuple[str, Callable[[Path], None]], ...] = (
            (f"1 file of {big_mib} MiB", lambda root: write_big(root, big_mib)),
            (f"{small_files:,} files of 10 KiB", lambda root: write_small(root, small_files)),
        )
        for label, make in cases:
            work = workdir / "s3"
            src = work / "outputs"
            make(src)
            try:
                rows += _rows(label, store, src, work, rounds)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    finally:
        server.stop()
    return rows
