"""Writing a file so that a concurrent reader sees the old one or the new one, never half of either.

The bytes go to a temp file beside the destination (same folder: same filesystem, so the rename is
atomic) that replaces it only when everything went well; on any failure, an interrupt included, the
temp file is removed and the error goes on. Temp files start with TEMP_PREFIX, so listings that
must not show them can tell them apart.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

TEMP_PREFIX = ".vh-tmp-"


@contextlib.contextmanager
def replacing(dest: Path) -> Iterator[Path]:
    """A new empty file beside `dest` (mode 0600) to fill, which then replaces `dest`. The caller
    may also remove it and put a file of its own (a hard link) under that name."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=dest.parent)
    os.close(fd)
    temp = Path(name)
    try:
        yield temp
        os.replace(temp, dest)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_bytes(dest: Path, data: bytes) -> None:
    with replacing(dest) as temp:
        temp.write_bytes(data)
