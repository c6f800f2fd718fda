"""Compute through the real edge (REST, native gRPC and pyfirecrest) against the real Slurm.

Jobs run concurrently with other tests on a 2-core node, so every wait polls with a generous
deadline and nothing asserts on timings. Each test works in its own directory in alice's home.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import requests

from core.proto.firecrest.compute.v1 import compute_pb2 as pb
from core.proto.firecrest.compute.v1 import compute_pb2_grpc
from tests.helpers import assert_firecrest_error, error_reason

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the tests create directories in the users' homes")

FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "DEADLINE"}
JOB_DEADLINE = 600.0  # seconds: a job may queue behind others on the 2-core node


# ---------------------------------------------------------------- clients
class Rest:
    """REST as one user, with a fresh token per call. No retries: no test restarts this stack's
    core (those that kill or restart cores have gateways of their own), so a 5XX is a failure."""

    def __init__(self, api: Callable[[str | None], Any], user: str):
        self.api = api
        self.user = user

    def call(self, method: str, path: str, **kw: Any) -> requests.Response:
        return self.api(self.user).request(method, path, **kw)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.call("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.call("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> requests.Response:
        return self.call("PUT", path, **kw)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return self.call("DELETE", path, **kw)


def grpc_call(fn: Callable[..., Any], request: Any, metadata: Any) -> Any:
    """A unary native gRPC call."""
    return fn(request, metadata=metadata, timeout=120)


def pyf_call(fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """A pyfirecrest call."""
    return fn(*args, **kw)


@pytest.fixture
def rest(api: Callable[[str | None], Any]) -> Callable[[str], Rest]:
    return lambda user: Rest(api, user)


@pytest.fixture
def compute(channel: grpc.Channel) -> compute_pb2_grpc.ComputeServiceStub:
    return compute_pb2_grpc.ComputeServiceStub(channel)


# ---------------------------------------------------------------- jobs
def make_workdir(user: str, prefix: str = "f7t-compute") -> Path:
    """A fresh directory in the user's home, owned by the user (created by root here)."""
    home = Path("/home") / user
    d = home / f"{prefix}-{uuid.uuid4().hex[:10]}"
    d.mkdir(mode=0o755)
    st = home.stat()
    os.chown(d, st.st_uid, st.st_gid)
    return d


@pytest.fixture
def workdir() -> Iterator[Path]:
    d = make_workdir("alice")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def submit(client: Rest, job: dict[str, Any], request_id: str | None = None) -> str:
    body: dict[str, Any] = {"job": job, "request_id": request_id or uuid.uuid4().hex}
    r = client.post("/compute/{system}/jobs", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["jobId"])


def get_job(client: Rest, job_id: str) -> dict[str, Any]:
    r = client.get(f"/compute/{{system}}/jobs/{job_id}")
    assert r.status_code == 200, r.text
    (job,) = r.json()["jobs"]
    return dict(job)


def wait_job(
    client: Rest, job_id: str, *, until: Callable[[dict[str, Any]], bool] | None = None
) -> dict[str, Any]:
    """Poll the job until `until(job)` (default: a final state with its end time) or fail."""
    until = until or (lambda j: j["status"]["state"] in FINAL and j["time"].get("end") is not None)
    end = time.monotonic() + JOB_DEADLINE
    while True:
        job = get_job(client, job_id)
        if until(job):
            return job
        assert time.monotonic() < end, f"job {job_id} still {job['status']} after {JOB_DEADLINE:.0f} s"
        time.sleep(1)


def wait_for(predicate: Callable[[], Any], what: str, deadline: float = JOB_DEADLINE) -> Any:
    end = time.monotonic() + deadline
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(1)


def job_task(client: Rest, job_id: str) -> dict[str, Any]:
    """The task recorded for a job submission (kind "job", metadata.jobId)."""
    token = ""
    while True:
        r = client.get("/tasks", params={"kind": "job", "page_size": 200, "page_token": token})
        assert r.status_code == 200, r.text
        body = r.json()
        for t in body["tasks"]:
            if t["metadata"].get("jobId") == job_id:
                return dict(t)
        token = body["nextPageToken"]
        assert token, f"no task for job {job_id}"


