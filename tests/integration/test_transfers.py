"""Staged transfers (/filesystem/{system}/transfer/*) against the real stack through Envoy: S3
staging in s3rver (SigV4 checked), Slurm jobs run as the user, tasks followed through the Tasks
API, and pyfirecrest's own flows, unmodified.

Every test works in its own directory in the user's home (created as root, owned by the user,
removed afterwards), generates its data on the fly, and cancels any transfer it leaves unfinished
(an upload job waits for its data until the URLs expire). What is checked is what a user sees: a
status, a body, a file on disk with the right SHA-256, a task's state and error, an S3 answer.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import shutil
import subprocess
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import pytest
import requests

from core.adapters.s3 import Staging
from core.config import S3Config
from core.proto.firecrest.storage.v1 import storage_pb2 as pb
from core.proto.firecrest.storage.v1 import storage_pb2_grpc
from tests.helpers import error_reason as error_reason_of

TRANSFER = "/filesystem/{system}/transfer"
MiB = 1024 * 1024
DEADLINE = 600.0  # seconds: generous, the machine is small and loaded


# ---------------------------------------------------------------------------------- helpers


def owned(path: Path, user: str, mode: int | None = None) -> Path:
    pw = pwd.getpwnam(user)
    os.lchown(path, pw.pw_uid, pw.pw_gid)
    if mode is not None:
        path.chmod(mode)
    return path


def write(path: Path, data: bytes, user: str = "alice") -> Path:
    path.write_bytes(data)
    return owned(path, user, 0o644)


def random_file(path: Path, size: int) -> str:
    """`size` random bytes written in chunks; returns their SHA-256."""
    h = hashlib.sha256()
    with path.open("wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(left, 8 * MiB))
            h.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    return h.hexdigest()


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(8 * MiB), b""):
            h.update(chunk)
    return h.hexdigest()


def task_id_of(body: dict[str, Any]) -> str:
    """The transfer's task id: the name of the private directory that holds the job's logs (the
    job's working directory is the user's home, as FirecREST v2 reports it)."""
    tid = Path(body["transferJob"]["logs"]["outputLog"]).parent.name
    assert re.fullmatch(r"[0-9a-f]{32}", tid), body
    return tid


def wait_task(api: Any, tid: str, deadline: float = DEADLINE) -> dict[str, Any]:
    end = time.time() + deadline
    while True:
        r = api.post(f"/tasks/{tid}:wait", json={"timeout": "20s"})
        assert r.status_code == 200, r.text
        task = r.json()["task"]
        if task["done"] or time.time() > end:
            assert task["done"], f"task {tid} not done after {deadline} s: {task}"
            return task
        time.sleep(0.5)


def wait_for(what: str, check: Callable[[], bool], deadline: float = DEADLINE, every: float = 1.0) -> None:
    end = time.time() + deadline
    while not check():
        assert time.time() < end, f"{what}: not within {deadline} s"
        time.sleep(every)


def _error_info(task: dict[str, Any]) -> dict[str, Any]:
    """The google.rpc.ErrorInfo of a failed task's error (REST JSON: an Any with its @type)."""
    details = (task.get("error") or {}).get("details") or [{}]
    info: dict[str, Any] = details[0]
    if info:
        assert info["@type"] == "type.googleapis.com/google.rpc.ErrorInfo", info
    return info


def error_cause(task: dict[str, Any]) -> str:
    """The `cause` (the job's own code, e.g. NO_SPACE) of a failed task."""
    return str(_error_info(task).get("metadata", {}).get("cause", ""))


def error_reason(task: dict[str, Any]) -> str:
    return str(_error_info(task).get("reason", ""))


def put_parts(body: dict[str, Any], data: bytes) -> list[tuple[int, str]]:
    td = body["transferDirectives"]
    size = int(td["maxPartSize"])
    tags = []
    for i, url in enumerate(td["partsUploadUrls"]):
        r = requests.put(url, data=data[i * size : (i + 1) * size], timeout=300)
        assert r.status_code == 200, r.text
        tags.append((i + 1, r.headers["ETag"]))
    return tags


def complete(body: dict[str, Any], tags: list[tuple[int, str]]) -> requests.Response:
    xml = (
        "<CompleteMultipartUpload>"
        + "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>" for n, e in tags)
        + "</CompleteMultipartUpload>"
    )
    return requests.post(body["transferDirectives"]["completeUploadUrl"], data=xml, timeout=300)


