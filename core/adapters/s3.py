"""The S3 staging store of staged transfers, through the `minio` client: any S3 endpoint (MinIO,
Ceph RGW, Swift s3api, AWS; s3rver in the local stack) by configuration only.

Presigning is local (SigV4 with the configured region: no request to the store). Every other call
is blocking and short; the domain runs them in a thread. The store's errors become domain errors
(BackendUnavailable when it cannot be reached or answers 5xx).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Mapping
from typing import Any

import urllib3
from minio import Minio
from minio.error import S3Error

from core.config import S3Config
from core.domain.errors import BackendUnavailable, GatewayError
from core.domain.transfers import StagedObject, check_part_config

log = logging.getLogger(__name__)

# what S3 answers when a call is not supported by this store (s3rver: no abort, no listing of
# multipart uploads); the caller treats it as "cannot do this here", not as a failure
_UNSUPPORTED = frozenset({"NotImplemented", "MethodNotAllowed"})


def _error(what: str, e: Exception) -> GatewayError:
    return BackendUnavailable(f"staging store: {what} failed: {e}")


class Staging:
    """One bucket of one S3 endpoint."""

    def __init__(self, cfg: S3Config):
        check_part_config(cfg.multipart_part_size, cfg.max_part_count)
        self.cfg = cfg
        self.bucket = cfg.bucket
        self.url_expiry = cfg.url_expiry
        self.part_size = cfg.multipart_part_size
        self.max_part_count = cfg.max_part_count
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5.0, read=30.0),
            maxsize=8,
            retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )
        self.client = Minio(
            cfg.endpoint,
            access_key=cfg.access_key,
            secret_key=cfg.secret_key,
            secure=cfg.secure,
            region=cfg.region,
            http_client=http,
        )
        # URLs handed to clients and jobs may name the store differently than the core does
        self._signer = (
            Minio(
                cfg.public_endpoint,
                access_key=cfg.access_key,
                secret_key=cfg.secret_key,
                secure=cfg.public_secure if cfg.public_secure is not None else cfg.secure,
                region=cfg.region,
            )
            if cfg.public_endpoint
            else self.client
        )
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
                if not self.client.bucket_exists(self.bucket):
                    try:
                        self.client.make_bucket(self.bucket, location=self.cfg.region)
                    except S3Error as e:
                        if e.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                            raise
            except (S3Error, urllib3.exceptions.HTTPError, OSError) as e:
                raise _error(f"preparing bucket {self.bucket}", e) from e
            self._bucket_ready = True

    # ---- presigned URLs ----------------------------------------------------------------------
    def presign(self, method: str, key: str, expires: float, query: Mapping[str, str] | None = None) -> str:
        """A presigned URL for one method on one key (and query: uploadId, partNumber), valid for
        `expires` seconds (1 s .. 7 days)."""
        seconds = max(1, min(int(expires), 7 * 24 * 3600))
        return self._signer.get_presigned_url(
            method,
            self.bucket,
            key,
            expires=dt.timedelta(seconds=seconds),
            extra_query_params=dict(query) if query else None,
        )

    # ---- multipart ---------------------------------------------------------------------------
    def create_multipart(self, key: str) -> str:
        self.ensure_bucket()
        try:
            return str(
                self.client._create_multipart_upload(  # minio has no public API for it
                    self.bucket, key, {"Content-Type": "application/octet-stream"}
                )
            )
        except (S3Error, urllib3.exceptions.HTTPError, OSError) as e:
            raise _error(f"starting a multipart upload of {key}", e) from e

    def abort_multipart(self, key: str, upload_id: str) -> bool:
        """Abort an unfinished multipart upload (its parts are dropped). False when the store does
        not support it (s3rver) or the upload no longer exists."""
        try:
            self.client._abort_multipart_upload(self.bucket, key, upload_id)
            return True
        except S3Error as e:
            if e.code in _UNSUPPORTED:
                log.debug("staging store cannot abort multipart uploads (%s)", e.code)
                return False
            if e.code in ("NoSuchUpload", "NoSuchKey"):
                return False
            raise _error(f"aborting upload {upload_id} of {key}", e) from e
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise _error(f"aborting upload {upload_id} of {key}", e) from e

    def stale_uploads(self, older_than: float) -> list[tuple[str, str]] | None:
        """(key, upload id) of multipart uploads initiated before `older_than` (epoch seconds);
        None when the store cannot list them."""
        self.ensure_bucket()
        out: list[tuple[str, str]] = []
        marker_key: str | None = None
        marker_id: str | None = None
        try:
            while True:
                res: Any = self.client._list_multipart_uploads(
                    self.bucket, key_marker=marker_key, max_uploads=1000, upload_id_marker=marker_id
                )
                for u in res.uploads:
                    initiated = u.initiated_time.timestamp() if u.initiated_time else 0.0
                    if initiated < older_than:
                        out.append((u.object_name, u.upload_id))
                if not res.is_truncated:
                    return out
                marker_key, marker_id = res.next_key_marker, res.next_upload_id_marker
        except S3Error as e:
            if e.code in _UNSUPPORTED:
                return None
            raise _error("listing multipart uploads", e) from e
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise _error("listing multipart uploads", e) from e

    # ---- objects -----------------------------------------------------------------------------
    def exists(self, key: str) -> bool:
        self.ensure_bucket()
        try:
            self.client.stat_object(self.bucket, key)
            return True
        except S3Error as e:
            if e.code in ("NoSuchKey", "NotFound", "NoSuchObject"):
                return False
            raise _error(f"looking up {key}", e) from e
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise _error(f"looking up {key}", e) from e

    def delete(self, key: str) -> None:
        self.ensure_bucket()
        try:
            self.client.remove_object(self.bucket, key)
        except S3Error as e:
            if e.code in ("NoSuchKey", "NotFound"):
                return
            raise _error(f"deleting {key}", e) from e
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise _error(f"deleting {key}", e) from e

    def objects(self, prefix: str = "") -> list[StagedObject]:
        self.ensure_bucket()
        try:
            return [
                StagedObject(
                    key=o.object_name or "",
                    last_modified=o.last_modified.timestamp() if o.last_modified else 0.0,
                    size=o.size or 0,
                )
                for o in self.client.list_objects(self.bucket, prefix=prefix or None, recursive=True)
                if o.object_name and not o.is_dir
            ]
        except (S3Error, urllib3.exceptions.HTTPError, OSError) as e:
            raise _error("listing staged objects", e) from e

    def put(self, key: str, data: bytes) -> None:
        """Store a small object directly (tests and diagnostics)."""
        import io

        self.ensure_bucket()
        try:
            self.client.put_object(self.bucket, key, io.BytesIO(data), len(data))
        except (S3Error, urllib3.exceptions.HTTPError, OSError) as e:
            raise _error(f"storing {key}", e) from e