def slurm_jobs_mentioning(stack: dict[str, str], token: str) -> list[str]:
    """Every job (any user, controller and accounting) whose name or directory contains token:
    how the tests prove that a refused submission ran nothing."""
    env = {**os.environ, "SLURM_CONF": stack["SLURM_CONF"]}
    acct = subprocess.run(
        ["sacct", "-a", "-X", "-n", "-P", "--format=JobID,JobName,WorkDir", "--starttime=now-1days"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    queue = subprocess.run(
        ["squeue", "-a", "-h", "-t", "all", "-o", "%i|%j|%Z"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    return [line for line in (acct + queue).splitlines() if token in line]


def cgroup_oom_supported(stack: dict[str, str]) -> bool:
    conf = Path(stack["SLURM_CONF"])
    cg = conf.with_name("cgroup.conf")
    return "task/cgroup" in conf.read_text() and cg.exists() and "ConstrainRAMSpace=yes" in cg.read_text()


# ---------------------------------------------------------------- exact final states
def test_final_states_are_exact_through_rest_grpc_and_pyfirecrest(
    rest, compute, auth, pyfirecrest, workdir, system, stack
):
    alice, bob = rest("alice"), rest("bob")
    fc = pyfirecrest("alice")
    wd = str(workdir)
    greeting = "a,b 'c' \"d\" $(e)"
    scripts = {
        "timeout": "#!/bin/bash\n#SBATCH --time=1\nsleep 600\n",
        "ok": '#!/bin/bash\necho "user=$(id -un)"\nprintf "greeting=%s\\n" "$GREETING"\n',
        "exit3": "#!/bin/bash\necho failing\nexit 3\n",
        "cancel": "#!/bin/bash\nsleep 600\n",
    }
    # OUT_OF_MEMORY needs Slurm's cgroup plugins; the stack configures them (its non-cgroup fallback
    # would make this state unreachable, and that is a failure of the stack, not a reason to skip)
    assert cgroup_oom_supported(stack), "the stack runs Slurm without cgroup memory limits"
    scripts["oom"] = "#!/bin/bash\n#SBATCH --mem=20M\nhead -c 300000000 /dev/zero | tail > /dev/null\n"

    # submit all at once (the time-limit job first: it takes 80-90 s), each through another client
    ids: dict[str, str] = {}
    ids["timeout"] = submit(alice, {"name": "timeout", "working_directory": wd, "script": scripts["timeout"]})
    ids["ok"] = pyf_call(fc.submit, system, wd, script_str=scripts["ok"], env_vars={"GREETING": greeting})[
        "jobId"
    ]
    resp = grpc_call(
        compute.SubmitJob,
        pb.SubmitJobRequest(
            system_name=system,
            job=pb.JobDescription(
                name="exit3", working_directory=wd, script=scripts["exit3"], standard_output="exit3.out"
            ),
            request_id=uuid.uuid4().hex,
        ),
        auth("alice"),
    )
    ids["exit3"] = resp.job_id
    ids["cancel"] = submit(alice, {"name": "cancel", "working_directory": wd, "script": scripts["cancel"]})
    ids["oom"] = submit(alice, {"name": "oom", "working_directory": wd, "script": scripts["oom"]})
    assert len(set(ids.values())) == len(ids)

    # pyfirecrest cancels one
    assert pyf_call(fc.cancel_job, system, ids["cancel"]) == {}

    # bob can neither see nor cancel nor attach to alice's jobs: 404 as for a job that does not exist
    bob_marker = Path(f"/tmp/bob-was-here-{uuid.uuid4().hex}")
    for job_id in (ids["ok"], ids["timeout"]):
        for method, path, kw in (
            ("GET", f"/compute/{{system}}/jobs/{job_id}", {}),
            ("GET", f"/compute/{{system}}/jobs/{job_id}/metadata", {}),
            ("DELETE", f"/compute/{{system}}/jobs/{job_id}", {}),
            (
                "PUT",
                f"/compute/{{system}}/jobs/{job_id}/attach",
                {"json": {"command": f"touch {bob_marker}"}},
            ),
        ):
            body = assert_firecrest_error(bob.call(method, path, **kw), 404)
            assert body["message"] == "Job not found."  # FirecREST v2's words, which clients match
        with pytest.raises(grpc.RpcError) as e:
            grpc_call(compute.GetJob, pb.GetJobRequest(system_name=system, job_id=job_id), auth("bob"))
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_reason(e.value) == "NOT_FOUND"
        with pytest.raises(grpc.RpcError) as e:
            grpc_call(compute.CancelJob, pb.CancelJobRequest(system_name=system, job_id=job_id), auth("bob"))
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert not bob_marker.exists()
    bobs = bob.get("/compute/{system}/jobs")
    assert bobs.status_code == 200, bobs.text
    assert not set(ids.values()) & {j["jobId"] for j in bobs.json()["jobs"]}

    expected = {
        "ok": ("COMPLETED", 0, "succeeded"),
        "exit3": ("FAILED", 3, "failed"),
        "cancel": ("CANCELLED", None, "cancelled"),
        "timeout": ("TIMEOUT", None, "failed"),  # bob's cancel above did not stop it
        "oom": ("OUT_OF_MEMORY", None, "failed"),
    }
    for name, job_id in ids.items():
        state, code, task_state = expected[name]
        job = wait_job(alice, job_id)
        # REST
        assert job["status"]["state"] == state, (name, job)
        assert isinstance(job["status"]["exitCode"], int)
        if code is not None:
            assert job["status"]["exitCode"] == code, (name, job)
        assert job["user"] == "alice" and job["jobId"] == job_id
        # native gRPC
        g = grpc_call(compute.GetJob, pb.GetJobRequest(system_name=system, job_id=job_id), auth("alice"))
        assert g.jobs[0].status.state == state
        assert g.jobs[0].status.exit_code == job["status"]["exitCode"]
        # pyfirecrest
        (info,) = pyf_call(fc.job_info, system, job_id)
        assert info["status"]["state"] == state
        assert info["status"]["exitCode"] == job["status"]["exitCode"]
        # the job's task follows it to the same end
        task = wait_for(
            lambda job_id=job_id: (t := job_task(alice, job_id))["done"] and t, f"the task of job {job_id}"
        )
        assert task["state"] == f"TASK_STATE_{task_state.upper()}", (name, task)
        if task_state == "succeeded":
            assert task["result"]["jobId"] == job_id and task["result"]["exitCode"] == 0
        else:
            details = task["error"]["details"][0]
            assert details["metadata"]["state"] == state
            assert details["metadata"]["exitCode"] == str(job["status"]["exitCode"])

    # the job ran as alice, with exactly the environment given
    out = (workdir / f"slurm-{ids['ok']}.out").read_text()
    assert "user=alice\n" in out
    assert f"greeting={greeting}\n" in out

    # metadata: the script and the output paths, through pyfirecrest and REST
    (md,) = pyf_call(fc.job_metadata, system, ids["exit3"])
    assert md["jobId"] == ids["exit3"]
    assert md["script"] == scripts["exit3"]
    assert md["standardOutput"] == f"{wd}/exit3.out"
    assert (workdir / "exit3.out").read_text() == "failing\n"
    r = alice.get(f"/compute/{{system}}/jobs/{ids['ok']}/metadata")
    assert r.status_code == 200, r.text
    (md,) = r.json()["jobs"]
    assert md["script"] == scripts["ok"]
    assert md["standardOutput"] == f"{wd}/slurm-{ids['ok']}.out"

    # alice's list has them all
    listed = {j["jobId"]: j for j in pyf_call(fc.job_info, system)}
    for name, job_id in ids.items():
        assert listed[job_id]["status"]["state"] == expected[name][0]


# ---------------------------------------------------------------- submission details
def test_a_job_is_found_right_after_submission(rest, workdir):
    alice = rest("alice")
    job_id = submit(alice, {"working_directory": str(workdir), "script": "#!/bin/bash\nsleep 2\n"})
    job = get_job(alice, job_id)  # no pause: the controller knows it before accounting does
    assert job["jobId"] == job_id
    assert job["status"]["state"] in {"PENDING", "RUNNING", "COMPLETING", "COMPLETED"}
    listed = alice.get("/compute/{system}/jobs")
    assert job_id in {j["jobId"] for j in listed.json()["jobs"]}
    assert wait_job(alice, job_id)["status"]["state"] == "COMPLETED"


def test_an_inline_script_is_kept_in_a_private_file_of_its_own(rest, workdir):
    """The text of an inline script, exactly, in ~/.firecrest/jobs/<task id>.sh (mode 600, the
    directory 700), which the job runs and its task records."""
    alice = rest("alice")
    text = "#!/bin/bash\n# it's \"$HOME\" $(id) `x` \\ caf\u00e9\necho ran\n"
    job_id = submit(alice, {"working_directory": str(workdir), "script": text})
    r = alice.get("/tasks", params={"kind": "job", "pageSize": 100})
    assert r.status_code == 200, r.text
    (task,) = [t for t in r.json()["tasks"] if t["metadata"].get("jobId") == job_id]
    script = Path(task["metadata"]["scriptFile"])
    assert script == Path(pwd.getpwnam("alice").pw_dir) / ".firecrest" / "jobs" / f"{task['id']}.sh"
    assert script.read_text() == text
    assert script.stat().st_mode & 0o777 == 0o600 and script.parent.stat().st_mode & 0o777 == 0o700
    assert wait_job(alice, job_id)["status"]["state"] == "COMPLETED"
    assert (workdir / f"slurm-{job_id}.out").read_text() == "ran\n"


def test_script_path_and_options(rest, workdir):
    alice = rest("alice")
    script = workdir / "job.sh"
    script.write_text("#!/bin/bash\necho from-file $SLURM_JOB_PARTITION\ncat\n")
    os.chown(script, workdir.stat().st_uid, workdir.stat().st_gid)
    (workdir / "in.txt").write_text("stdin-data\n")
    job_id = submit(
        alice,
        {
            "name": "from-path",
            "workingDirectory": str(workdir),
            "scriptPath": str(script),
            "partition": "long",
            "account": "f7t",
            "standardInput": "in.txt",
            "standardOutput": "out-%j.txt",
            "standardError": "err-%j.txt",
        },
    )
    job = wait_job(alice, job_id)
    assert (job["status"]["state"], job["partition"], job["account"], job["name"]) == (
        "COMPLETED",
        "long",
        "f7t",
        "from-path",
    )
    assert (workdir / f"out-{job_id}.txt").read_text() == "from-file long\nstdin-data\n"


def test_same_request_id_gives_one_job(rest, compute, auth, system, workdir):
    alice, bob = rest("alice"), rest("bob")
    key = f"idem-{uuid.uuid4().hex}"
    name = f"idem-{uuid.uuid4().hex[:8]}"
    job = {"name": name, "working_directory": str(workdir), "script": "#!/bin/bash\ntrue\n"}
    first = submit(alice, job, key)
    assert submit(alice, job, key) == first
    g = grpc_call(
        compute.SubmitJob,
        pb.SubmitJobRequest(
            system_name=system,
            request_id=key,
            job=pb.JobDescription(name=name, working_directory=str(workdir), script="#!/bin/bash\ntrue\n"),
        ),
        auth("alice"),
    )
    assert g.job_id == first
    # the key may also come as an Idempotency-Key header
    r = alice.post("/compute/{system}/jobs", json={"job": job}, headers={"Idempotency-Key": key})
    assert r.status_code == 201 and r.json()["jobId"] == first, r.text
    # concurrent retries with a new key: still one job
    key2 = f"idem-{uuid.uuid4().hex}"
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(submit(alice, job, key2))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and len(set(results)) == 1 and results[0] != first
    # the same key from another user is another submission
    bob_dir = make_workdir("bob")
    try:
        other = submit(bob, {**job, "working_directory": str(bob_dir)}, key)
        assert other != first
    finally:
        shutil.rmtree(bob_dir, ignore_errors=True)

    def mine() -> list[str]:
        return sorted(
            j["jobId"] for j in alice.get("/compute/{system}/jobs").json()["jobs"] if j["name"] == name
        )

    # both jobs are listed (a job that has just ended may need a moment to reach accounting)
    assert wait_for(lambda: len(mine()) >= 2 and mine(), "both jobs in the list", 120) == sorted(
        {first, results[0]}
    )


def test_attach_runs_a_command_inside_the_running_job(rest, workdir):
    alice = rest("alice")
    job_id = submit(alice, {"working_directory": str(workdir), "script": "#!/bin/bash\nsleep 300\n"})
    try:
        wait_job(alice, job_id, until=lambda j: j["status"]["state"] == "RUNNING")
        out = workdir / "attach.out"
        r = alice.put(
            f"/compute/{{system}}/jobs/{job_id}/attach",
            json={"command": f"echo \"attached $(id -un) $SLURM_JOB_ID\" > '{out}'"},
        )
        assert r.status_code == 204, r.text
        assert r.content == b""
        wait_for(lambda: out.exists() and out.read_text(), "the attached command's output", 120)
        assert out.read_text() == f"attached alice {job_id}\n"
    finally:
        assert alice.delete(f"/compute/{{system}}/jobs/{job_id}").status_code == 204
    wait_job(alice, job_id)
    r = alice.put(f"/compute/{{system}}/jobs/{job_id}/attach", json={"command": "true"})
    assert_firecrest_error(r, 400)


# ---------------------------------------------------------------- bad input
SCRIPT = "#!/bin/bash\ntouch ran-{token}\n"


@pytest.mark.parametrize(
    ("case", "job", "status", "message"),
    [
        ("empty script", {"script": ""}, 400, "script"),
        ("blank script", {"script": " \n\t"}, 400, "empty"),
        ("no interpreter line", {"script": "touch ran-{token}\n"}, 400, "#!"),
        ("neither script nor path", {"script": None}, 400, "script"),
        ("script and path", {"scriptPath": "/bin/true"}, 400, "either"),
        # a field the caller left out is named by its JSON name, in camelCase
        ("no working directory", {"working_directory": None}, 400, "workingDirectory"),
        ("relative working directory", {"working_directory": "f7t-relative"}, 400, "absolute"),
        (
            "missing working directory",
            {"working_directory": "{wd}/missing"},
            400,
            "No such file or directory",
        ),
        ("forbidden working directory", {"working_directory": "/root"}, 400, "Permission denied"),
        (
            "missing script path",
            {"script": None, "scriptPath": "{wd}/nope.sh"},
            400,
            "No such file or directory",
        ),
        ("relative script path", {"script": None, "scriptPath": "job.sh"}, 400, "absolute"),
        ("unknown partition", {"partition": "nope"}, 400, "partition"),
        ("account the user is not in", {"account": "nope"}, 400, "Invalid account"),
        ("unknown reservation", {"reservation": "nope"}, 400, "reservation"),
        ("unknown feature", {"constraints": "nope"}, 400, "feature"),
        ("newline in name", {"name": "a\nb"}, 400, "control characters"),
        ("bad env name", {"env": {"A B": "x"}}, 400, "environment variable"),
    ],
)
def test_bad_input_is_a_clear_4xx_and_runs_nothing(rest, workdir, stack, case, job, status, message):
    alice = rest("alice")
    token = uuid.uuid4().hex[:12]
    body: dict[str, Any] = {
        "name": f"bad-{token}",
        "working_directory": str(workdir),
        "script": SCRIPT.format(token=token),
    }
    for k, v in job.items():
        if v is None:
            body.pop(k, None)
        else:
            body[k] = v.format(token=token, wd=workdir) if isinstance(v, str) else v
    r = alice.post("/compute/{system}/jobs", json={"job": body})
    err = assert_firecrest_error(r, status)
    assert message in err["message"], (case, err)
    assert not slurm_jobs_mentioning(stack, token)
    assert not (workdir / f"ran-{token}").exists()


def test_unknown_system_is_404(rest, compute, auth, workdir):
    r = rest("alice").post(
        "/compute/nope/jobs",
        json={"job": {"working_directory": str(workdir), "script": "#!/bin/bash\ntrue\n"}},
    )
    assert assert_firecrest_error(r, 404)["data"] is None  # FirecREST v2's shape
    assert r.headers["f7t-error-reason"] == "SYSTEM_NOT_FOUND"
    for path in ("/compute/nope/jobs", "/compute/nope/jobs/1", "/compute/nope/jobs/1/metadata"):
        assert_firecrest_error(rest("alice").get(path), 404)
    with pytest.raises(grpc.RpcError) as e:
        grpc_call(compute.GetJob, pb.GetJobRequest(system_name="nope", job_id="1"), auth("alice"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(e.value) == "SYSTEM_NOT_FOUND"


@pytest.mark.parametrize("job_id", ["999999999", "12abc", "1;id"])
def test_unknown_or_malformed_job_ids(rest, job_id):
    r = rest("alice").get(f"/compute/{{system}}/jobs/{job_id}")
    assert r.status_code in (400, 404), r.text
    assert_firecrest_error(r, r.status_code)


def hostile(token: str, absolute: bool) -> str:
    """Quotes, $(), backticks, ; & | < >, a comment and leading dashes: any shell that saw this
    string unquoted would create a marker file."""
    m = (lambda i: f"/tmp/pwned-{token}-{i}") if absolute else (lambda i: f"pwned-{token}-{i}")
    return f"--x'\"$(touch {m(1)})`touch {m(2)}`;touch {m(3)} #&|<> --wrap=touch {m(4)}"


def markers(token: str, *dirs: Path) -> list[Path]:
    found = [p for p in Path("/tmp").glob(f"pwned-{token}-*")]
    for d in dirs:
        found += list(d.glob(f"pwned-{token}-*"))
    return found


def test_hostile_strings_are_exact_data(rest, workdir):
    alice = rest("alice")
    token = uuid.uuid4().hex[:12]
    h_abs, h_rel = hostile(token, True), hostile(token, False)
    job_id = submit(
        alice,
        {
            "name": h_abs,
            "working_directory": str(workdir),
            "standard_output": h_rel,
            "standard_error": h_rel + ".err",
            "env": {"HOSTILE": h_abs},
            "script": '#!/bin/bash\nprintf "%s" "$HOSTILE" > hostile.txt\n',
        },
    )
    job = wait_job(alice, job_id)
    assert job["status"]["state"] == "COMPLETED", job
    # exact; Slurm's accounting stores a double quote in a job name as a backquote (the
    # controller's record, used while accounting lags, has it as given)
    assert job["name"] in (h_abs, h_abs.replace('"', "`"))
    assert (workdir / "hostile.txt").read_text() == h_abs
    assert (workdir / h_rel).exists() and (workdir / (h_rel + ".err")).exists()
    r = alice.get(f"/compute/{{system}}/jobs/{job_id}/metadata")
    assert r.json()["jobs"][0]["standardOutput"] == f"{workdir}/{h_rel}"
    assert not markers(token, workdir, Path("/home/alice"))


@pytest.mark.parametrize(
    "field",
    ["account", "partition", "reservation", "constraints", "env_name", "working_directory", "script_path"],
)
def test_hostile_strings_are_refused_where_they_cannot_be_data(rest, workdir, stack, field):
    alice = rest("alice")
    token = uuid.uuid4().hex[:12]
    h = hostile(token, False)
    job: dict[str, Any] = {
        "name": f"hostile-{token}",
        "working_directory": str(workdir),
        "script": f"#!/bin/bash\ntouch ran-{token}\n",
    }
    if field == "env_name":
        job["env"] = {h: "x"}
    elif field == "working_directory":
        job["working_directory"] = f"{workdir}/{h}"
    elif field == "script_path":
        del job["script"]
        job["script_path"] = f"{workdir}/{h}"
    else:
        job[field] = h
    r = alice.post("/compute/{system}/jobs", json={"job": job})
    err = assert_firecrest_error(r, 400)
    if field in ("working_directory", "script_path"):
        assert h in err["message"]  # the path, exactly as given, in the remote error
    assert not slurm_jobs_mentioning(stack, token)
    assert not markers(token, workdir, Path("/home/alice"))
    assert not (workdir / f"ran-{token}").exists()
