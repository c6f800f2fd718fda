"""ListJobs in its two forms: the REST JSON written job by job (each job's part kept while the same
Job object comes back) is byte for byte restjson's rendering of the message."""

from __future__ import annotations

import orjson

from core.api.compute import JobJson, jobs_response
from core.api.restjson import http_body, to_json
from core.domain.jobs import Job, JobStatus, JobStep, JobTime


def _jobs() -> list[Job]:
    done = JobStatus("COMPLETED", "None", 0, 0)
    return [
        Job("1", "plain", JobStatus("PENDING", "Priority"), JobTime(), "alice"),
        Job(
            "2", "with 'quotes' \"and\" ünïcode\n", done, JobTime(elapsed=5, start=10, end=15, suspended=0, limit=60),
            "alice", account="proj", allocation_nodes=2, cluster="c", group="g", nodes="n[1-2]", partition="p",
            priority=2**40, kill_request_user="root", working_directory="/home/alice/x y",
            steps=(JobStep("2.batch", "batch", done, JobTime(elapsed=5, start=10, end=15)),
                   JobStep("2.0", "srun", JobStatus("FAILED", None, 3, 9), JobTime(start=11))),
        ),
        Job("3", "", JobStatus("RUNNING"), JobTime(start=1), "alice", source="controller"),
    ]


def test_the_rest_json_is_the_messages_rendering() -> None:
    cache = JobJson()
    jobs = _jobs()
    for page, token in ((jobs, None), (jobs[:1], "1"), ([], None)):
        forms = jobs_response(page, token, cache)
        msg = forms.message()
        assert [j.job_id for j in msg.jobs] == [j.job_id for j in page]
        assert forms.json() == to_json(msg) and forms.http_body() == http_body(msg)
        # the callers of one shared listing (the same objects) get the body written once
        assert jobs_response(list(page), token, cache).http_body() is forms.http_body()
    # equal jobs that are other objects (a later listing) make a listing of their own, the same bytes
    later = [Job(**{f: getattr(j, f) for f in j.__dataclass_fields__}) for j in jobs]
    assert jobs_response(later, None, cache).json() == jobs_response(jobs, None, cache).json()
    assert jobs_response(later, None, cache).http_body() is not jobs_response(jobs, None, cache).http_body()


def test_a_job_is_written_once_while_the_same_object_comes_back() -> None:
    cache = JobJson(size=4)
    jobs = _jobs()
    first = [cache(j) for j in jobs]
    assert [cache(j) for j in jobs] == first and all(a is b for a, b in zip(first, [cache(j) for j in jobs], strict=True))
    # an equal job that is another object (a later listing) is written again, with the same bytes
    again = Job(**{f: getattr(jobs[0], f) for f in jobs[0].__dataclass_fields__})
    assert cache(again) is not first[0] and orjson.dumps(cache(again)) == orjson.dumps(first[0])
    # bounded: beyond its size the oldest half goes
    for i in range(10):
        cache(Job(str(100 + i), "n", JobStatus("PENDING"), JobTime(), "alice"))
    assert len(cache._by_id) <= 4
