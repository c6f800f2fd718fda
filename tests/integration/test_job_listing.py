"""Listing jobs as FirecREST v2 does after 2.5.6: `name` and `time_window` on
GET /compute/{system}/jobs (REST and pyfirecrest, unmodified), the same filters and page tokens on
native gRPC ListJobs; and pyfirecrest's wait_for_job on a job that does not exist."""

from __future__ import annotations

import os
import pwd
import shutil
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import firecrest
import grpc
import pytest

from core.proto.firecrest.compute.v1 import compute_pb2 as pb
from core.proto.firecrest.compute.v1 import compute_pb2_grpc
from tests.helpers import assert_firecrest_error


@pytest.fixture(scope="module")
def jobs(alice) -> Iterator[dict[str, str]]:
    """Three finished jobs of alice's: two named `<tag>-a`, one `<tag>-b` -> {job id: name}."""
    pw = pwd.getpwnam("alice")
    d = Path(pw.pw_dir) / f"f7t-listing-{uuid.uuid4().hex[:8]}"
    d.mkdir()
    os.chown(d, pw.pw_uid, pw.pw_gid)
    tag = uuid.uuid4().hex[:8]
    out = {}
    for suffix in ("a", "b", "a"):
        job = {"name": f"{tag}-{suffix}", "script": "#!/bin/bash\ntrue\n", "workingDirectory": str(d)}
        r = alice.post("/compute/{system}/jobs", json={"job": job})
        assert r.status_code == 201, r.text
        out[str(r.json()["jobId"])] = job["name"]
    end = time.monotonic() + 150
    for job_id in out:
        while True:
            r = _get(alice, f"/compute/{{system}}/jobs/{job_id}")
            if r.status_code == 200 and r.json()["jobs"][0]["time"]["end"]:
                break
            # other test files restart the core now and then: a 503 means "ask again"
            assert time.monotonic() < end, f"job {job_id} did not end: {r.status_code} {r.text[:200]}"
            time.sleep(1)
    yield out
    shutil.rmtree(d, ignore_errors=True)


def _get(api, path: str, **kw):  # type: ignore[no-untyped-def]
    """GET, asking again while the core restarts (other test files restart it: Envoy answers 503)."""
    end = time.monotonic() + 60
    while (r := api.get(path, **kw)).status_code == 503 and time.monotonic() < end:
        time.sleep(1)
    return r


def _named(jobs: dict[str, str], suffix: str) -> list[str]:
    return sorted((i for i, n in jobs.items() if n.endswith(f"-{suffix}")), key=int)


def test_rest_filters_by_name_and_window(alice, jobs):
    name = jobs[_named(jobs, "a")[0]]
    for window in ("1h", "8h", "24h", "3d", "7d", None):
        params = {"name": name} | ({"time_window": window} if window else {})
        r = _get(alice, "/compute/{system}/jobs", params=params)
        assert r.status_code == 200, r.text
        assert sorted((str(j["jobId"]) for j in r.json()["jobs"]), key=int) == _named(jobs, "a"), window
        assert set(r.json()) == {"jobs"}  # no paging keys in FirecREST's shape


def test_rest_rejects_an_unknown_window(alice):
    body = assert_firecrest_error(_get(alice, "/compute/{system}/jobs", params={"time_window": "2h"}), 400)
    assert "time_window" in body["message"] and "1h" in body["message"]


def test_pyfirecrest_job_info_filters(pyfirecrest, system, jobs):
    fc = pyfirecrest("alice")
    name = jobs[_named(jobs, "b")[0]]
    listed = fc.job_info(system, name=name, time_window="1h")
    assert [str(j["jobId"]) for j in listed] == _named(jobs, "b")


def test_native_list_jobs_pages_with_filters(channel, auth, system, jobs):
    stub = compute_pb2_grpc.ComputeServiceStub(channel)
    name = jobs[_named(jobs, "a")[0]]
    seen, token, pages = [], "", 0
    while True:
        resp = stub.ListJobs(
            pb.ListJobsRequest(system_name=system, name=name, time_window="1h", page_size=1, page_token=token),
            metadata=auth("alice"), timeout=60,
        )
        pages += 1
        seen += [j.job_id for j in resp.jobs]
        token = resp.next_page_token
        if not token:
            break
    assert seen == _named(jobs, "a") and pages == 2
    with pytest.raises(grpc.RpcError) as e:
        stub.ListJobs(pb.ListJobsRequest(system_name=system, page_token="x;y"), metadata=auth("alice"), timeout=60)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_wait_for_job_on_an_unknown_id_raises_not_found_after_its_timeout(pyfirecrest, system):
    fc = pyfirecrest("alice")
    t0 = time.monotonic()
    # pyfirecrest's "not found" for a job: the 404 with FirecREST v2's "Job not found." message,
    # retried until not_found_timeout, then raised (against FirecREST v2 the same)
    with pytest.raises(firecrest.UnexpectedStatusException) as e:
        fc.wait_for_job(system, "999999", not_found_timeout=4)
    assert time.monotonic() - t0 >= 4
    assert e.value.responses[-1].status_code == 404
    assert e.value.responses[-1].json()["message"] == "Job not found."


def test_listings_at_the_same_time_still_show_a_job_submitted_before_each_was_asked(alice):
    """Identical listings in flight together share runs (core.adapters.coalesce), but never one that
    started before the caller asked: the job accepted a moment ago is in the next listing."""
    with ThreadPoolExecutor(12) as ex:
        busy = [ex.submit(_get, alice, "/compute/{system}/jobs") for _ in range(12)]
        job = {"name": f"fresh-{uuid.uuid4().hex[:8]}", "script": "#!/bin/bash\nsleep 1\n",
               "workingDirectory": "/tmp", "standardOutput": "/dev/null"}
        r = alice.post("/compute/{system}/jobs", json={"job": job})
        assert r.status_code == 201, r.text
        job_id = str(r.json()["jobId"])
        listing = ex.submit(_get, alice, "/compute/{system}/jobs").result()
        assert listing.status_code == 200, listing.text
        assert job_id in [str(j["jobId"]) for j in listing.json()["jobs"]]
        assert [f.result().status_code for f in busy] == [200] * 12