def upload_body(path: str, size: int) -> dict[str, Any]:
    return {"path": path, "transfer_directives": {"transfer_method": "s3", "file_size": size}}


# ---------------------------------------------------------------------------------- fixtures


@pytest.fixture
def workdir() -> Iterator[Callable[[str], Path]]:
    """workdir('alice') -> a fresh directory in alice's home, owned by her; removed afterwards."""
    made: list[Path] = []

    def make(user: str = "alice") -> Path:
        d = Path(pwd.getpwnam(user).pw_dir) / f"xfer-{uuid.uuid4().hex[:12]}"
        d.mkdir()
        owned(d, user, 0o755)
        made.append(d)
        return d

    yield make
    for d in made:
        for p in [d, *d.rglob("*")]:
            if p.is_dir() and not p.is_symlink():
                p.chmod(0o755)
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def started(api: Callable[[str | None], Any]) -> Iterator[Callable[[str, str], str]]:
    """started(user, task_id) remembers a transfer: afterwards an unfinished one is cancelled and
    its private directory (~/.firecrest/transfers/<id>) removed."""
    seen: list[tuple[str, str]] = []

    def remember(user: str, tid: str) -> str:
        seen.append((user, tid))
        return tid

    yield remember
    for user, tid in seen:
        a = api(user)
        r = a.get(f"/tasks/{tid}")
        if r.status_code == 200 and not r.json()["task"]["done"]:
            a.post(f"/tasks/{tid}:cancel", json={})
        # the transfer's private directory (script, logs) in the user's home
        shutil.rmtree(Path(pwd.getpwnam(user).pw_dir) / ".firecrest" / "transfers" / tid, ignore_errors=True)


@pytest.fixture(scope="session")
def staging(stack: dict[str, str]) -> Staging:
    """The staging store as the core sees it (the same bucket), for looking at objects."""
    u = urlsplit(stack["F7T_S3_URL"])
    return Staging(
        S3Config(
            endpoint=u.netloc,
            access_key=stack["F7T_S3_ACCESS_KEY"],
            secret_key=stack["F7T_S3_SECRET_KEY"],
            secure=u.scheme == "https",
            region=stack.get("F7T_S3_REGION", "us-east-1"),
            multipart_part_size=64 * MiB,
        )
    )


def start_upload(
    api: Any, started: Callable[[str, str], str], user: str, path: str, size: int
) -> dict[str, Any]:
    r = api.post(f"{TRANSFER}/upload", json=upload_body(path, size))
    assert r.status_code == 201, r.text
    body = r.json()
    started(user, task_id_of(body))
    return body


# ---------------------------------------------------------------------------------- pyfirecrest


