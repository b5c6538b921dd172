"""An ArtifactStore on any S3 endpoint (AWS, MinIO, SeaweedFS, ...) through boto3.

Big files go through boto3's transfer manager (multipart above `multipart_threshold`, parts in
parallel up to `max_concurrency`); a tree of many small files is submitted to one transfer
manager, whose bounded thread pool uploads them concurrently. A PUT (or a completed multipart
upload) is atomic on S3, so readers never see half an object. Credentials come from boto3's
default chain unless given explicitly.
"""

from __future__ import annotations

import hashlib
import os
import stat
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

import boto3
from boto3.s3.transfer import S3Transfer, TransferConfig, create_transfer_manager
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError
from s3transfer.subscribers import BaseSubscriber

from valohai_airflow import atomic
from valohai_airflow.store.base import (
    SMALL_OBJECT_LIMIT,
    ArtifactStore,
    ObjectExistsError,
    ObjectNotFoundError,
    StoredObject,
    StoreError,
    normalize_key,
    relative_files,
    tree_key,
)

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

MiB = 1024 * 1024
_NOT_FOUND_CODES = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}


def parse_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` → (`bucket`, `some/prefix`)."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise StoreError(f"not an S3 URL: {url!r} (expected s3://bucket/prefix)")
    return parsed.netloc, normalize_key(urllib.parse.unquote(parsed.path).lstrip("/"), allow_empty=True)


class _Listed(BaseSubscriber):
    """Gives the transfer manager an object's size and ETag from the listing, so it makes no
    HeadObject request of its own before the GETs; the ETag goes into every ranged GET of a
    multipart download as If-Match, so an object replaced meanwhile fails the download instead
    of mixing two versions (as after a HeadObject)."""

    def __init__(self, size: int, etag: str) -> None:
        self.size, self.etag = size, etag

    def on_queued(self, future: Any, **kwargs: Any) -> None:
        future.meta.provide_transfer_size(self.size)
        future.meta.provide_object_etag(self.etag)


class _HashingWriter:
    """A write-only, non-seekable download target that hashes what it writes, in order."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self._fh.write(data)

    def seekable(self) -> bool:
        return False


class _HashingReader:
    """A read-only, non-seekable upload source that hashes what it hands out. The transfer manager
    reads such a source once, front to back, and keeps each part in memory until it is sent (a
    retry resends those bytes), so the sha256 is of exactly the bytes uploaded. The file is opened
    at the first read and closed at its end, so a tree of many files holds few open at once; a
    symlink is refused, never followed (as LocalStore.put_hashed does)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.digest = hashlib.sha256()
        self.size = 0
        self.error: OSError | None = None  # why the file could not be read (not an upload failure)
        self._fh: BinaryIO | None = None
        self._ended = False

    def read(self, amount: int = -1) -> bytes:
        if self._ended:
            return b""
        try:
            data = self._read(amount)
        except OSError as exc:
            self.error = exc
            self.close()
            raise
        self.digest.update(data)
        self.size += len(data)
        if amount < 0 or len(data) < amount:  # a regular file reads short only at its end
            self.close()
        return data

    def _read(self, amount: int) -> bytes:
        if self._fh is None:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            self._fh = os.fdopen(fd, "rb")  # buffered: read(n) returns n bytes unless at the end
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(f"{self.path} is not a regular file")
        return self._fh.read(amount)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self._ended = True
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class S3Store(ArtifactStore):
    """An ArtifactStore rooted at `s3://bucket/prefix`."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        session_token: str | None = None,
        profile_name: str | None = None,
        client: S3Client | None = None,
        multipart_threshold: int = 8 * MiB,
        multipart_chunksize: int = 8 * MiB,
        max_concurrency: int = 10,
        addressing_style: Literal["auto", "virtual", "path"] = "path",
    ) -> None:
        self.bucket = bucket
        self.prefix = normalize_key(prefix, allow_empty=True)
        if client is None:
            session = boto3.session.Session(
                aws_access_key_id=access_key,
                aws_secret_access_key=secret_key,
                aws_session_token=session_token,
                region_name=region_name,
                profile_name=profile_name,
            )
            client = session.client(
                "s3",
                endpoint_url=endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or None,
                config=BotoConfig(
                    s3={"addressing_style": addressing_style},
                    max_pool_connections=max(10, max_concurrency * 2),
                    retries={"max_attempts": 5, "mode": "standard"},
                ),
            )
        self.client: S3Client = client
        self.transfer_config = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=multipart_chunksize,
            max_concurrency=max_concurrency,
            use_threads=True,
        )
        # the stubs type `config` as s3transfer's own Config, which TransferConfig extends at run time
        self.transfer = S3Transfer(client=self.client, config=self.transfer_config)  # type: ignore[arg-type]

    @classmethod
    def from_url(cls, url: str, **opts: Any) -> S3Store:
        bucket, prefix = parse_s3_url(url)
        return cls(bucket, prefix, **opts)

    def __repr__(self) -> str:
        return f"S3Store({self.url!r})"

    @property
    def local_root(self) -> None:
        return None

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def _full(self, key: str, *, allow_empty: bool = False) -> str:
        key = normalize_key(key, allow_empty=allow_empty)
        if not self.prefix:
            return key
        return f"{self.prefix}/{key}" if key else self.prefix

    def _rel(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix else full_key

    def _full_uri(self, full_key: str) -> str:
        """Keys are percent-quoted in URLs, so `parse_s3_url` (and an input URL) gives them back exactly."""
        return f"s3://{self.bucket}/{urllib.parse.quote(full_key, safe='/')}"

    def uri(self, key: str) -> str:
        return self._full_uri(self._full(key))

    def key_for_uri(self, uri: str) -> str | None:
        try:
            bucket, full = parse_s3_url(uri)
        except StoreError:
            return None
        if bucket != self.bucket or not full:
            return None
        if self.prefix:
            if not full.startswith(self.prefix + "/"):
                return None
            return self._rel(full)
        return full

    def _fail(self, exc: Exception, key: str, action: str) -> StoreError:
        uri = self._full_uri(key)
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _NOT_FOUND_CODES:
                return ObjectNotFoundError(uri, code)
            return StoreError(f"S3 {action} of {uri} failed: {code}: {exc}")
        return StoreError(f"S3 {action} of {uri} failed: {exc}")

    def put_file(self, local: Path, key: str) -> StoredObject:
        full = self._full(key)
        local = Path(local)
        if not local.is_file():
            raise StoreError(f"cannot store {local}: not a regular file")
        try:
            self.transfer.upload_file(str(local), self.bucket, full)
        except (ClientError, BotoCoreError, OSError) as exc:
            raise self._fail(exc, full, "upload") from exc
        return StoredObject(key=self._rel(full), size=local.stat().st_size, uri=self.uri(self._rel(full)))

    def put_tree(
        self, local_dir: Path, prefix: str, files: Sequence[str] | None = None
    ) -> list[StoredObject]:
        prefix = normalize_key(prefix, allow_empty=True)
        local_dir = Path(local_dir)
        rels = relative_files(local_dir, files)
        keys = [tree_key(prefix, rel) for rel in rels]
        with create_transfer_manager(self.client, self.transfer_config) as manager:
            futures = [
                (key, manager.upload(str(local_dir / rel), self.bucket, self._full(key)))
                for rel, key in zip(rels, keys, strict=True)
            ]
            errors: list[StoreError] = []
            for key, future in futures:
                try:
                    future.result()
                except (ClientError, BotoCoreError, OSError) as exc:
                    errors.append(self._fail(exc, self._full(key), "upload"))
        if errors:
            raise StoreError(f"{len(errors)} of {len(keys)} uploads failed; first: {errors[0]}")
        return [
            StoredObject(key=key, size=(local_dir / rel).stat().st_size, uri=self.uri(key))
            for rel, key in zip(rels, keys, strict=True)
        ]

    def put_files_hashed(
        self, sources: Mapping[str, Path]
    ) -> dict[str, tuple[StoredObject, int, str] | OSError]:
        """Upload each key's local file, all through one transfer manager like `put_tree`, and
        give each key the object with the size and sha256 of the bytes uploaded (hashed as the
        manager reads them: one read of each file), or the OSError that kept its file from being
        read (it is not stored). StoreError: an upload failed."""
        readers = {key: _HashingReader(Path(path)) for key, path in sources.items()}
        errors: list[StoreError] = []
        out: dict[str, tuple[StoredObject, int, str] | OSError] = {}
        try:
            with create_transfer_manager(self.client, self.transfer_config) as manager:
                # any object with read() will do; the stubs ask for IO
                futures = {
                    key: manager.upload(reader, self.bucket, self._full(key))  # type: ignore[arg-type]
                    for key, reader in readers.items()
                }
                for key, future in futures.items():
                    reader = readers[key]
                    try:
                        future.result()
                    except (ClientError, BotoCoreError, OSError) as exc:
                        if reader.error is not None:
                            out[key] = reader.error
                        else:
                            errors.append(self._fail(exc, self._full(key), "upload"))
                        continue
                    obj = StoredObject(key=self._rel(self._full(key)), size=reader.size, uri=self.uri(key))
                    out[key] = (obj, reader.size, reader.digest.hexdigest())
        finally:
            for reader in readers.values():
                reader.close()
        if errors:
            raise StoreError(f"{len(errors)} of {len(readers)} uploads failed; first: {errors[0]}")
        return out

    def put_bytes(self, data: bytes, key: str) -> StoredObject:
        full = self._full(key)
        try:
            self.client.put_object(Bucket=self.bucket, Key=full, Body=data)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, full, "upload") from exc
        return StoredObject(key=self._rel(full), size=len(data), uri=self.uri(self._rel(full)))

    def create_bytes(self, data: bytes, key: str) -> StoredObject:
        """A conditional PUT (`If-None-Match: *`): S3 and SeaweedFS answer 412 when the key exists,
        and of two racing PUTs one gets 412 (409 ConditionalRequestConflict on AWS: also "taken")."""
        full = self._full(key)
        try:
            self.client.put_object(Bucket=self.bucket, Key=full, Body=data, IfNoneMatch="*")
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise ObjectExistsError(self._full_uri(full)) from None
            raise self._fail(exc, full, "upload") from exc
        except BotoCoreError as exc:
            raise self._fail(exc, full, "upload") from exc
        return StoredObject(key=self._rel(full), size=len(data), uri=self.uri(self._rel(full)))

    def _list_full(self, full_prefix: str) -> list[tuple[str, int, str]]:
        """(full key, size, ETag) of every object under the prefix."""
        paginator = self.client.get_paginator("list_objects_v2")
        out: list[tuple[str, int, str]] = []
        search = f"{full_prefix}/" if full_prefix else ""
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=search):
                for item in page.get("Contents", []):
                    out.append((item["Key"], int(item.get("Size", 0)), str(item.get("ETag", ""))))
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, search, "listing") from exc
        return out

    def _listing(self, prefix: str) -> list[tuple[StoredObject, str]]:
        """The objects under `prefix` with their ETags, sorted by key."""
        full_prefix = self._full(prefix, allow_empty=True)
        objects = [
            (StoredObject(key=self._rel(k), size=size, uri=self._full_uri(k)), etag)
            for k, size, etag in self._list_full(full_prefix)
            if not k.endswith("/")
        ]
        return sorted(objects, key=lambda o: o[0].key)

    def list_prefix(self, prefix: str = "") -> list[StoredObject]:
        return [obj for obj, _etag in self._listing(prefix)]

    def exists(self, key: str) -> bool:
        full = self._full(key)
        try:
            self.client.head_object(Bucket=self.bucket, Key=full)
        except ClientError as exc:
            err = self._fail(exc, full, "lookup")
            if isinstance(err, ObjectNotFoundError):
                return False
            raise err from exc
        return True

    def head(self, key: str) -> dict[str, Any]:
        """Size, ETag and Last-Modified of one object (for download-cache validators)."""
        full = self._full(key)
        try:
            meta = self.client.head_object(Bucket=self.bucket, Key=full)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, full, "lookup") from exc
        return {
            "size": int(meta.get("ContentLength", 0)),
            "etag": str(meta.get("ETag", "")),
            "last_modified": str(meta.get("LastModified", "")),
        }

    def get_file(self, key: str, dest: Path) -> Path:
        full = self._full(key)
        dest = Path(dest)
        try:
            with atomic.replacing(dest) as tmp:
                self.transfer.download_file(self.bucket, full, str(tmp))
        except (ClientError, BotoCoreError, OSError) as exc:
            raise self._fail(exc, full, "download") from exc
        return dest

    def get_file_hashed(self, key: str, dest: Path, known: dict[str, Any] | None = None) -> str:
        """`get_file` that returns the sha256 of the bytes it wrote, hashed as they arrive (no second
        read of the file): a target that cannot seek gets its parts from the transfer manager in
        order (parts that arrive early wait in memory). `known` is a `head()` of the object, which
        spares the manager its own HeadObject."""
        full = self._full(key)
        dest = Path(dest)
        subscribers = [_Listed(int(known["size"]), str(known["etag"]))] if known and known.get("etag") else []
        try:
            with atomic.replacing(dest) as tmp, open(tmp, "wb") as fh:
                target = _HashingWriter(fh)
                with create_transfer_manager(self.client, self.transfer_config) as manager:
                    # any object with write() will do; the stubs ask for IO
                    manager.download(self.bucket, full, target, subscribers=subscribers).result()  # type: ignore[arg-type]
        except (ClientError, BotoCoreError, OSError) as exc:
            raise self._fail(exc, full, "download") from exc
        return target.digest.hexdigest()

    def get_tree(self, prefix: str, dest_dir: Path) -> list[Path]:
        """One transfer manager for the whole tree, like put_tree: many small objects download
        concurrently, a big one in parallel ranged GETs. Each object is requested with the size and
        ETag its listing gave (no HeadObject per object) and lands in the manager's own temp name
        beside `dest`, renamed into place when complete (a failed one is removed)."""
        prefix = normalize_key(prefix, allow_empty=True)
        listed = self._listing(prefix)
        if not listed:
            raise ObjectNotFoundError(self.uri(prefix) if prefix else self.url, "empty prefix")
        pending: list[tuple[str, Path, Any]] = []
        errors: list[StoreError] = []
        with create_transfer_manager(self.client, self.transfer_config) as manager:
            for obj, etag in listed:
                rel = obj.key[len(prefix) + 1 :] if prefix else obj.key
                dest = Path(dest_dir) / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                full = self._full(obj.key)
                subscribers = [_Listed(obj.size, etag)] if etag else []
                future = manager.download(self.bucket, full, str(dest), subscribers=subscribers)
                pending.append((full, dest, future))
            for full, _dest, future in pending:
                try:
                    future.result()
                except (ClientError, BotoCoreError, OSError) as exc:
                    errors.append(self._fail(exc, full, "download"))
        if errors:
            raise errors[0]  # as before: the first failure, keeping its type (ObjectNotFoundError)
        return [dest for _full, dest, _future in pending]

    def read_bytes(self, key: str, max_bytes: int = SMALL_OBJECT_LIMIT) -> bytes:
        full = self._full(key)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=full)
            size = int(response.get("ContentLength", 0))
            if size > max_bytes:
                response["Body"].close()
                raise StoreError(f"{self.uri(key)} is {size} bytes, more than the {max_bytes} allowed here")
            return response["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, full, "read") from exc

    def delete_prefix(self, prefix: str) -> int:
        full = self._full(prefix)
        keys = [k for k, _size, _etag in self._list_full(full)]
        try:
            self.client.head_object(Bucket=self.bucket, Key=full)
            keys.append(full)
        except ClientError:
            pass
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            try:
                self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                )
            except (ClientError, BotoCoreError) as exc:
                raise self._fail(exc, full, "delete") from exc
        return len(keys)
