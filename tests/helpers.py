"""Small helpers shared by tests (no fixtures here)."""

from __future__ import annotations

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