# 130 MiB: three parts of the stack's 64 MiB. pyfirecrest posts the completion with httpx's default
# 5 s read timeout while s3rver assembles the object on disk; 200 MiB took longer than that on a
# loaded 2-core machine (a limit of the client and the dev S3 server, not of the gateway)
@pytest.mark.parametrize("size", [3 * MiB, 130 * MiB], ids=["3MiB", "130MiB"])
def test_pyfirecrest_staged_upload_and_download(
    pyfirecrest, alice, system, workdir, staging, started, tmp_path, size
):
    d = workdir("alice")
    local = tmp_path / "local.bin"
    digest = random_file(local, size)
    client = pyfirecrest("alice")

    up = client.upload(system, str(local), str(d), "data.bin")
    assert up is not None, "a file above 1 MiB goes through the staged flow"
    info = up.transfer_data
    parts = info["transferDirectives"]["partsUploadUrls"]
    assert len(parts) == -(-size // (64 * MiB)) and int(info["transferDirectives"]["maxPartSize"]) == 64 * MiB
    target = d / "data.bin"
    assert target.stat().st_size == size and sha256_of(target) == digest
    assert target.stat().st_uid == pwd.getpwnam("alice").pw_uid
    assert sorted(p.name for p in d.iterdir()) == ["data.bin"], "no temporary file is left behind"
    task = wait_task(alice, started("alice", task_id_of(info)))
    assert task["state"] == "TASK_STATE_SUCCEEDED" and task["kind"] == "transfer.upload", task
    assert task["result"]["sha256"] == digest and int(task["result"]["size"]) == size
    key = task["metadata"]["objectKey"]
    assert key.startswith(f"alice/{task['id']}/")
    # the job deletes the staged object once the file is in place (right after it reports success)
    wait_for("the staged object is deleted", lambda: not staging.exists(key))

    back = tmp_path / "back.bin"
    down = client.download(system, str(target), str(back))
    assert down is not None
    assert sha256_of(back) == digest
    dtask = wait_task(alice, started("alice", task_id_of(down.transfer_data)))
    assert dtask["state"] == "TASK_STATE_SUCCEEDED" and dtask["result"]["sha256"] == digest, dtask
    staging.delete(dtask["metadata"]["objectKey"])  # else the janitor removes it when its URL expires


def test_pyfirecrest_cp_mv_rm_compress_extract(pyfirecrest, system, workdir, started):
    d = workdir("alice")
    src = d / "src dir"
    src.mkdir()
    owned(src, "alice", 0o755)
    names = ["plain.txt", "spaced name.txt", "q'uote\"$(touch x).txt", "-dash.txt"]
    for i, n in enumerate(names):
        write(src / n, f"file {i}\n".encode())
    client = pyfirecrest("alice")

    cp_info = client.cp(system, str(src), str(d / "copy"), blocking=True)
    started("alice", task_id_of(cp_info))
    assert sorted(p.name for p in (d / "copy").iterdir()) == sorted(names)
    assert (d / "copy" / names[2]).read_bytes() == b"file 2\n"

    started("alice", task_id_of(client.mv(system, str(d / "copy"), str(d / "moved"), blocking=True)))
    assert not (d / "copy").exists() and sorted(p.name for p in (d / "moved").iterdir()) == sorted(names)

    # rm, compress and extract try ops/* first and fall back to the transfer endpoint on 408;
    # here the transfer endpoints are called the way pyfirecrest does, and waited for by its code
    resp = client._post_request(
        endpoint=f"/filesystem/{system}/transfer/compress",
        json_data={
            "source_path": str(src),
            "target_path": str(d / "a.tar.gz"),
            "dereference": False,
            "compression": "gzip",
            "match_pattern": None,
        },
    )
    info = client._check_response(resp, 201)
    client._wait_for_transfer_job(info)
    started("alice", task_id_of(info))
    with tarfile.open(d / "a.tar.gz") as tf:
        assert sorted(m.name for m in tf.getmembers()) == sorted(
            ["src dir", *[f"src dir/{n}" for n in names]]
        )

    out = d / "out"
    out.mkdir()
    owned(out, "alice", 0o755)
    resp = client._post_request(
        endpoint=f"/filesystem/{system}/transfer/extract",
        json_data={"source_path": str(d / "a.tar.gz"), "target_path": str(out), "compression": "gzip"},
    )
    info = client._check_response(resp, 201)
    client._wait_for_transfer_job(info)
    started("alice", task_id_of(info))
    assert (out / "src dir" / names[3]).read_bytes() == b"file 3\n"

    resp = client._delete_request(
        endpoint=f"/filesystem/{system}/transfer/rm", params={"path": str(d / "moved")}
    )
    job_info = client._check_response(resp, 200)
    client._wait_for_transfer_job(job_info)
    started("alice", task_id_of(job_info))
    assert not (d / "moved").exists()
    private = Path(cp_info["transferJob"]["logs"]["outputLog"]).parent
    assert not (d / "x").exists() and not (private / "x").exists(), "names are data, never shell"
    log = client.view(system, job_info["transferJob"]["logs"]["outputLog"])
    assert "Files were successfully removed" in log


# ---------------------------------------------------------------------------------- REST shapes


def test_upload_answers_parts_completion_url_and_a_private_job(alice, system, workdir, started):
    d = workdir("alice")
    size = 130 * MiB  # 3 parts of 64 MiB; nothing is uploaded here
    body = start_upload(alice, started, "alice", str(d / "big.bin"), size)
    td, job = body["transferDirectives"], body["transferJob"]
    assert td["transferMethod"] == "s3" and int(td["maxPartSize"]) == 64 * MiB
    assert [re.search(r"partNumber=(\d+)", u).group(1) for u in td["partsUploadUrls"]] == ["1", "2", "3"]  # type: ignore[union-attr]
    tid = task_id_of(body)
    for u in [*td["partsUploadUrls"], td["completeUploadUrl"]]:
        assert f"/alice/{tid}/big.bin?" in u and "uploadId=" in u and "X-Amz-Signature=" in u
    assert job["system"] == system and job["jobId"].isdigit()
    home = pwd.getpwnam("alice").pw_dir
    assert job["workingDirectory"] == home  # FirecREST v2 reports the user's home
    private = Path(f"{home}/.firecrest/transfers/{tid}")
    assert job["logs"] == {"outputLog": f"{private}/output.log", "errorLog": f"{private}/error.log"}
    assert private.stat().st_mode & 0o777 == 0o700 and private.stat().st_uid == pwd.getpwnam("alice").pw_uid
    # the script with the URLs is gone once the job runs (Slurm keeps its own copy)
    wait_for("the job starts", lambda: not (private / "job.sh").exists())
    task = alice.get(f"/tasks/{tid}").json()["task"]
    assert task["kind"] == "transfer.upload" and task["metadata"]["jobId"] == job["jobId"]
    assert task["metadata"]["targetPath"] == str(d / "big.bin")


# ---------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [
        ("relative", 400, "absolute"),
        ("nul", 400, "NUL"),
        ("missing_dir", 404, "No such file or directory"),
        ("not_writable", 403, "Permission denied"),
        ("target_is_dir", 400, "Is a directory"),
        ("too_large", 400, "at most"),
        ("no_size", 400, "fileSize"),
        ("method", 400, "relay"),  # wormhole: needs a public relay
        ("account", 400, "account"),
    ],
)
def test_upload_input_is_checked_before_anything_runs(alice, workdir, case, status, message):
    d = workdir("alice")
    locked = d / "locked"
    locked.mkdir()  # root's, 0755: alice may not write into it
    body = upload_body(str(d / "f.bin"), 10)
    if case == "relative":
        body["path"] = "xfer/f.bin"
    elif case == "nul":
        body["path"] = str(d / "f\x00.bin")
    elif case == "missing_dir":
        body["path"] = str(d / "nope" / "f.bin")
    elif case == "not_writable":
        body["path"] = str(locked / "f.bin")
    elif case == "target_is_dir":
        body["path"] = str(locked)
    elif case == "too_large":
        body["transfer_directives"]["file_size"] = 64 * MiB * 10000 + 1
    elif case == "no_size":
        del body["transfer_directives"]["file_size"]
    elif case == "method":
        body["transfer_directives"]["transfer_method"] = "wormhole"
    elif case == "account":
        body["account"] = "a b;rm -rf ~"
    r = alice.post(f"{TRANSFER}/upload", json=body)
    assert r.status_code == status, r.text
    assert r.json()["errorType"] == "error" and message in r.json()["message"], r.text
    assert sorted(p.name for p in d.iterdir()) == ["locked"]


