"""Run time confinement: where input destinations land, and what run-conf inputs may reach.

Real parts: real files and symlinks, a real HTTP server on 127.0.0.1, real name resolution of
`localhost`. Every refusal is also checked to happen before any connection, through Python's own
`socket.connect` audit events (not by mocking sockets). The one mock is the DNS-rebinding test's
`getaddrinfo`: a name server that answers differently on the second question cannot be run here.
No traffic goes to private-range addresses: those literals are refused by the check.
"""

from __future__ import annotations

import dataclasses
import http.server
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.plan.support import compile_text
from valohai_airflow.runtime.confinement import (
    ConfinementError,
    InputPolicy,
    confined,
    parse_networks,
    parse_roots,
)
from valohai_airflow.runtime.execution import ExecutionError, ExecutionRequest, PreparedExecution, prepare
from valohai_airflow.runtime.ids import ExecutionKey
from valohai_airflow.runtime.inputs import DownloadCache, InputSource, materialise_input
from valohai_airflow.store import LocalStore
from valohai_airflow.store.resolver import StoreResolver

YAML = """\
- step:
    name: train
    image: busybox
    command: ls
    inputs:
      - {name: data, default: data.csv}
- pipeline:
    name: p
    nodes:
      - {name: train, type: execution, step: train}
    edges: []
"""

_connects: list[Any] | None = None  # socket.connect audit events while a test records them


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect" and _connects is not None:
        _connects.append(args[1])


sys.addaudithook(_audit)  # audit hooks cannot be removed; this one records only while asked to


@pytest.fixture
def connects() -> Iterator[list[Any]]:
    global _connects
    _connects = []
    try:
        yield _connects
    finally:
        _connects = None


class _Server(http.server.ThreadingHTTPServer):
    requests: int = 0
    redirect_to: str = ""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, _Server]]:
    """`/data.csv` on 127.0.0.1, and `/redirect.csv` answering 302 to `server.redirect_to`."""
    root = tmp_path / "served"
    root.mkdir()
    (root / "data.csv").write_text("served,1\n")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def do_HEAD(self) -> None:
            self._count_or_redirect() or super().do_HEAD()

        def do_GET(self) -> None:
            self._count_or_redirect() or super().do_GET()

        def _count_or_redirect(self) -> bool:
            httpd.requests += 1
            if self.path != "/redirect.csv":
                return False
            self.send_response(302)
            self.send_header("Location", httpd.redirect_to)
            self.end_headers()
            return True

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = _Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}", httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "data").mkdir(parents=True)
    (root / "data.csv").write_text("project,1\n")
    (root / "data" / "a.csv").write_text("a\n")
    return root


def run(
    tmp_path: Path, project: Path, value: Any, policy: InputPolicy | None = None, node: Any = None
) -> PreparedExecution:
    plan = compile_text(YAML).pipelines[0]
    return prepare(
        ExecutionRequest(
            key=ExecutionKey("proj__p", "run1", "train"),
            project_name="proj",
            project_root=project,
            pipeline=plan,
            node=node or plan.node("train"),
            conf={} if value is None else {"train.input.data": value},
            upstream={},
            stores=StoreResolver(LocalStore(tmp_path / "store")),
            work_base=tmp_path / "work",
            cache=DownloadCache(tmp_path / "cache"),
            input_policy=policy or InputPolicy(),
        )
    )


def files_of(prepared: PreparedExecution) -> dict[str, str]:
    folder = prepared.workdir.inputs / "data"
    return {p.relative_to(folder).as_posix(): p.read_text() for p in folder.rglob("*") if p.is_file()}


# --- run-conf values that reach the worker ---------------------------------------------------------


LOCAL_ATTEMPTS = [
    "/etc/shadow",
    "/etc/no-such-file-here",  # refused alike: a refusal does not tell whether a file exists
    "file:///root/.ssh/id_rsa",
    "../..",
    "data/../../../etc/passwd",
    "/etc",  # a directory: every file below it
    "/etc/*.conf",
    "link-to-passwd",  # a symlink inside the project leading out of it
]


@pytest.mark.parametrize("value", LOCAL_ATTEMPTS)
def test_run_conf_local_paths_outside_the_allowed_folders_are_refused(
    tmp_path: Path, project: Path, value: str, connects: list[Any]
) -> None:
    (project / "link-to-passwd").symlink_to("/etc/passwd")
    with pytest.raises(ExecutionError) as raised:
        run(tmp_path, project, value)
    message = str(raised.value)
    assert message.startswith("node 'train': input 'data': local path "), message
    assert "is outside the folders inputs may read" in message and "[valohai] input_roots" in message, message
    assert str(project) in message and "not found" not in message, message
    inputs = tmp_path / "work" / "proj__p" / "run1" / "train"
    assert [p for p in inputs.rglob("inputs/**/*") if p.is_file()] == []
    assert connects == []


