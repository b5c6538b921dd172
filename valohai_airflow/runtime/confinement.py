"""What a value from valohai.yaml or a run conf may reach on the worker (docs/security.md).

Three checks, each made before anything is read, written or connected to:
- a destination (an input's folder, its `filename`, a keep-directories or edge-staged name) must
  resolve inside its folder, also through symlinks already on disk (`confined`);
- a local source (a path or `file://` URL) must resolve inside the allowed roots: the project
  folder, a local store, and the `[valohai] input_roots` the Airflow admin configures
  (`InputPolicy.check_local`). The check comes before any existence test, so a refused path does
  not tell whether it exists;
- an `http(s)` source must resolve to public addresses only, unless `[valohai]
  input_private_networks` lists the network. Every address the name resolves to is checked, and the
  connection is made to the checked address (`InputPolicy.opener`), so a name that resolves again
  to another address between the check and the connection (DNS rebinding) or a redirect to a
  private address is refused too. Through a configured HTTP proxy the proxy resolves the name: then
  only the check before the request applies.
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import os
import socket
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from valohai_airflow.errors import ValohaiAirflowError
from valohai_airflow.spec.paths import escape_problem

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class ConfinementError(ValohaiAirflowError):
    """A path or URL that would reach outside what its giver may reach; refused before any access."""


class Destinations:
    """Paths below one folder, refused when their text leaves it or a symlink on the way leads out.

    Only the folders on the way are resolved (a symlink as the last part is replaced by the file,
    never written through), each once: a folder input of 10,000 files resolves its few folders."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._real = self.root.resolve()
        self._checked: set[Path] = set()

    def __call__(self, relative: str) -> Path:
        problem = escape_problem(relative)
        if problem:
            raise ConfinementError(f"{relative!r} {problem}")
        path = self.root / relative
        parent = path.parent
        if parent not in self._checked:
            if not parent.resolve().is_relative_to(self._real):
                raise ConfinementError(f"{relative!r} leads out of {self.root} through a symlink")
            self._checked.add(parent)
        return path


def confined(root: Path, relative: str) -> Path:
    """`root/relative` for one path (`Destinations` for many)."""
    return Destinations(root)(relative)


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """`127.0.0.0/8, 10.1.0.0/16, ::1` (commas or spaces) → networks; ValueError names a bad entry."""
    networks = []
    for item in text.replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as error:
            raise ValueError(f"{item!r} is not an IP network (write e.g. 127.0.0.0/8 or 10.1.2.3)") from error
    return tuple(networks)


def parse_roots(text: str) -> tuple[Path, ...]:
    """`/data, /mnt/shared` (commas, or the OS path separator) → absolute folders; relative ones are refused."""
    roots = []
    for item in text.replace(os.pathsep, ",").split(","):
        item = item.strip()
        if not item:
            continue
        path = Path(item).expanduser()
        if not path.is_absolute():
            raise ValueError(f"{item!r} is not an absolute folder")
        roots.append(path)
    return tuple(roots)


def _kind(address: IPAddress) -> str | None:
    """What makes `address` non-public, or None for a public address."""
    for name, flag in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("unspecified", address.is_unspecified),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    ):
        if flag:
            return name
    return None if address.is_global else "non-public"


