"""s3://bucket/prefix with boto3, for any S3-compatible store (sync.s3_endpoint): the way
for offices with many boxes, on an object store they already run.

A file up to one part goes in one PUT checked by its MD5. A larger one is a multipart
upload driven here, not by boto3's upload_file (which aborts on failure): its id and parts
are kept in the catalog, so the next run asks the store which parts it holds and sends
only the rest. The object is checked after upload by size, by the multipart ETag computed
from the parts' MD5s, and by the sealed file's sha256 kept in its metadata.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from appliance.catalog import SyncItem
from appliance.config import Config
from appliance.errors import SyncError, SyncNetworkError, SyncStopError
from appliance.sync.destination import Destination, Progress
from appliance.sync.throttle import Throttle

AUTH = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
        "ExpiredToken", "403", "Forbidden"}
FULL = {"QuotaExceeded", "InsufficientStorage", "EntityTooLarge", "507"}
GONE = {"NoSuchUpload", "404"}


class S3Destination(Destination):
    """A bucket (and a prefix in it) on an S3-compatible store."""

    def __init__(self, *, bucket: str, prefix: str, endpoint: str | None, region: str | None,
                 access_key: str | None, secret_key: str | None, part_size: int) -> None:
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.endpoint, self.region = endpoint, region
        self._access, self._secret = access_key, secret_key
        self.part_size = part_size
        self.url = f"s3://{bucket}/{self.prefix}" + (f" at {endpoint}" if endpoint else "")
        self._client: Any = None

    @classmethod
    def from_config(cls, config: Config) -> S3Destination:
        """The bucket sync.destination names, with the configured endpoint and keys."""
        sync = config.sync
        parts = urlsplit(sync.destination)
        secret = None
        if sync.s3_secret_key_file:
            try:
                secret = Path(sync.s3_secret_key_file).read_text().strip()
            except OSError as e:
                raise SyncStopError(f"cannot read sync.s3_secret_key_file "
                                    f"({e.strerror})", kind="config") from None
        return cls(bucket=parts.netloc, prefix=parts.path, endpoint=sync.s3_endpoint or None,
                   region=sync.s3_region or None, access_key=sync.s3_access_key or None,
                   secret_key=secret, part_size=sync.part_mb * 1024 * 1024)

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def connect(self) -> None:
        self._client = boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name=self.region,
            aws_access_key_id=self._access, aws_secret_access_key=self._secret,
            config=BotoConfig(connect_timeout=10, read_timeout=60,
                              retries={"max_attempts": 2, "mode": "standard"},
                              s3={"addressing_style": "path"}))
        self._call("reach the bucket", self._client.head_bucket, Bucket=self.bucket)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        """One S3 call, its failure turned into what sync does about it."""
        try:
            return fn(**kwargs)
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            status = str(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            if code in AUTH or status == "403":
                raise SyncStopError(f"the office store refused the box's keys ({what}: {code}):"
                                    " check sync.s3_access_key and the secret", kind="auth") \
                    from None
            if code in FULL or status == "507":
                raise SyncStopError(f"the office store is full ({what}: {code})",
                                    kind="disk_full") from None
            if code == "NoSuchBucket":
                raise SyncStopError(f"the bucket {self.bucket} does not exist", kind="config") \
                    from None
            if code in GONE or status == "404":
                raise FileNotFoundError(code) from None
            raise SyncNetworkError(f"the office store failed to {what} ({code or status})") \
                from None
        except BotoCoreError as e:
            raise SyncNetworkError(f"cannot reach the office store to {what} ({e})") from None

    def send(self, item: SyncItem, path: Path, progress: Progress, throttle: Throttle,
             stop: threading.Event) -> bool:
        key, size = self._key(item.remote_name), path.stat().st_size
        head = self._head(key)
        if head is None:
            if size <= self.part_size:
                self._put(key, path, item, throttle)
            elif not self._multipart(key, path, size, item, progress, throttle, stop):
                return False
            head = self._head(key)
        self._verify(head, item, size, path)
        progress.sent(size, 0)
        return True

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = self._call("look at an object", self._client.head_object,
                                              Bucket=self.bucket, Key=key)
        except FileNotFoundError:
            return None
        return head

    def _put(self, key: str, path: Path, item: SyncItem, throttle: Throttle) -> None:
        data = path.read_bytes()   # at most one part: bounded memory
        throttle.wait(len(data))
        self._call("upload", self._client.put_object, Bucket=self.bucket, Key=key, Body=data,
                   ContentMD5=base64.b64encode(hashlib.md5(data).digest()).decode(),
                   Metadata={"sha256": str(item.sealed_sha256)})

    def _multipart(self, key: str, path: Path, size: int, item: SyncItem, progress: Progress,
                   throttle: Throttle, stop: threading.Event) -> bool:
        upload = item.multipart_id
        held = self._held_parts(key, upload) if upload else None
        if held is None:   # none yet, or the store forgot it: start over
            upload = self._call("start an upload", self._client.create_multipart_upload,
                                Bucket=self.bucket, Key=key,
                                Metadata={"sha256": str(item.sealed_sha256)})["UploadId"]
            held = []
        parts = {p["PartNumber"]: p for p in held}
        progress.multipart(upload, sorted(parts.values(), key=lambda p: p["PartNumber"]))
        count = -(-size // self.part_size)
        with path.open("rb") as f:
            for number in range(1, count + 1):
                f.seek((number - 1) * self.part_size)
                data = f.read(self.part_size)
                md5 = hashlib.md5(data).hexdigest()
                known = parts.get(number)
                if known and known["ETag"].strip('"') == md5 and known["Size"] == len(data):
                    continue
                if stop.is_set():
                    return False
                throttle.wait(len(data), stop)
                etag = self._call("upload a part", self._client.upload_part, Bucket=self.bucket,
                                  Key=key, UploadId=upload, PartNumber=number, Body=data,
                                  ContentMD5=base64.b64encode(bytes.fromhex(md5)).decode())["ETag"]
                parts[number] = {"PartNumber": number, "ETag": etag, "Size": len(data)}
                progress.multipart(upload, sorted(parts.values(), key=lambda p: p["PartNumber"]))
                progress.sent(sum(p["Size"] for p in parts.values()), 0)
        self._call("finish the upload", self._client.complete_multipart_upload,
                   Bucket=self.bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": [
                       {"PartNumber": n, "ETag": parts[n]["ETag"]} for n in sorted(parts)]})
        progress.multipart(None, [])
        return True

    def _held_parts(self, key: str, upload: str) -> list[dict[str, Any]] | None:
        """The parts the store holds for an upload, None if it no longer knows it."""
        held: list[dict[str, Any]] = []
        marker = 0
        while True:
            try:
                page = self._call("list the parts sent", self._client.list_parts,
                                  Bucket=self.bucket, Key=key, UploadId=upload,
                                  PartNumberMarker=marker)
            except FileNotFoundError:
                return None
            held += [{"PartNumber": p["PartNumber"], "ETag": p["ETag"], "Size": p["Size"]}
                     for p in page.get("Parts", [])]
            if not page.get("IsTruncated"):
                return held
            marker = page["NextPartNumberMarker"]

    def _verify(self, head: dict[str, Any] | None, item: SyncItem, size: int,
                path: Path) -> None:
        if head is None:
            raise SyncError(f"{item.remote_name} is not at the office after its upload")
        if head.get("ContentLength") != size:
            raise SyncError(f"the office copy of {item.remote_name} has "
                            f"{head.get('ContentLength')} bytes, not {size}")
        meta = {k.lower(): v for k, v in (head.get("Metadata") or {}).items()}
        if meta.get("sha256") not in (None, item.sealed_sha256):
            raise SyncError(f"the office holds another {item.remote_name}")
        if head.get("ETag", "").strip('"') not in self._etags(path, size):
            raise SyncError(f"the office copy of {item.remote_name} differs from what was sent")

    def _etags(self, path: Path, size: int) -> set[str]:
        """The ETags a store gives these exact bytes: their MD5 (one PUT, and stores that
        hash the whole object), or AWS's multipart form, the MD5 of the parts' MD5s with
        the part count."""
        whole = hashlib.md5()
        digests = []
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(self.part_size), b""):
                whole.update(chunk)
                digests.append(hashlib.md5(chunk).digest())
        found = {whole.hexdigest()}
        if size > self.part_size:
            found.add(f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}")
        return found

    def describe(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "endpoint": self.endpoint or "AWS"}