def _network_attempts(address: str) -> list[str]:
    port = address.rpartition(":")[2]
    return [
        f"http://{address}/data.csv",
        f"http://localhost:{port}/data.csv",  # a name resolving to loopback
        f"http://[::ffff:127.0.0.1]:{port}/data.csv",  # loopback spelt as IPv4-mapped IPv6
        "http://169.254.169.254/latest/meta-data/credentials",  # link-local (cloud metadata)
        "https://10.1.2.3/data.csv",  # private literals: refused by the check, never contacted
        "http://192.168.0.1/data.csv",
        "http://0.0.0.0/data.csv",
    ]


def test_run_conf_urls_to_non_public_addresses_are_refused_before_connecting(
    tmp_path: Path, project: Path, server: tuple[str, _Server], connects: list[Any]
) -> None:
    address, httpd = server
    for url in _network_attempts(address):
        with pytest.raises(ExecutionError) as raised:
            run(tmp_path, project, url)
        message = str(raised.value)
        assert message.startswith("node 'train': input 'data': "), message
        assert "address; inputs may only be fetched from public addresses" in message, message
        assert "[valohai] input_private_networks" in message, message
    assert httpd.requests == 0
    assert connects == []


def test_a_redirect_to_a_refused_address_is_refused(
    tmp_path: Path, project: Path, server: tuple[str, _Server], connects: list[Any]
) -> None:
    address, httpd = server
    httpd.redirect_to = f"http://127.0.0.2:{address.rpartition(':')[2]}/data.csv"
    policy = InputPolicy(private_networks=parse_networks("127.0.0.1/32"))
    with pytest.raises(ExecutionError, match=r"127\.0\.0\.2 is a loopback address"):
        run(tmp_path, project, f"http://{address}/redirect.csv", policy)
    assert all(sockaddr[0] == "127.0.0.1" for sockaddr in connects), connects


def test_a_name_that_resolves_elsewhere_at_connection_time_is_refused(
    tmp_path: Path, project: Path, server: tuple[str, _Server], connects: list[Any], monkeypatch: Any
) -> None:
    """DNS rebinding: the check sees a public address, the connection would go to loopback."""
    address, httpd = server
    port = int(address.rpartition(":")[2])
    answers = iter(["93.184.215.14", "127.0.0.1", "127.0.0.1", "127.0.0.1"])
    real = socket.getaddrinfo

    def rebinding(host: Any, *args: Any, **kwargs: Any) -> Any:
        return (
            real(next(answers), *args, **kwargs) if host == "rebind.invalid" else real(host, *args, **kwargs)
        )

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with pytest.raises(ExecutionError, match=r"rebind\.invalid \(127\.0\.0\.1\) is a loopback address"):
        run(tmp_path, project, f"http://rebind.invalid:{port}/data.csv")
    assert httpd.requests == 0 and connects == []


# --- what stays allowed -----------------------------------------------------------------------------


def test_project_paths_store_uris_input_roots_and_allowed_networks_still_work(
    tmp_path: Path, project: Path, server: tuple[str, _Server], connects: list[Any]
) -> None:
    address, httpd = server
    assert files_of(run(tmp_path, project, None)) == {"data.csv": "project,1\n"}  # the default
    assert files_of(run(tmp_path, project, "data")) == {"a.csv": "a\n"}  # a folder of the project
    assert files_of(run(tmp_path, project, str(project / "data.csv"))) == {"data.csv": "project,1\n"}
    stored = LocalStore(tmp_path / "store").put_bytes(b"stored\n", "other/run/outputs/s.csv")
    assert files_of(run(tmp_path, project, stored.uri)) == {"s.csv": "stored\n"}
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "big.csv").write_text("shared\n")
    roots = InputPolicy(roots=parse_roots(f"{tmp_path / 'elsewhere'}, {shared}"))
    assert files_of(run(tmp_path, project, (shared / "big.csv").as_uri(), roots)) == {"big.csv": "shared\n"}
    loopback = InputPolicy(private_networks=parse_networks("127.0.0.0/8, ::1"))
    assert files_of(run(tmp_path, project, f"http://{address}/data.csv", loopback)) == {
        "data.csv": "served,1\n"
    }
    httpd.redirect_to = f"http://localhost:{address.rpartition(':')[2]}/data.csv"  # allowed, so followed
    assert files_of(run(tmp_path, project, f"http://{address}/redirect.csv", loopback)) == {
        "redirect.csv": "served,1\n"
    }
    assert httpd.requests >= 4  # HEAD and GET each
    assert connects and {sockaddr[0] for sockaddr in connects} <= {"127.0.0.1"}  # the pinned address


# --- destinations -----------------------------------------------------------------------------------