@pytest.mark.parametrize(
    ("endpoint", "case", "status", "message"),
    [
        ("download", "missing", 404, "No such file or directory"),
        ("download", "dir", 400, "is a directory"),
        ("download", "unreadable", 403, "Permission denied"),
        ("cp", "missing", 404, "No such file or directory"),
        ("cp", "target_dir_missing", 404, "No such file or directory"),
        ("mv", "not_writable", 403, "Permission denied"),
        ("rm", "missing", 404, "No such file or directory"),
        ("rm", "relative", 400, "absolute"),
        ("compress", "bad_compression", 400, "compression"),
        ("extract", "target_not_dir", 400, "not a directory"),
        ("cp", "unknown_system", 404, "System not found"),
    ],
)
def test_other_transfers_check_their_input(alice, workdir, endpoint, case, status, message):
    d = workdir("alice")
    write(d / "file", b"data")
    secret = d / "secret"
    secret.write_bytes(b"root only")
    secret.chmod(0o600)
    locked = d / "locked"
    locked.mkdir()
    (locked / "inside").write_bytes(b"x")
    base = TRANSFER
    body: dict[str, Any] = {"sourcePath": str(d / "file"), "targetPath": str(d / "copy")}
    if endpoint == "download":
        body = {
            "sourcePath": {"missing": str(d / "nope"), "dir": str(d), "unreadable": str(secret)}[case],
            "transferDirectives": {"transferMethod": "s3"},
        }
    elif case == "missing":
        body["sourcePath"] = str(d / "nope")
    elif case == "target_dir_missing":
        body["targetPath"] = str(d / "nope" / "copy")
    elif case == "not_writable":
        body["sourcePath"] = str(locked / "inside")
    elif case == "bad_compression":
        body["compression"] = "zip"
    elif case == "target_not_dir":
        body["targetPath"] = str(d / "file")
    elif case == "unknown_system":
        base = "/filesystem/no-such-system/transfer"
    if endpoint == "rm":
        path = "relative/x" if case == "relative" else str(d / "nope")
        r = alice.delete(f"{base}/rm", params={"path": path})
    else:
        r = alice.post(f"{base}/{endpoint}", json=body)
    assert r.status_code == status, r.text
    assert message.lower() in r.json()["message"].lower(), r.text
    assert sorted(p.name for p in d.iterdir()) == ["file", "locked", "secret"]


