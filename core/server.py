"""create_server(config) -> (server, port): the gRPC core, with health and reflection."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

import grpc
from google.protobuf import descriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from core import config as config_mod
from core.api.context import GatewayInterceptor, WrappingServer
from core.config import Config
from core.observability import MetricsTLS, configure_logging
from core.proto.firecrest.type.v1 import types_pb2
from core.wiring import Gateway

log = logging.getLogger("core")

# methods a caller may use without a token (Envoy also lets them through unauthenticated)
PUBLIC_METHODS = frozenset({"/firecrest.status.v1.StatusService/GetLiveness"})


def _services() -> list[tuple[descriptor.ServiceDescriptor, Any, type, Callable[[Gateway], tuple[Any, ...]]]]:
    """(service descriptor, add_to_server function, servicer class, the services it is built
    with) of every service: a servicer gets the one or two services it uses, never the Gateway."""
    # imported here, not at module level, so `--help` works without the generated stubs; a servicer
    # that fails to import stops the server at start (never a silent 501 at run time)
    from core.api.certificate import CertificateServicer
    from core.api.compute import ComputeServicer
    from core.api.status import StatusServicer
    from core.api.storage import StorageServicer
    from core.api.tasks import TasksServicer
    from core.proto.firecrest.certificate.v1 import certificate_pb2, certificate_pb2_grpc
    from core.proto.firecrest.compute.v1 import compute_pb2, compute_pb2_grpc
    from core.proto.firecrest.status.v1 import status_pb2, status_pb2_grpc
    from core.proto.firecrest.storage.v1 import storage_pb2, storage_pb2_grpc
    from core.proto.firecrest.tasks.v1 import tasks_pb2, tasks_pb2_grpc

    return [
        (
            status_pb2.DESCRIPTOR.services_by_name["StatusService"],
            status_pb2_grpc.add_StatusServiceServicer_to_server,
            StatusServicer,
            lambda gw: (gw.status,),
        ),
        (
            certificate_pb2.DESCRIPTOR.services_by_name["CertificateService"],
            certificate_pb2_grpc.add_CertificateServiceServicer_to_server,
            CertificateServicer,
            lambda gw: (gw.certificates,),
        ),
        (
            compute_pb2.DESCRIPTOR.services_by_name["ComputeService"],
            compute_pb2_grpc.add_ComputeServiceServicer_to_server,
            ComputeServicer,
            lambda gw: (gw.jobs,),
        ),
        (
            storage_pb2.DESCRIPTOR.services_by_name["StorageService"],
            storage_pb2_grpc.add_StorageServiceServicer_to_server,
            StorageServicer,
            lambda gw: (gw.files, gw.transfers),
        ),
        (
            tasks_pb2.DESCRIPTOR.services_by_name["TasksService"],
            tasks_pb2_grpc.add_TasksServiceServicer_to_server,
            TasksServicer,
            lambda gw: (gw.tasks,),
        ),
    ]


def success_codes(services: Iterable[descriptor.ServiceDescriptor]) -> dict[str, int]:
    codes = {}
    for svc in services:
        for m in svc.methods:
            opts = m.GetOptions()
            code = opts.Extensions[types_pb2.success_code] if opts.HasExtension(types_pb2.success_code) else 200
            codes[f"/{svc.full_name}/{m.name}"] = code or 200
    return codes


async def create_server(cfg: Config, gw: Gateway | None = None) -> tuple[grpc.aio.Server, int, Gateway]:
    gw = gw or Gateway(cfg)
    services = _services()
    interceptor = GatewayInterceptor(
        cfg.identity_header, success_codes(s for s, _, _, _ in services), PUBLIC_METHODS, metrics=gw.metrics
    )
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ],
    )
    names = []
    wrapping = WrappingServer(server, interceptor)  # the interceptor's work, wrapped around each method once
    for svc, add, servicer, uses in services:
        add(servicer(*uses(gw)), wrapping)
        names.append(svc.full_name)
    health_servicer = health.aio.HealthServicer() if hasattr(health, "aio") else health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for n in [*names, ""]:
        r = health_servicer.set(n, health_pb2.HealthCheckResponse.SERVING)
        if asyncio.iscoroutine(r):
            await r
    reflection.enable_server_reflection([*names, reflection.SERVICE_NAME, health.SERVICE_NAME], server)
    if cfg.tls:
        creds = grpc.ssl_server_credentials(
            [(cfg.tls.key.read_bytes(), cfg.tls.cert.read_bytes())],
            root_certificates=cfg.tls.client_ca.read_bytes(),
            require_client_auth=True,
        )
        port = server.add_secure_port(cfg.listen, creds)
    else:
        log.warning("no tls section: the core accepts plaintext connections on %s", cfg.listen)
        port = server.add_insecure_port(cfg.listen)
    return server, port, gw


async def serve(cfg: Config) -> None:
    server, port, gw = await create_server(cfg)
    await server.start()
    log.info("core listening on %s (port %d)", cfg.listen, port)
    if cfg.metrics:
        tls = cfg.metrics.tls
        gw.metrics.serve(
            cfg.metrics.listen, MetricsTLS(str(tls.cert), str(tls.key), str(tls.client_ca)) if tls else None
        )
        log.info("metrics on %s (%s)", cfg.metrics.listen, "https, client certificate required" if tls else "http")
    gw.start_background()
    _tune_gc()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    # graceful: take no new call (Envoy retries those on another connection, i.e. the next core),
    # let long waits answer now with their task's current state, give the calls in flight up to
    # shutdown_grace seconds to finish, and only then stop the trackers and close the pools
    log.info("stopping: no new calls; finishing the calls in flight (up to %g s)", cfg.shutdown_grace)
    gw.task_store.release_waiters()
    await server.stop(cfg.shutdown_grace)
    await gw.stop_background()
    await gw.close()
    log.info("stopped")


def _tune_gc() -> None:
    """A listing of thousands of entries makes thousands of tracked objects that live until its
    answer is built, and with the default thresholds (700, 10, 10) each such call ran several
    collections, the full ones over every module and protobuf descriptor loaded (py-spy:
    gc_collect_main, an eighth of the event loop's time under ls load). The startup objects move to
    the permanent generation (never scanned again), and a young collection waits for 5,000 net
    allocations instead of 700; older generations keep their defaults, so cycles are still freed."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(5_000, 10, 10)


def run_loop(main: Coroutine[Any, Any, None], event_loop: str) -> None:
    """Run the core on the configured event loop (config `event_loop`)."""
    if event_loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            log.warning("event_loop is uvloop, which is not installed: running on asyncio's own loop")
        else:
            uvloop.run(main)
            return
    asyncio.run(main)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="firecrest-core")
    p.add_argument("--config", help="YAML configuration (default: $F7T_CONFIG)")
    args = p.parse_args(argv)
    try:
        cfg = config_mod.load(args.config)
    except config_mod.ConfigError as e:  # the keys at fault, never a traceback
        print(f"firecrest-core: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(logging.INFO)  # JSON lines: request id, user, and one audit line per SSH command
    logging.getLogger("paramiko").setLevel(logging.WARNING)  # one INFO line per SSH login is noise
    try:
        run_loop(serve(cfg), cfg.event_loop)
    except config_mod.ConfigError as e:  # a setting only the wiring can judge (scheduler.type)
        print(f"firecrest-core: {args.config or os.environ.get('F7T_CONFIG')}: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except (FileNotFoundError, PermissionError, IsADirectoryError) as e:  # a file the config names
        print(f"firecrest-core: {args.config or os.environ.get('F7T_CONFIG')}: cannot read {e.filename}: "
              f"{e.strerror}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
