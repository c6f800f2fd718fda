"""The firecrest gateway over native gRPC from Python, through Envoy.

    python example.py WORKDIR

Gets a token with client credentials from the issuer, lists the systems, submits a job that writes
into WORKDIR (a directory of the caller on the system), follows its task with
TasksService.WatchTask to its final state and prints the job's output (StorageService.View).
Environment (as `firecrest-stack env` prints it): F7T_TOKEN_URL, F7T_CLIENT_ID, F7T_CLIENT_SECRET,
F7T_GRPC_TARGET (host:port of Envoy), F7T_SYSTEM (optional: default the first system listed).
"""

from __future__ import annotations

import json
import os
import sys
import urllib.parse
import urllib.request
import uuid

import grpc
from firecrest_gateway_client.firecrest.compute.v1 import compute_pb2, compute_pb2_grpc
from firecrest_gateway_client.firecrest.status.v1 import status_pb2, status_pb2_grpc
from firecrest_gateway_client.firecrest.storage.v1 import storage_pb2, storage_pb2_grpc
from firecrest_gateway_client.firecrest.tasks.v1 import tasks_pb2, tasks_pb2_grpc

SCRIPT = '#!/bin/bash\necho "hello from the python example, job $SLURM_JOB_ID"\n'


def client_credentials_token(token_url: str, client_id: str, client_secret: str) -> str:
    form = urllib.parse.urlencode(
        {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}
    ).encode()
    with urllib.request.urlopen(urllib.request.Request(token_url, data=form), timeout=30) as r:  # noqa: S310
        return str(json.load(r)["access_token"])


def job_task_id(tasks: tasks_pb2_grpc.TasksServiceStub, job_id: str, metadata: list[tuple[str, str]]) -> str:
    """Every submission is a task of kind "job" whose metadata names the job: find it."""
    page_token = ""
    while True:
        page = tasks.ListTasks(
            tasks_pb2.ListTasksRequest(kind="job", page_size=100, page_token=page_token), metadata=metadata
        )
        for task in page.tasks:
            if task.metadata["jobId"] == job_id:
                return task.id
        page_token = page.next_page_token
        if not page_token:
            raise SystemExit(f"no task for job {job_id}")


def main() -> int:
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} WORKDIR", file=sys.stderr)
        return 2
    workdir = sys.argv[1].rstrip("/")
    token = client_credentials_token(
        os.environ["F7T_TOKEN_URL"], os.environ["F7T_CLIENT_ID"], os.environ["F7T_CLIENT_SECRET"]
    )
    # the token travels as call metadata; Envoy checks it on every call
    metadata = [("authorization", f"Bearer {token}")]
    with grpc.insecure_channel(os.environ["F7T_GRPC_TARGET"]) as channel:
        status = status_pb2_grpc.StatusServiceStub(channel)
        compute = compute_pb2_grpc.ComputeServiceStub(channel)
        tasks = tasks_pb2_grpc.TasksServiceStub(channel)
        storage = storage_pb2_grpc.StorageServiceStub(channel)

        systems = status.ListSystems(status_pb2.ListSystemsRequest(), metadata=metadata).systems
        print("systems:", " ".join(s.name for s in systems))
        system = os.environ.get("F7T_SYSTEM") or systems[0].name

        stdout = f"{workdir}/python-example-%j.out"
        job = compute_pb2.JobDescription(
            name="python-example", working_directory=workdir, script=SCRIPT, standard_output=stdout
        )
        # request_id makes the submission idempotent: a retry with the same id returns the same job
        submitted = compute.SubmitJob(
            compute_pb2.SubmitJobRequest(system_name=system, job=job, request_id=str(uuid.uuid4())),
            metadata=metadata,
        )
        print("job:", submitted.job_id)

        task_id = job_task_id(tasks, submitted.job_id, metadata)
        final = None
        for change in tasks.WatchTask(tasks_pb2.WatchTaskRequest(task_id=task_id), metadata=metadata):
            print("task:", task_id, tasks_pb2.TaskState.Name(change.task.state))
            final = change.task
        if final is None or final.state != tasks_pb2.TASK_STATE_SUCCEEDED:
            print("the job did not succeed:", final, file=sys.stderr)
            return 1

        view = storage.View(
            storage_pb2.ViewRequest(system_name=system, path=stdout.replace("%j", submitted.job_id)),
            metadata=metadata,
        )
        print("output:", view.output.rstrip("\n"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