def test_hostile_target_names_are_exact_data(alice, workdir, started):
    d = workdir("alice")
    name = "we ird 'q\"$(touch pwned)`touch pwned2`;\n-x.bin"
    data = os.urandom(2 * MiB + 3)
    body = start_upload(alice, started, "alice", str(d / name), len(data))
    assert complete(body, put_parts(body, data)).status_code == 200
    task = wait_task(alice, task_id_of(body))
    assert task["state"] == "TASK_STATE_SUCCEEDED", task
    assert sorted(p.name for p in d.iterdir()) == [name]
    assert (d / name).read_bytes() == data
    home = Path(pwd.getpwnam("alice").pw_dir)
    assert not any((p / "pwned").exists() or (p / "pwned2").exists() for p in (d, home, Path.cwd()))


# ---------------------------------------------------------------------------------- isolation


def _staged_download(api: Any, started: Callable[[str, str], str], user: str, path: Path) -> tuple[str, str]:
    """A finished staged download of `path`: (download URL, object key)."""
    r = api.post(
        f"{TRANSFER}/download", json={"sourcePath": str(path), "transferDirectives": {"transferMethod": "s3"}}
    )
    assert r.status_code == 201, r.text
    body = r.json()
    task = wait_task(api, started(user, task_id_of(body)))
    assert task["state"] == "TASK_STATE_SUCCEEDED", task
    return body["transferDirectives"]["downloadUrl"], task["metadata"]["objectKey"]


def test_a_presigned_url_covers_one_users_object_only(alice, bob, workdir, started, staging):
    a_data, b_data = os.urandom(MiB + 1), os.urandom(MiB + 2)
    a_path, b_path = write(workdir("alice") / "a.bin", a_data), write(workdir("bob") / "b.bin", b_data, "bob")
    a_url, a_key = _staged_download(alice, started, "alice", a_path)
    b_url, b_key = _staged_download(bob, started, "bob", b_path)
    try:
        assert a_key.startswith("alice/") and b_key.startswith("bob/")
        assert requests.get(a_url, timeout=60).content == a_data
        assert requests.get(b_url, timeout=60).content == b_data
        # re-sign nothing: point bob's URL at alice's object, and alice's at bob's
        stolen = b_url.replace(f"/{b_key}?", f"/{a_key}?")
        assert stolen != b_url
        r = requests.get(stolen, timeout=60)
        assert r.status_code == 403 and "SignatureDoesNotMatch" in r.text, r.text
        r = requests.get(a_url.replace(f"/{a_key}?", f"/{b_key}?"), timeout=60)
        assert r.status_code == 403
        # nor may one delete or overwrite the other's object with one's own URL
        assert requests.delete(stolen, timeout=60).status_code == 403
        assert requests.put(stolen, data=b"evil", timeout=60).status_code == 403
        assert requests.get(a_url, timeout=60).content == a_data
        # and bob cannot see alice's transfer task
        a_tid = a_key.split("/")[1]
        assert bob.get(f"/tasks/{a_tid}").status_code == 404
    finally:
        staging.delete(a_key)
        staging.delete(b_key)


