"""Reading a valohai.yaml or sidecar from disk without letting the entry hang or flood the reader.

Anyone who can write to the dags folder can put anything there under these names: a FIFO (an open
for reading waits for a writer, a read for data), a link to `/dev/zero` (a read never ends), a
sparse file of gigabytes. The file is opened non-blocking, its kind and size are checked on the
opened descriptor (no window for a swap between a check and the open), and at most one byte more
than the cap is read, so a file that grows while it is read is refused too.
"""

from __future__ import annotations

import os
import stat

from valohai_airflow.spec.diagnostics import Diagnostic, Location, Severity, ValohaiSpecError
from valohai_airflow.spec.yaml_loader import MAX_BYTES

_CHUNK = 1 << 20
_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)


def read_source(path: str | os.PathLike[str]) -> bytes:
    """The bytes of the regular file at `path` (links followed), at most MAX_BYTES of them.

    Anything else raises ValohaiSpecError naming the file: not a regular file, too large, unreadable."""
    data = _read(path, missing_ok=False)
    assert data is not None
    return data


def read_optional_source(path: str | os.PathLike[str]) -> bytes | None:
    """As read_source, but None when there is no file (an optional sidecar: one failed open)."""
    return _read(path, missing_ok=True)


def _read(path: str | os.PathLike[str], *, missing_ok: bool) -> bytes | None:
    filename = os.fspath(path)
    try:
        fd = os.open(filename, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        if missing_ok and isinstance(exc, FileNotFoundError):
            return None
        raise _error(filename, f"cannot read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a regular file")
            raise _error(
                filename,
                f"is {kind}, not a regular file; valohai-airflow reads only regular files "
                "(reading this one could block or never end)",
            )
        if info.st_size > MAX_BYTES:
            raise _error(filename, _too_large(info.st_size))
        chunks: list[bytes] = []
        left = MAX_BYTES + 1
        while left > 0 and (chunk := os.read(fd, min(left, _CHUNK))):
            chunks.append(chunk)
            left -= len(chunk)
        if left <= 0:
            raise _error(filename, _too_large(None))
        return b"".join(chunks)
    except OSError as exc:
        raise _error(filename, f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def _too_large(size: int | None) -> str:
    what = f"is {size:,} bytes" if size is not None else "grew past the limit while it was read"
    return f"file {what}; valohai-airflow reads at most {MAX_BYTES:,} bytes (10 MiB) of it"


def _error(filename: str, message: str) -> ValohaiSpecError:
    return ValohaiSpecError([Diagnostic(Severity.ERROR, message, Location(filename))])