def test_an_escaping_filename_is_refused_at_run_time_and_nothing_is_written(
    tmp_path: Path, project: Path
) -> None:
    """Defence in depth: a plan whose filename slipped past the spec is refused by the runtime."""
    plan = compile_text(YAML).pipelines[0]
    node = plan.node("train")
    assert node.step is not None
    bad = node.step.inputs[0].model_copy(update={"filename": "../../../../anywhere/x"})
    node = dataclasses.replace(node, step=node.step.model_copy(update={"inputs": (bad,)}))
    with pytest.raises(ExecutionError) as raised:
        run(tmp_path, project, None, node=node)
    assert str(raised.value) == (
        "node 'train': input 'data': '../../../../anywhere/x' contains '..'; it must stay inside its folder"
    )
    assert not (tmp_path / "work" / "proj__p" / "anywhere").exists()
    assert [p for p in tmp_path.rglob("x") if p.is_file()] == []


def test_a_symlink_inside_the_inputs_folder_is_not_followed_out(tmp_path: Path) -> None:
    inputs, outside = tmp_path / "inputs", tmp_path / "outside"
    (inputs / "data").mkdir(parents=True)
    outside.mkdir()
    (inputs / "data" / "sub").symlink_to(outside)
    source = tmp_path / "f.csv"
    source.write_text("x\n")
    with pytest.raises(ConfinementError, match=r"leads out of .* through a symlink"):
        materialise_input(
            "data",
            [InputSource(str(source))],
            inputs,
            DownloadCache(tmp_path / "cache"),
            filename="sub/f.csv",
        )
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("name", ["../escape", "/etc", "..", "a/../../b"])
def test_an_input_name_that_leaves_the_inputs_folder_is_refused(tmp_path: Path, name: str) -> None:
    source = tmp_path / "f.csv"
    source.write_text("x\n")
    with pytest.raises(ConfinementError):
        materialise_input(
            name, [InputSource(str(source))], tmp_path / "w" / "inputs", DownloadCache(tmp_path / "c")
        )
    assert not (tmp_path / "escape").exists() and not (tmp_path / "b").exists()


def test_confined_accepts_paths_below_the_folder(tmp_path: Path) -> None:
    assert confined(tmp_path, "a/./b//c.csv") == tmp_path / "a/./b//c.csv"


def test_config_values_are_parsed_or_refused_clearly() -> None:
    assert [str(n) for n in parse_networks("127.0.0.0/8, 10.1.2.3 ::1")] == [
        "127.0.0.0/8",
        "10.1.2.3/32",
        "::1/128",
    ]
    with pytest.raises(ValueError, match="'localhost' is not an IP network"):
        parse_networks("localhost")
    assert parse_roots(" /data , /mnt/x,") == (Path("/data"), Path("/mnt/x"))
    with pytest.raises(ValueError, match="'data' is not an absolute folder"):
        parse_roots("data")


def test_a_symlink_as_the_file_itself_is_replaced_not_written_through(tmp_path: Path) -> None:
    inputs, outside = tmp_path / "inputs", tmp_path / "outside.csv"
    (inputs / "data").mkdir(parents=True)
    outside.write_text("untouched\n")
    (inputs / "data" / "f.csv").symlink_to(outside)
    source = tmp_path / "f.csv"
    source.write_text("new\n")
    materialise_input("data", [InputSource(str(source))], inputs, DownloadCache(tmp_path / "cache"))
    assert not (inputs / "data" / "f.csv").is_symlink() and (inputs / "data" / "f.csv").read_text() == "new\n"
    assert outside.read_text() == "untouched\n"


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for `localhost` (and its key), made with `cryptography` (an Airflow dependency)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


def test_https_through_the_pinned_address_still_verifies_the_host_name(
    tmp_path: Path, project: Path, server: tuple[str, _Server], connects: list[Any], monkeypatch: Any
) -> None:
    """The guard connects to the checked IP; TLS still sends and verifies the name (`localhost`)."""
    import ssl

    address, httpd = server
    cert_file, key_file = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))  # the worker trusts this certificate
    port = address.rpartition(":")[2]
    loopback = InputPolicy(private_networks=parse_networks("127.0.0.0/8, ::1"))
    got = run(tmp_path, project, f"https://localhost:{port}/data.csv", loopback)
    assert files_of(got) == {"data.csv": "served,1\n"}
    assert connects and {sockaddr[0] for sockaddr in connects} <= {"127.0.0.1", "::1"}
    with pytest.raises(ExecutionError) as raised:
        run(tmp_path, project, f"https://127.0.0.1:{port}/data.csv", loopback)  # not the certificate's name
    assert "CERTIFICATE_VERIFY_FAILED" in str(raised.value) and "127.0.0.1" in str(raised.value), raised.value
