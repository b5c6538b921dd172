"""Local file primitives for staging: hashing, kernel copies and clones, and seals.

Copies are made by the kernel (a reflink, else copy_file_range) and the copy is hashed from the
page cache as it lands (`copy_hashed`), so the sha256 is of exactly the bytes stored. On this
project's 2-core machines that measured faster than hashing in user space while writing (one
read of the source, but every byte written through Python's buffers).

A **seal** records, on the file itself (the extended attribute `user.valohai-airflow.seal`), the
sha256 of its bytes together with the size and modification time (ns) they had when hashed. A
reader that finds a seal matching the file's current size and mtime can use its sha256 instead of
reading every byte again: any write through the filesystem (`write`, `truncate`, a writable mmap)
sets the mtime to the current time, and a seal is only written for bytes last modified more than
`RACY_NS` before the hash finished, so no later write can carry the sealed mtime (the "racy
clean" problem git's index has, solved the same way). Files this module writes itself get their
mtime set just before sealing, so they qualify at once.

What a seal cannot see: a change that does not go through the filesystem (bit rot on the disk,
editing the block device) and a deliberate `touch -d`/`utime` back to the sealed mtime. Callers
that must catch those read the bytes (`hash_fd`). Where the filesystem has no user xattrs
(some NFS mounts), nothing is sealed and every read hashes, as before seals existed.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import queue
import stat
import threading
import time
from collections.abc import Callable

SEAL_XATTR = "user.valohai-airflow.seal"
#: Bytes modified less than this long before they were hashed are not sealed. 2 s covers the
#: coarsest timestamp granularity in use (FAT's 2 s); ext4, xfs, btrfs and tmpfs tick in ≤ 10 ms.
RACY_NS = 2_000_000_000
_CHUNK = 1024 * 1024
_STEP = 8 * _CHUNK  # what one kernel copy call moves before the hash may follow
_FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)
#: errors meaning "this filesystem cannot do that here", after which a plain copy is right
_CANNOT = {errno.EXDEV, errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL, errno.ENOSYS, errno.EPERM}


def hash_fd(fd: int) -> tuple[int, str]:
    """Size and sha256 of an open file's bytes from its start, streamed through one reused buffer
    (what hashlib.file_digest does, counting the bytes too)."""
    digest = hashlib.sha256()
    buffer = bytearray(min(_CHUNK, os.fstat(fd).st_size + 1))  # +1: the read that sees the end
    view = memoryview(buffer)
    size = 0
    while count := os.preadv(fd, [buffer], size):
        digest.update(view[:count])
        size += count
    return size, digest.hexdigest()


def clone_or_copy(src: int, dest: int) -> None:
    """Make `dest` (an empty file) hold `src`'s bytes: a reflink where the filesystem shares
    extents (btrfs, xfs; FICLONE), else an in-kernel copy (copy_file_range, then sendfile)."""
    if not _clone(src, dest):
        _kernel_copy(src, dest, lambda _offset: None)


def copy_hashed(src: int, dest: int) -> tuple[int, str]:
    """`clone_or_copy`, then the size and sha256 of `dest`'s bytes (exactly what was stored). A big
    file is hashed while it is copied: a helper thread copies it in steps, and the caller hashes
    each finished step from the page cache (both release the GIL), so the hash costs little more
    than the copy's time on a free core."""
    if _clone(src, dest):
        return hash_fd(dest)
    if os.fstat(src).st_size < 2 * _STEP:
        _kernel_copy(src, dest, lambda _offset: None)
        return hash_fd(dest)
    copied: queue.SimpleQueue[int | BaseException] = queue.SimpleQueue()  # offsets, then -1 or an error

    def copy() -> None:
        try:
            _kernel_copy(src, dest, copied.put)
            copied.put(-1)
        except BaseException as exc:  # handed to the caller's thread
            copied.put(exc)

    thread = threading.Thread(target=copy, name="vh-copy", daemon=True)
    thread.start()
    digest = hashlib.sha256()
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    hashed = 0
    try:
        while (done := copied.get()) != -1:
            if isinstance(done, BaseException):
                raise done
            while hashed < done and (count := os.preadv(dest, [view[: min(_CHUNK, done - hashed)]], hashed)):
                digest.update(view[:count])
                hashed += count
        while count := os.preadv(dest, [buffer], hashed):  # whatever the last step left
            digest.update(view[:count])
            hashed += count
    finally:
        thread.join()
    return hashed, digest.hexdigest()


def _clone(src: int, dest: int) -> bool:
    try:
        fcntl.ioctl(dest, _FICLONE, src)
    except OSError as exc:
        if exc.errno not in _CANNOT:
            raise
        return False
    return True


def _kernel_copy(src: int, dest: int, copied: Callable[[int], object]) -> None:
    """copy_file_range in steps (sendfile where that cannot), telling `copied` each offset reached."""
    size = os.fstat(src).st_size
    offset = 0
    try:
        while offset < size and (
            done := os.copy_file_range(src, dest, min(_STEP, size - offset), offset, offset)
        ):
            offset += done
            copied(offset)
    except OSError as exc:
        if exc.errno not in _CANNOT:
            raise
        os.lseek(dest, offset, os.SEEK_SET)  # copy_file_range with offsets leaves the fd's own alone
        while offset < size and (done := os.sendfile(dest, src, offset, min(_STEP, size - offset))):
            offset += done
            copied(offset)


def _seal_text(sha256: str, st: os.stat_result) -> str:
    return f"v1 {sha256} {st.st_size} {st.st_mtime_ns}"


def seal(fd: int, sha256: str, hashed: os.stat_result) -> bool:
    """Seal an open file whose bytes, as `hashed` (its fstat before hashing) describes them, hash to
    `sha256`. Only when the file is unchanged since (size, mtime) and its bytes are older than
    RACY_NS; False when not sealed (also where xattrs are unsupported or not permitted)."""
    now = os.fstat(fd)
    if (now.st_size, now.st_mtime_ns) != (hashed.st_size, hashed.st_mtime_ns):
        return False
    if time.time_ns() - hashed.st_mtime_ns <= RACY_NS:
        return False
    try:
        os.setxattr(fd, SEAL_XATTR, _seal_text(sha256, hashed).encode())
    except OSError:
        return False
    return True


def seal_written(fd: int, sha256: str) -> bool:
    """Seal a file this process has just written and hashed (nobody else holds it yet): its mtime
    is first set to RACY_NS + 1 ns in the past, so any later write gives it another one."""
    st = os.fstat(fd)
    os.utime(fd, ns=(st.st_atime_ns, time.time_ns() - RACY_NS - 1))
    return seal(fd, sha256, os.fstat(fd))


def sealed_sha256(fd: int) -> str | None:
    """The sha256 a valid seal on this open regular file records, or None (no seal, or the file's
    size or mtime changed since it was sealed)."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        return None
    try:
        text = os.getxattr(fd, SEAL_XATTR).decode("ascii", "replace")
    except OSError:
        return None
    parts = text.split(" ")
    if len(parts) != 4 or parts[0] != "v1" or text != _seal_text(parts[1], st):
        return None
    return parts[1]
