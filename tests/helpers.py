"""Small helpers shared by tests (no fixtures here)."""

from __future__ import annotations

from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2


def error_reason(err: grpc.RpcError) -> str | None:
    """The ErrorInfo reason carried by a native gRPC error, if any."""
    for key, value in err.trailing_metadata() or ():  # type: ignore[attr-defined]
        if key == "grpc-status-details-bin":
            st = status_pb2.Status.FromString(value)
            for d in st.details:
                info = error_details_pb2.ErrorInfo()
                if d.Unpack(info):
                    return info.reason
    return None


def assert_firecrest_error(resp, status: int) -> dict:  # type: ignore[no-untyped-def]
    """The response has the given status and a FirecREST-shaped JSON error body; returns it."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    body = resp.json()
    assert body["errorType"] == "error", body
    assert isinstance(body["message"], str) and body["message"], body
    assert "Traceback" not in resp.text
    return body


def s3_client(stack: dict[str, str], access_key: str | None = None, secret_key: str | None = None) -> Any:
    """A boto3 S3 client of the stack's store (SigV4, the bucket in the path, as the core uses it)."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=stack["F7T_S3_URL"],
        aws_access_key_id=access_key or stack["F7T_S3_ACCESS_KEY"],
        aws_secret_access_key=secret_key or stack["F7T_S3_SECRET_KEY"],
        region_name=stack.get("F7T_S3_REGION", "us-east-1"),
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            retries={"mode": "standard", "max_attempts": 1},
        ),
    )