def test_a_tampered_presigned_url_is_refused(alice, workdir, started, staging):
    data = os.urandom(MiB + 5)
    url, key = _staged_download(alice, started, "alice", write(workdir("alice") / "t.bin", data))
    try:
        sig = re.search(r"X-Amz-Signature=([0-9a-f]+)", url).group(1)  # type: ignore[union-attr]
        flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
        for bad in (
            url.replace(sig, flipped),
            url.replace("X-Amz-Expires=", "X-Amz-Expires=9"),
            url.replace(key, key + "x"),
        ):
            r = requests.get(bad, timeout=60)
            assert r.status_code == 403, (bad, r.status_code, r.text)
        # without a signature it is not even a signed request (S3 answers 400 or 403)
        r = requests.get(url.split("&X-Amz-Signature=")[0], timeout=60)
        assert r.status_code in (400, 403) and data not in r.content
        assert requests.put(url, data=b"x", timeout=60).status_code == 403, "a GET URL does not allow PUT"
        assert requests.get(url, timeout=60).content == data
    finally:
        staging.delete(key)


def test_an_expired_presigned_url_is_refused(staging):
    key = f"alice/{uuid.uuid4().hex}/expiry-probe"
    staging.put(key, b"short-lived")
    try:
        assert requests.get(staging.presign("GET", key, 600), timeout=60).content == b"short-lived"
        url = staging.presign("GET", key, 1)
        time.sleep(2.5)
        r = requests.get(url, timeout=60)
        assert r.status_code == 403 and "expired" in r.text.lower(), r.text
    finally:
        staging.delete(key)


# ---------------------------------------------------------------------------------- failures


def test_an_interrupted_multipart_upload_leaves_no_target_and_no_object(alice, workdir, started, staging):
    d = workdir("alice")
    data = os.urandom(3 * MiB + 7)
    body = start_upload(alice, started, "alice", str(d / "never.bin"), len(data))
    tid = task_id_of(body)
    tags = put_parts(body, data)  # every part is there, the upload is never completed
    r = alice.post(f"/tasks/{tid}:cancel", json={})
    assert r.status_code == 200, r.text
    task = wait_task(alice, tid)
    assert task["state"] == "TASK_STATE_CANCELLED", task
    key = task["metadata"]["objectKey"]
    assert not staging.exists(key)
    # a client that completes late (its URL is still valid) creates an object nobody will
    # fetch: the janitor removes it, and no job moves it into place
    late = complete(body, tags)
    if late.status_code == 200:
        wait_for("the janitor deletes the orphan", lambda: not staging.exists(key), every=2.0)
    assert sorted(p.name for p in d.iterdir()) == [], "no target and no partial file"


def test_a_size_mismatch_fails_the_task_with_its_cause(alice, workdir, started, staging):
    d = workdir("alice")
    data = os.urandom(2 * MiB)
    body = start_upload(alice, started, "alice", str(d / "short.bin"), len(data) + 1)
    assert complete(body, put_parts(body, data)).status_code == 200
    task = wait_task(alice, task_id_of(body))
    assert task["state"] == "TASK_STATE_FAILED", task
    assert error_cause(task) == "SIZE_MISMATCH" and error_reason(task) == "FAILED_PRECONDITION", task
    assert "size" in task["error"]["message"] and str(len(data)) in task["error"]["message"], task
    assert not (d / "short.bin").exists() and list(d.iterdir()) == []
    wait_for("the object is gone", lambda: not staging.exists(task["metadata"]["objectKey"]))


def test_a_target_dir_made_read_only_fails_the_task_with_permission_denied(alice, workdir, started, staging):
    d = workdir("alice")
    sub = d / "sub"
    sub.mkdir()
    owned(sub, "alice", 0o755)
    data = os.urandom(2 * MiB + 1)
    body = start_upload(alice, started, "alice", str(sub / "f.bin"), len(data))
    sub.chmod(0o555)  # after the request's checks, before the job writes
    assert complete(body, put_parts(body, data)).status_code == 200
    task = wait_task(alice, task_id_of(body))
    assert task["state"] == "TASK_STATE_FAILED", task
    assert error_cause(task) == "PERMISSION_DENIED" and error_reason(task) == "PERMISSION_DENIED", task
    assert "Permission denied" in task["error"]["message"], task
    assert list(sub.iterdir()) == []
    wait_for("the object is gone", lambda: not staging.exists(task["metadata"]["objectKey"]))
    # the job's own logs say the same, in the user's private transfer directory
    out = Path(body["transferJob"]["logs"]["outputLog"]).read_text()
    assert "FIRECREST_TRANSFER_RESULT=PERMISSION_DENIED" in out and "successfully" not in out


