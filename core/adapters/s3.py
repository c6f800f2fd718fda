"""The S3 staging store of staged transfers, through boto3's S3 client: any S3 endpoint (MinIO,
Ceph RGW, Swift s3api, AWS; s3rver in the local stack) by configuration only.

boto3 rather than the `minio` client: the transfers need multipart uploads started, listed and
aborted by the core and their parts presigned for a job or a client, and minio-py has no public API
for any of that (only private methods that may change in any release); boto3's are the documented
S3 operations (create_multipart_upload, generate_presigned_url("upload_part"), ...).

Presigning is local (SigV4 with the configured region: no request to the store). Every other call
is blocking and short; the domain runs them in a thread. The store's errors become domain errors
(BackendUnavailable when it cannot be reached or answers 5xx).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from core.config import S3Config
from core.domain.errors import BackendUnavailable, GatewayError
from core.domain.transfers import StagedObject, check_part_config

log = logging.getLogger(__name__)

# what S3 answers when a call is not supported by this store (s3rver: no abort, no listing of
# multipart uploads); the caller treats it as "cannot do this here", not as a failure
_UNSUPPORTED = frozenset({"NotImplemented", "MethodNotAllowed"})
# a missing object or upload: HEAD answers have no body, so only their status ("404") says it
_MISSING = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchObject", "NoSuchUpload"})

# the S3 operation a presigned URL allows: (HTTP method, part of a multipart upload?) -> operation
_OPERATIONS = {
    ("GET", False): "get_object",
    ("HEAD", False): "head_object",
    ("PUT", False): "put_object",
    ("DELETE", False): "delete_object",
    ("PUT", True): "upload_part",
    ("POST", True): "complete_multipart_upload",
    ("DELETE", True): "abort_multipart_upload",
}
MAX_EXPIRY = 7 * 24 * 3600  # SigV4's limit on a presigned URL's lifetime


def _error(what: str, e: Exception) -> GatewayError:
    return BackendUnavailable(f"staging store: {what} failed: {e}")


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def _client(endpoint: str, secure: bool, cfg: S3Config, config: Config) -> Any:
    # a session of its own: boto3's default session is shared and not thread-safe; the client is
    return boto3.session.Session().client(
        "s3",
        endpoint_url=f"{'https' if secure else 'http'}://{endpoint}",
        aws_access_key_id=cfg.access_key,
        aws_secret_access_key=cfg.secret_key,
        region_name=cfg.region,
        config=config,
    )


def _addressing(endpoint: str) -> str:
    """Bucket in the path (every S3-compatible store takes it), except on AWS where boto3 picks."""
    host = endpoint.rsplit(":", 1)[0].lower()
    return "auto" if host == "amazonaws.com" or host.endswith(".amazonaws.com") else "path"


class Staging:
    """One bucket of one S3 endpoint."""

    def __init__(self, cfg: S3Config):
        check_part_config(cfg.multipart_part_size, cfg.max_part_count)
        self.cfg = cfg
        self.bucket = cfg.bucket
        self.url_expiry = cfg.url_expiry
        self.part_size = cfg.multipart_part_size
        self.max_part_count = cfg.max_part_count
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": _addressing(cfg.endpoint)},
            # no default CRC checksums on uploads: S3-compatible stores (s3rver, older MinIO and
            # Ceph) refuse or ignore them; SigV4 and Content-MD5/ETag checks stay
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            connect_timeout=5,
            read_timeout=30,
            retries={"mode": "standard", "max_attempts": 3},  # 5XX, throttling, lost connections
            max_pool_connections=8,
        )
        self.client = _client(cfg.endpoint, cfg.secure, cfg, config)
        # URLs handed to clients and jobs may name the store differently than the core does
        if cfg.public_endpoint:
            secure = cfg.public_secure if cfg.public_secure is not None else cfg.secure
            public = Config(signature_version="s3v4", s3={"addressing_style": _addressing(cfg.public_endpoint)})
            self._signer = _client(cfg.public_endpoint, secure, cfg, public)
        else:
            self._signer = self.client
        self._bucket_ready = False
        self._lock = threading.Lock()

    # ---- bucket ------------------------------------------------------------------------------
    def ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        with self._lock:
            if self._bucket_ready:
                return
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as e:
                if _code(e) not in ("404", "NoSuchBucket", "NotFound"):
                    raise _error(f"preparing bucket {self.bucket}", e) from e
                self._make_bucket()
            except BotoCoreError as e:
                raise _error(f"preparing bucket {self.bucket}", e) from e
            self._bucket_ready = True

    def _make_bucket(self) -> None:
        # us-east-1 is S3's default location: naming it is an error there
        location = {} if self.cfg.region in ("", "us-east-1") else {
            "CreateBucketConfiguration": {"LocationConstraint": self.cfg.region}
        }
        try:
            self.client.create_bucket(Bucket=self.bucket, **location)
        except ClientError as e:
            if _code(e) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise _error(f"creating bucket {self.bucket}", e) from e
        except BotoCoreError as e:
            raise _error(f"creating bucket {self.bucket}", e) from e

    # ---- presigned URLs ----------------------------------------------------------------------
    def presign(self, method: str, key: str, expires: float, query: Mapping[str, str] | None = None) -> str:
        """A presigned URL for one method on one key (and query: uploadId, partNumber), valid for
        `expires` seconds (1 s .. 7 days)."""
        query = dict(query or {})
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if "uploadId" in query:
            params["UploadId"] = query.pop("uploadId")
        if "partNumber" in query:
            params["PartNumber"] = int(query.pop("partNumber"))
        operation = _OPERATIONS.get((method.upper(), "UploadId" in params))
        if operation is None or query or (("PartNumber" in params) != (operation == "upload_part")):
            raise ValueError(f"no presigned S3 operation for {method} with {sorted(params)}")
        seconds = max(1, min(int(expires), MAX_EXPIRY))
        return str(self._signer.generate_presigned_url(operation, Params=params, ExpiresIn=seconds))

    # ---- multipart ---------------------------------------------------------------------------
    def create_multipart(self, key: str) -> str:
        self.ensure_bucket()
        try:
            res = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=key, ContentType="application/octet-stream"
            )
            return str(res["UploadId"])
        except (ClientError, BotoCoreError) as e:
            raise _error(f"starting a multipart upload of {key}", e) from e

    def abort_multipart(self, key: str, upload_id: str) -> bool:
        """Abort an unfinished multipart upload (its parts are dropped). False when the store does
        not support it (s3rver) or the upload no longer exists."""
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            return True
        except ClientError as e:
            if _code(e) in _UNSUPPORTED:
                log.debug("staging store cannot abort multipart uploads (%s)", _code(e))
                return False
            if _code(e) in _MISSING:
                return False
            raise _error(f"aborting upload {upload_id} of {key}", e) from e
        except BotoCoreError as e:
            raise _error(f"aborting upload {upload_id} of {key}", e) from e

    def stale_uploads(self, older_than: float) -> list[tuple[str, str]] | None:
        """(key, upload id) of multipart uploads initiated before `older_than` (epoch seconds);
        None when the store cannot list them."""
        self.ensure_bucket()
        out: list[tuple[str, str]] = []
        try:
            for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket):
                for u in page.get("Uploads", []):
                    initiated = u["Initiated"].timestamp() if u.get("Initiated") else 0.0
                    if initiated < older_than:
                        out.append((u["Key"], u["UploadId"]))
            return out
        except ClientError as e:
            if _code(e) in _UNSUPPORTED:
                return None
            raise _error("listing multipart uploads", e) from e
        except BotoCoreError as e:
            raise _error("listing multipart uploads", e) from e

    # ---- objects -----------------------------------------------------------------------------
    def exists(self, key: str) -> bool:
        self.ensure_bucket()
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as e:
            if _code(e) in _MISSING:
                return False
            raise _error(f"looking up {key}", e) from e
        except BotoCoreError as e:
            raise _error(f"looking up {key}", e) from e

    def delete(self, key: str) -> None:
        self.ensure_bucket()
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except ClientError as e:
            if _code(e) in _MISSING:
                return
            raise _error(f"deleting {key}", e) from e
        except BotoCoreError as e:
            raise _error(f"deleting {key}", e) from e

    def objects(self, prefix: str = "") -> list[StagedObject]:
        self.ensure_bucket()
        try:
            return [
                StagedObject(
                    key=o["Key"],
                    last_modified=o["LastModified"].timestamp() if o.get("LastModified") else 0.0,
                    size=o.get("Size") or 0,
                )
                for page in self.client.get_paginator("list_objects_v2").paginate(
                    Bucket=self.bucket, **({"Prefix": prefix} if prefix else {})
                )
                for o in page.get("Contents", [])
                if o.get("Key") and not o["Key"].endswith("/")
            ]
        except (ClientError, BotoCoreError) as e:
            raise _error("listing staged objects", e) from e

    def put(self, key: str, data: bytes) -> None:
        """Store a small object directly (tests and diagnostics)."""
        self.ensure_bucket()
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        except (ClientError, BotoCoreError) as e:
            raise _error(f"storing {key}", e) from e
