"""The operator's view of the core: Prometheus metrics, JSON logs, the request id, SSH audit lines.

A call's request id is Envoy's `x-request-id` (Envoy makes one for every request and passes it to
the core as metadata), kept in a context variable for the call's lifetime: every log line of the
call and the audit line of every SSH command it runs carry it, so one REST request can be followed
from Envoy's access log to the commands it ran on the cluster. Work outside a call (the trackers)
logs request_id "-".

The metrics live in one registry owned by the Gateway (no module-level globals). They are served
over HTTPS that requires a client certificate from the configured CA (`metrics.tls`): a cluster
user on the gateway host can connect to the port but cannot read it; Prometheus presents a
certificate issued for it. Without `metrics.tls` the port is plain HTTP on `metrics.listen`.
"""

from __future__ import annotations

import bisect
import contextvars
import datetime as dt
import itertools
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

REQUEST_ID_HEADER = "x-request-id"
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("f7t_request_id", default="-")
call_user: contextvars.ContextVar[str] = contextvars.ContextVar("f7t_call_user", default="-")

audit_log = logging.getLogger("core.audit")

# SSH command and RPC latencies: from a cached `true` (ms) to a long sbatch or a slow file system
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass(frozen=True)
class MetricsTLS:
    cert: str
    key: str
    client_ca: str


class _Callback(Collector):
    """A collector whose samples are computed at scrape time (pool sizes, task counts, lags)."""

    def __init__(self, fn: Callable[[], Iterable[GaugeMetricFamily]]):
        self.fn = fn

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from self.fn()


class _RpcStats(Collector):
    """The RPCs handled, by method and gRPC status code: f7t_rpc_requests_total and the histogram
    f7t_rpc_duration_seconds. Not prometheus_client's Counter and Histogram: each of their updates
    takes a lock and the histogram walks its buckets in Python, a microsecond per call, which a
    metadata call (a few microseconds of the core's own work) showed in its throughput. Here a call
    adds to one list, on the event loop's thread (the only one that observes RPCs); the scrape, in
    the metrics server's thread, copies each list whole (atomic under the GIL) and derives the
    counts from the buckets, so a scrape's count and buckets always agree."""

    def __init__(self, buckets: tuple[float, ...]):
        self.bounds = buckets
        self.rows: dict[tuple[str, str], list[float]] = {}  # [sum of seconds, count per bucket..., +Inf]

    def observer(self, method: str) -> Callable[[str, float], None]:
        by_code: dict[str, list[float]] = {}
        rows, bounds, width = self.rows, self.bounds, len(self.bounds) + 1

        def observe(code: str, seconds: float) -> None:
            row = by_code.get(code)
            if row is None:
                row = by_code[code] = rows.setdefault((method, code), [0.0] * (width + 1))
            row[0] += seconds
            row[1 + bisect.bisect_left(bounds, seconds)] += 1  # a bucket's bound is inclusive (le)

        return observe

    def collect(self) -> Iterator[Any]:
        total = CounterMetricFamily(
            "f7t_rpc_requests", "RPCs handled, by method and gRPC status code", labels=["method", "code"]
        )
        seconds = HistogramMetricFamily(
            "f7t_rpc_duration_seconds", "RPC handling time, by method and gRPC status code", labels=["method", "code"]
        )
        les = [*(floatToGoString(b) for b in self.bounds), "+Inf"]
        for (method, code), row in list(self.rows.items()):
            row = list(row)
            cumulative = list(itertools.accumulate(row[1:]))
            total.add_metric([method, code], cumulative[-1])
            seconds.add_metric([method, code], list(zip(les, cumulative, strict=True)), sum_value=row[0])
        yield total
        yield seconds


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.rpcs = _RpcStats(_BUCKETS)
        r.register(self.rpcs)
        self.ssh_commands = Counter(
            "f7t_ssh_commands", "Commands run over SSH, by system and outcome (ok, nonzero, error)",
            ["system", "outcome"], registry=r,
        )
        self.ssh_seconds = Histogram(
            "f7t_ssh_command_duration_seconds", "Time of an SSH command, waiting for a connection included",
            ["system"], buckets=_BUCKETS, registry=r,
        )
        self.ssh_wait_seconds = Histogram(
            "f7t_ssh_pool_wait_seconds", "Time a command waited for a pooled SSH connection (connecting included)",
            ["system"], buckets=_BUCKETS, registry=r,
        )

    def rpc_observer(self, method: str) -> Callable[[str, float], None]:
        """observe(code, seconds) for one method's calls (see _RpcStats)."""
        return self.rpcs.observer(method)

    def add_callback(self, fn: Callable[[], Iterable[GaugeMetricFamily]]) -> None:
        self.registry.register(_Callback(fn))

    def serve(self, listen: str, tls: MetricsTLS | None) -> None:
        """Serve /metrics on listen (host:port) in a thread of its own."""
        host, _, port = listen.rpartition(":")
        if tls:
            start_http_server(
                int(port), addr=host, registry=self.registry, certfile=tls.cert, keyfile=tls.key,
                client_cafile=tls.client_ca, client_auth_required=True,
            )
        else:
            start_http_server(int(port), addr=host, registry=self.registry)


def gauge(name: str, doc: str, labels: list[str], samples: Iterable[tuple[list[str], float]]) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, doc, labels=labels)
    for values, v in samples:
        g.add_metric(values, v)
    return g


def audit(system: str, user: str, command: str, exit_status: int | None, seconds: float, error: str = "") -> None:
    """One line per SSH command, tied to the call that ran it by its request id."""
    audit_log.info(
        "ssh command",
        extra={
            "audit": {
                "event": "ssh_command",
                "request_id": request_id.get(),
                "user": user,
                "system": system,
                "command": command,
                "exit_status": exit_status,
                "duration_ms": round(seconds * 1000, 1),
                **({"error": error} if error else {}),
            }
        },
    )


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the call's request id and user."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id.get(),
            "user": call_user.get(),
        }
        extra = getattr(record, "audit", None)
        if isinstance(extra, dict):
            out.update(extra)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class Stopwatch:
    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.t0
