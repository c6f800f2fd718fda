"""ComputeService: FirecREST v2's /compute/{system}/jobs, as the calling user."""

from __future__ import annotations

from collections import OrderedDict

import grpc
import orjson
from google.api.httpbody_pb2 import HttpBody

from core.api.context import call_metadata, caller
from core.api.restjson import TwoForms, json_body, renderer
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
    return _int32(v)


def _status(s: JobStatus) -> pb.JobStatus:
    return pb.JobStatus(
        state=s.state,
        state_reason=s.state_reason,
        exit_code=_opt(s.exit_code),
        interrupt_signal=_opt(s.interrupt_signal),
    )


# JobStatus is immutable and the adapter shares equal ones: their messages are built once
_STATUS_MESSAGES: dict[JobStatus, pb.JobStatus] = {}


def _status_message(s: JobStatus) -> pb.JobStatus:
    m = _STATUS_MESSAGES.get(s)
    if m is None:
        if len(_STATUS_MESSAGES) > 4096:  # a bound: reason texts of pending jobs vary
            _STATUS_MESSAGES.clear()
        m = _STATUS_MESSAGES[s] = _status(s)
    return m


def _int32(v: int) -> int:
    return max(-(2**31), min(INT32_MAX, v))


def _fill_time(m: pb.JobTime, t: JobTime) -> None:
    # field by field on the message in place: a listing of thousands of jobs spent more time
    # building keyword-argument messages than parsing sacct's output
    m.SetInParent()  # present even when every field is unknown, as before
    if t.elapsed is not None:
        m.elapsed = _int32(t.elapsed)
    if t.start is not None:
        m.start = _int32(t.start)
    if t.end is not None:
        m.end = _int32(t.end)
    if t.suspended is not None:
        m.suspended = _int32(t.suspended)
    if t.limit is not None:
        m.limit = _int32(t.limit)


def _time(t: JobTime) -> pb.JobTime:
    m = pb.JobTime()
    _fill_time(m, t)
    return m


def fill_job(m: pb.Job, j: Job) -> None:
    """Writes the job into an (empty) message in place."""
    m.job_id = j.job_id
    m.name = j.name
    m.status.CopyFrom(_status_message(j.status))
    for s in j.steps:
        task = m.tasks.add(id=s.id, name=s.name)
        task.status.CopyFrom(_status_message(s.status))
        _fill_time(task.time, s.time)
    _fill_time(m.time, j.time)
    m.account = j.account
    m.allocation_nodes = _opt(j.allocation_nodes) or 0
    m.cluster = j.cluster
    m.group = j.group
    m.nodes = j.nodes
    m.partition = j.partition
    if j.priority is not None:
        m.priority = max(0, min(2**32 - 1, j.priority))
    if j.kill_request_user is not None:
        m.kill_request_user = j.kill_request_user
    m.user = j.user
    m.working_directory = j.working_directory


def job_to_pb(j: Job) -> pb.Job:
    m = pb.Job()
    fill_job(m, j)
    return m


class JobJson:
    """Each job's REST JSON (restjson's rendering of its message), kept while the same Job object
    comes back. Callers that shared one listing (core.adapters.coalesce) hold the same objects, so
    under load a listing of a thousand jobs is written once, not once per caller. Entries are
    keyed by identity and hold their job (so an id is never reused while kept); beyond `size`
    entries the oldest half goes. Only the last few listings matter (a later listing is made of
    new objects), so the size is a few listings' worth: a job and its part are about 3 KB."""

    _render = staticmethod(renderer(pb.Job.DESCRIPTOR))

    def __init__(self, size: int = 8192, listings: int = 8):
        self.size = size
        self._by_id: dict[int, tuple[Job, orjson.Fragment]] = {}
        # whole listings too: the callers of one shared listing ask for the same page of the same
        # objects (keyed by their ids; each entry holds its page, so the ids stay theirs)
        self.listings = listings
        self._listings: OrderedDict[tuple[str | None, tuple[int, ...]], tuple[list[Job], bytes]] = OrderedDict()

    def listing(self, page: list[Job], next_token: str | None) -> bytes:
        """ListJobs' REST answer for this page: the serialised HttpBody around the same bytes as
        restjson.to_json of its message (restjson.json_body; kept whole, so that the callers of a
        shared listing do not each copy a megabyte)."""
        key = (next_token, tuple(map(id, page)))
        hit = self._listings.get(key)
        if hit is not None:
            self._listings.move_to_end(key)
            return hit[1]
        body = _LIST_RENDER(pb.ListJobsResponse(next_page_token=next_token or None))
        body["jobs"] = [self(j) for j in page]
        data = json_body(orjson.dumps(body))
        self._listings[key] = (page, data)
        if len(self._listings) > self.listings:
            self._listings.popitem(last=False)
        return data

    def __call__(self, j: Job) -> orjson.Fragment:
        hit = self._by_id.get(id(j))
        if hit is not None and hit[0] is j:
            return hit[1]
        frag = orjson.Fragment(orjson.dumps(self._render(job_to_pb(j))))
        if len(self._by_id) >= self.size:
            for k in list(self._by_id)[: self.size // 2]:
                del self._by_id[k]
        self._by_id[id(j)] = (j, frag)
        return frag


_LIST_RENDER = renderer(pb.ListJobsResponse.DESCRIPTOR)


def jobs_response(page: list[Job], next_token: str | None, job_json: JobJson) -> TwoForms:
    """ListJobs' answer in its two forms: the message, or its REST JSON (the same bytes as
    restjson.to_json(message)) from job_json, which keeps each job's part and the last listings."""

    def message() -> pb.ListJobsResponse:
        response = pb.ListJobsResponse(next_page_token=next_token or None)
        for j in page:
            fill_job(response.jobs.add(), j)
        return response

    def json() -> bytes:
        return HttpBody.FromString(job_json.listing(page, next_token)).data

    return TwoForms(message, json, lambda: job_json.listing(page, next_token))


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
        self.job_json = JobJson()

    async def SubmitJob(
        self, request: pb.SubmitJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.SubmitJobResponse:
        request_id = request.request_id
        if not request_id:
            md = call_metadata(context)
            value = md.get(IDEMPOTENCY_HEADER)
            request_id = value if isinstance(value, str) else ""
        job_id = await self.jobs.submit(
            caller(), request.system_name, spec_from_pb(request.job), request_id or None
        )
        return pb.SubmitJobResponse(job_id=job_id)

    async def ListJobs(
        self, request: pb.ListJobsRequest, context: grpc.aio.ServicerContext
    ) -> TwoForms:
        # allusers is accepted but never widens the answer: a user sees only their own jobs
        jobs = await self.jobs.list(
            caller(), request.system_name, request.account, name=request.name, time_window=request.time_window
        )
        page, next_token = job_page(jobs, request.page_size, request.page_token)
        return jobs_response(page, next_token, self.job_json)

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
