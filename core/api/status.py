"""StatusService: systems, liveness, nodes, partitions, reservations, userinfo."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import grpc

from core.api.context import caller
from core.domain.systems import Probe
from core.proto.firecrest.status.v1 import status_pb2 as pb
from core.proto.firecrest.status.v1 import status_pb2_grpc
from core.services.status import StatusService


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


class StatusServicer(status_pb2_grpc.StatusServiceServicer):
    def __init__(self, status: StatusService):
        self.status = status
        self._systems: tuple[list[list[Probe]], pb.ListSystemsResponse] | None = None

    async def GetLiveness(self, request: pb.GetLivenessRequest, context: grpc.aio.ServicerContext) -> pb.GetLivenessResponse:
        runs = {}
        for cfg in self.status.systems:
            for p in self.status.last_probes(cfg.name):
                runs[f"{cfg.name}/{p.service_type}"] = _iso(p.checked_at)
        return pb.GetLivenessResponse(healthcheck_runs=runs, last_update=int(time.time()))

    async def ListSystems(self, request: pb.ListSystemsRequest, context: grpc.aio.ServicerContext) -> pb.ListSystemsResponse:
        user = caller()
        probes_now = [await self.status.health(cfg.name, user) for cfg in self.status.systems]
        cached = self._systems
        # the answer changes only with the probes (at most every few seconds): the same message
        # object again (whose REST body the interceptor also keeps, core/api/context.py)
        if cached is not None and all(a is b for a, b in zip(cached[0], probes_now, strict=True)):
            return cached[1]
        systems = []
        for cfg, probes in zip(self.status.systems, probes_now, strict=True):
            systems.append(
                pb.HPCCluster(
                    name=cfg.name,
                    ssh=pb.SSHClientPool(
                        host=cfg.ssh.host,
                        port=cfg.ssh.port,
                        max_clients=cfg.ssh.pool_size,
                        timeout=pb.SSHTimeouts(
                            connection=int(cfg.ssh.connect_timeout),
                            login=int(cfg.ssh.connect_timeout),
                            command_execution=int(cfg.ssh.command_timeout),
                        ),
                    ),
                    scheduler=pb.Scheduler(
                        type=cfg.scheduler.type,
                        version=cfg.scheduler.version,
                        timeout=int(cfg.scheduler.timeout),
                        connection_mode="ssh",
                    ),
                    services_health=[
                        pb.ServiceHealth(
                            service_type=p.service_type,
                            healthy=p.healthy,
                            last_checked=_iso(p.checked_at),
                            latency=p.latency or 0.0,
                            message=p.message,
                        )
                        for p in probes
                    ],
                    probing=pb.ProbingServices(interval_check=30),
                    file_systems=[
                        pb.FileSystem(path=f.path, data_type=f.data_type, default_work_dir=f.default_work_dir)
                        for f in cfg.filesystems
                    ],
                    data_operation=pb.DataOperation(
                        max_ops_file_size=cfg.max_ops_file_size,
                        datatransfer_jobs_directives=list(cfg.datatransfer_jobs_directives),
                    ),
                    last_health_check=_iso(probes[0].checked_at) if probes else "",
                )
            )
        resp = pb.ListSystemsResponse(systems=systems)
        self._systems = (probes_now, resp)
        return resp

    async def ListNodes(self, request: pb.ListNodesRequest, context: grpc.aio.ServicerContext) -> pb.ListNodesResponse:
        nodes = await self.status.nodes(caller(), request.system_name)
        return pb.ListNodesResponse(
            nodes=[
                pb.Node(
                    name=n.name,
                    hostname=n.hostname,
                    address=n.address,
                    sockets=n.sockets or 0,
                    cores=n.cores or 0,
                    threads=n.threads or 0,
                    cpus=n.cpus,
                    alloc_cpus=n.alloc_cpus or 0,
                    idle_cpus=n.idle_cpus or 0,
                    cpu_load=n.cpu_load or 0.0,
                    alloc_memory=n.alloc_memory or 0,
                    free_memory=n.free_memory or 0,
                    features=n.features,
                    partitions=n.partitions,
                    state=n.state,
                    weight=n.weight or 0,
                )
                for n in nodes
            ]
        )

    async def ListPartitions(
        self, request: pb.ListPartitionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListPartitionsResponse:
        parts = await self.status.partitions(caller(), request.system_name, request.show_hidden)
        return pb.ListPartitionsResponse(
            partitions=[
                pb.Partition(name=p.name, cpus=p.cpus or 0, total_nodes=p.total_nodes or 0, partition=",".join(p.state))
                for p in parts
            ]
        )

    async def ListReservations(
        self, request: pb.ListReservationsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListReservationsResponse:
        res = await self.status.reservations(caller(), request.system_name)
        return pb.ListReservationsResponse(
            reservations=[
                pb.Reservation(
                    name=r.name,
                    state=r.state,
                    features=r.features,
                    node_list=r.node_list,
                    start_time=r.start_time,
                    end_time=r.end_time,
                )
                for r in res
            ]
        )

    async def GetUserInfo(self, request: pb.GetUserInfoRequest, context: grpc.aio.ServicerContext) -> pb.GetUserInfoResponse:
        ident = await self.status.user_info(caller(), request.system_name)
        return pb.GetUserInfoResponse(
            user=pb.PosixIdentified(id=ident.uid, name=ident.user),
            group=pb.PosixIdentified(id=ident.gid, name=ident.group),
            groups=[pb.PosixIdentified(id=g, name=n) for g, n in ident.groups],
            accounts=[pb.Account(name=a, default=d) for a, d in ident.accounts],
        )