@dataclass(frozen=True)
class InputPolicy:
    """Where input URLs from a run conf, the trigger form or a valohai.yaml default may lead."""

    roots: tuple[
        Path, ...
    ] = ()  # local folders inputs may read, besides the project folder and a local store
    private_networks: tuple[IPNetwork, ...] = ()  # non-public networks http(s) inputs may reach

    def with_roots(self, *roots: Path) -> InputPolicy:
        return InputPolicy((*roots, *self.roots), self.private_networks)

    @functools.cached_property
    def _real_roots(self) -> tuple[Path, ...]:
        """The roots with their symlinks resolved, once (a folder input checks every file)."""
        return tuple(root.resolve() for root in self.roots)

    # -- local files -------------------------------------------------------------------------------

    def check_local(self, path: Path) -> Path:
        """The real path of `path` (symlinks resolved) when it lies inside a root; else refused."""
        real = Path(path).resolve()
        if any(real.is_relative_to(root) for root in self._real_roots):
            return real
        allowed = ", ".join(str(r) for r in self.roots) or "none"
        raise ConfinementError(
            f"local path {str(path)!r} is outside the folders inputs may read ({allowed}); give an "
            "s3:// or https:// URL, or ask the Airflow admin to add its folder to [valohai] input_roots"
        )

    # -- network -----------------------------------------------------------------------------------

    def check_address(self, host: str, address: IPAddress) -> None:
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        address = mapped or address
        kind = _kind(address)
        if kind is None or any(address in network for network in self.private_networks):
            return
        shown = host if host == str(address) else f"{host} ({address})"
        raise ConfinementError(
            f"{shown} is a {kind} address; inputs may only be fetched from public addresses unless "
            "[valohai] input_private_networks lists its network"
        )

    def addresses(self, host: str, port: int) -> list[tuple[Any, ...]]:
        """`getaddrinfo` for a TCP connection to host:port, every resolved address checked."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as error:
            raise ConfinementError(f"cannot resolve {host!r}: {error}") from error
        for info in infos:
            self.check_address(host, ipaddress.ip_address(str(info[4][0]).partition("%")[0]))
        return infos

    def check_url(self, url: str) -> None:
        """Refuse an http(s) URL whose host resolves to an address the policy does not allow."""
        parsed = urllib.parse.urlsplit(url)
        if not parsed.hostname:
            raise ConfinementError(f"{url!r} names no host")
        self.addresses(parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80))

    def opener(self) -> urllib.request.OpenerDirector:
        """A urllib opener whose connections go to checked addresses only (redirects included)."""
        return urllib.request.build_opener(
            _GuardedHTTPHandler(self), _GuardedHTTPSHandler(self), _CheckedRedirects(self)
        )


class _Guard(http.client.HTTPConnection):
    """Connects to an address the policy checked, not to whatever the name resolves to next."""

    def __init__(self, *args: Any, policy: InputPolicy, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._policy = policy
        self._create_connection = self._checked_connection

    def _checked_connection(
        self, address: tuple[str, int], timeout: Any = None, source_address: Any = None
    ) -> socket.socket:
        host, port = address
        error: OSError | None = None
        for family, type_, proto, _name, sockaddr in self._policy.addresses(host, port):
            sock = socket.socket(family, type_, proto)
            try:
                if timeout is not None:
                    sock.settimeout(timeout)
                if source_address:
                    sock.bind(source_address)
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                sock.close()
                error = exc
        raise error or OSError(f"no address to connect to for {host}")


class _GuardedHTTPS(_Guard, http.client.HTTPSConnection):
    pass


def _direct(request: urllib.request.Request) -> bool:
    """True unless the request goes through a proxy (whose own address is the admin's choice)."""
    return request.host == urllib.parse.unquote(urllib.parse.urlsplit(request.full_url).netloc)


class _GuardedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, policy: InputPolicy) -> None:
        super().__init__()
        self._policy = policy

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        if not _direct(req):
            return super().http_open(req)
        return self.do_open(functools.partial(_Guard, policy=self._policy), req)


class _GuardedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, policy: InputPolicy) -> None:
        super().__init__()
        self._policy = policy

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        if not _direct(req):
            return super().https_open(req)
        return self.do_open(
            functools.partial(_GuardedHTTPS, policy=self._policy),
            req,
            context=self._context,  # type: ignore[attr-defined]
            check_hostname=self._check_hostname,  # type: ignore[attr-defined]
        )


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is checked like the URL it replaces (also when a proxy makes the connection)."""

    def __init__(self, policy: InputPolicy) -> None:
        super().__init__()
        self._policy = policy

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        if urllib.parse.urlsplit(newurl).scheme.lower() not in ("http", "https"):
            raise ConfinementError(f"{req.full_url} redirects to {newurl!r}, which is not http(s)")
        self._policy.check_url(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)