def test_job_time_failures_say_why(alice, workdir, started):
    """Failures the up-front checks cannot see: a dangling link followed by cp -L (the source is
    missing) and an unreadable file inside a copied directory (permission denied)."""
    d = workdir("alice")
    (d / "dangling").symlink_to(d / "nowhere")
    os.lchown(d / "dangling", pwd.getpwnam("alice").pw_uid, pwd.getpwnam("alice").pw_gid)
    tree = d / "tree"
    tree.mkdir()
    owned(tree, "alice", 0o755)
    write(tree / "ok.txt", b"ok")
    (tree / "secret").write_bytes(b"root only")
    (tree / "secret").chmod(0o600)

    r = alice.post(
        f"{TRANSFER}/cp",
        json={"sourcePath": str(d / "dangling"), "targetPath": str(d / "copy1"), "dereference": True},
    )
    assert r.status_code == 201, r.text
    task = wait_task(alice, started("alice", task_id_of(r.json())))
    assert task["state"] == "TASK_STATE_FAILED", task
    assert error_cause(task) == "SOURCE_MISSING" and error_reason(task) == "NOT_FOUND", task
    assert "No such file or directory" in task["error"]["message"], task

    r = alice.post(f"{TRANSFER}/cp", json={"sourcePath": str(tree), "targetPath": str(d / "copy2")})
    assert r.status_code == 201, r.text
    task = wait_task(alice, started("alice", task_id_of(r.json())))
    assert task["state"] == "TASK_STATE_FAILED", task
    assert error_cause(task) == "PERMISSION_DENIED" and error_reason(task) == "PERMISSION_DENIED", task
    assert "secret" in task["error"]["message"] and "Permission denied" in task["error"]["message"], task


def test_a_full_file_system_fails_the_task_with_no_space(alice, workdir, started, staging):
    """The target directory is a 1 MiB tmpfs: the 2 MiB upload cannot land, the task says so, and
    neither the target nor a partial file remains."""
    d = workdir("alice")
    small = d / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(small)], check=True)
    try:
        owned(small, "alice", 0o755)
        data = os.urandom(2 * MiB)
        body = start_upload(alice, started, "alice", str(small / "big.bin"), len(data))
        assert complete(body, put_parts(body, data)).status_code == 200
        task = wait_task(alice, task_id_of(body))
        assert task["state"] == "TASK_STATE_FAILED", task
        assert error_cause(task) == "NO_SPACE" and error_reason(task) == "FAILED_PRECONDITION", task
        assert "No space left on device" in task["error"]["message"], task
        assert list(small.iterdir()) == [], "no target and no partial file"
        wait_for("the object is gone", lambda: not staging.exists(task["metadata"]["objectKey"]))
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_native_grpc_transfers(channel, auth, alice, system, workdir, started):
    stub = storage_pb2_grpc.StorageServiceStub(channel)
    d = workdir("alice")
    write(d / "a", b"grpc")
    resp = stub.TransferCopy(
        pb.TransferCopyRequest(system_name=system, source_path=str(d / "a"), target_path=str(d / "b")),
        metadata=auth("alice"),
        timeout=120,
    )
    tid = started("alice", Path(resp.transfer_job.logs.output_log).parent.name)
    assert resp.transfer_job.job_id.isdigit() and resp.transfer_job.logs.output_log.endswith("/output.log")
    assert wait_task(alice, tid)["state"] == "TASK_STATE_SUCCEEDED"
    assert (d / "b").read_bytes() == b"grpc"
    with pytest.raises(grpc.RpcError) as e:
        stub.TransferUpload(
            pb.TransferUploadRequest(
                system_name=system,
                source_path=str(d / "c"),
                transfer_directives=pb.TransferDirectives(transfer_method="s3", file_size=-1),
            ),
            metadata=auth("alice"),
            timeout=120,
        )
    assert (
        e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and error_reason_of(e.value) == "INVALID_ARGUMENT"
    )
    with pytest.raises(grpc.RpcError) as e:
        stub.TransferRemove(pb.TransferRemoveRequest(system_name=system, path=str(d / "a")), timeout=120)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert (d / "a").exists()
