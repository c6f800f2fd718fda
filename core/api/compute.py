"""ComputeService: FirecREST v2's /compute/{system}/jobs, as the calling user."""

from __future__ import annotations

import grpc

from core.api.context import caller
from core.domain.jobs import Job, JobMetadata, JobSpec, JobStatus, JobTime, job_page
from core.proto.firecrest.compute.v1 import compute_pb2 as pb
from core.proto.firecrest.compute.v1 import compute_pb2_grpc
from core.services.jobs import JobService

# an idempotency key may also come as a header (REST clients that cannot put it in the body)
IDEMPOTENCY_HEADER = "idempotency-key"
INT32_MAX = 2**31 - 1


def _opt(v: int | None) -> int | None:
    """int32 fields: Slurm priorities can exceed int32 (4294901738): clamp, never overflow."""
    if v is None:
        return None
    return max(-(2**31), min(INT32_MAX, v))


def _status(s: JobStatus) -> pb.JobStatus:
    return pb.JobStatus(
        state=s.state,
        state_reason=s.state_reason,
        exit_code=_opt(s.exit_code),
        interrupt_signal=_opt(s.interrupt_signal),
    )


def _time(t: JobTime) -> pb.JobTime:
    return pb.JobTime(
        elapsed=_opt(t.elapsed),
        start=_opt(t.start),
        end=_opt(t.end),
        suspended=_opt(t.suspended),
        limit=_opt(t.limit),
    )


def job_to_pb(j: Job) -> pb.Job:
    return pb.Job(
        job_id=j.job_id,
        name=j.name,
        status=_status(j.status),
        tasks=[
            pb.JobTask(id=s.id, name=s.name, status=_status(s.status), time=_time(s.time)) for s in j.steps
        ],
        time=_time(j.time),
        account=j.account,
        allocation_nodes=_opt(j.allocation_nodes) or 0,
        cluster=j.cluster,
        group=j.group,
        nodes=j.nodes,
        partition=j.partition,
        priority=None if j.priority is None else max(0, min(2**32 - 1, j.priority)),
        kill_request_user=j.kill_request_user,
        user=j.user,
        working_directory=j.working_directory,
    )


def metadata_to_pb(m: JobMetadata) -> pb.JobMetadata:
    return pb.JobMetadata(
        job_id=m.job_id,
        script=m.script or "",
        standard_input=m.standard_input or "",
        standard_output=m.standard_output or "",
        standard_error=m.standard_error or "",
    )


def spec_from_pb(j: pb.JobDescription) -> JobSpec:
    return JobSpec(
        working_directory=j.working_directory,
        script=j.script,
        script_path=j.script_path,
        name=j.name,
        account=j.account,
        partition=j.partition,
        reservation=j.reservation,
        constraints=j.constraints,
        standard_input=j.standard_input,
        standard_output=j.standard_output,
        standard_error=j.standard_error,
        env=dict(j.env),
    )


class ComputeServicer(compute_pb2_grpc.ComputeServiceServicer):
    def __init__(self, jobs: JobService):
        self.jobs = jobs

    async def SubmitJob(
        self, request: pb.SubmitJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.SubmitJobResponse:
        request_id = request.request_id
        if not request_id:
            md = dict(context.invocation_metadata() or ())
            value = md.get(IDEMPOTENCY_HEADER)
            request_id = value if isinstance(value, str) else ""
        job_id = await self.jobs.submit(
            caller(), request.system_name, spec_from_pb(request.job), request_id or None
        )
        return pb.SubmitJobResponse(job_id=job_id)

    async def ListJobs(
        self, request: pb.ListJobsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListJobsResponse:
        # allusers is accepted but never widens the answer: a user sees only their own jobs
        jobs = await self.jobs.list(
            caller(), request.system_name, request.account, name=request.name, time_window=request.time_window
        )
        page, next_token = job_page(jobs, request.page_size, request.page_token)
        return pb.ListJobsResponse(jobs=[job_to_pb(j) for j in page], next_page_token=next_token or None)

    async def GetJob(self, request: pb.GetJobRequest, context: grpc.aio.ServicerContext) -> pb.GetJobResponse:
        job = await self.jobs.get(caller(), request.system_name, request.job_id)
        return pb.GetJobResponse(jobs=[job_to_pb(job)])

    async def GetJobMetadata(
        self, request: pb.GetJobMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetJobMetadataResponse:
        md = await self.jobs.metadata(caller(), request.system_name, request.job_id)
        return pb.GetJobMetadataResponse(jobs=[metadata_to_pb(md)])

    async def CancelJob(
        self, request: pb.CancelJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelJobResponse:
        await self.jobs.cancel(caller(), request.system_name, request.job_id)
        return pb.CancelJobResponse()

    async def AttachJob(
        self, request: pb.AttachJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.AttachJobResponse:
        await self.jobs.attach(caller(), request.system_name, request.job_id, request.command)
        return pb.AttachJobResponse()
