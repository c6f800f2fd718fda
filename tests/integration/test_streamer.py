"""Transfer method "streamer" (FirecREST v2's firecrest-streamer) through the local stack, with
pyfirecrest unmodified: a job runs the streamer's server next to the file, the client connects
straight to it with the coordinates from the answer. And "wormhole", which needs a public relay:
a clear 400."""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import assert_firecrest_error

SIZE = 50 * 1024 * 1024


@pytest.fixture
def remote_dir() -> Iterator[Path]:
    pw = pwd.getpwnam("alice")
    d = Path(pw.pw_dir) / f"f7t-streamer-{uuid.uuid4().hex[:8]}"
    d.mkdir()
    os.chown(d, pw.pw_uid, pw.pw_gid)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def test_pyfirecrest_streams_50_mib_up_and_down(pyfirecrest, system, remote_dir, tmp_path):
    local = tmp_path / "up.bin"
    with local.open("wb") as f:
        for _ in range(SIZE // (1 << 20)):
            f.write(os.urandom(1 << 20))
    want = _sha256(local)
    fc = pyfirecrest("alice")

    fc.upload(system, str(local), str(remote_dir), "big.bin", transfer_method="streamer")
    # pyfirecrest returns once it has sent everything; the file appears under its name when the
    # server has checked size and SHA-256 (a moment later), never partly
    remote = remote_dir / "big.bin"
    end = time.monotonic() + 60
    while not remote.exists():
        assert time.monotonic() < end, "the streamed file never appeared"
        time.sleep(0.5)
    assert remote.stat().st_size == SIZE and _sha256(remote) == want
    assert remote.stat().st_uid == pwd.getpwnam("alice").pw_uid  # written as the user

    back = tmp_path / "down.bin"
    fc.download(system, str(remote), str(back), transfer_method="streamer")
    assert back.stat().st_size == SIZE and _sha256(back) == want


def test_streamer_answer_has_coordinates_not_urls(alice, remote_dir):
    r = alice.post("/filesystem/{system}/transfer/download",
                   json={"path": str(remote_dir / "nothing-here"), "transferDirectives": {"transferMethod": "streamer"}})
    assert_firecrest_error(r, 404)
    (remote_dir / "f").write_bytes(b"x")
    os.chown(remote_dir / "f", pwd.getpwnam("alice").pw_uid, -1)
    r = alice.post("/filesystem/{system}/transfer/download",
                   json={"path": str(remote_dir / "f"), "transferDirectives": {"transferMethod": "streamer"}})
    assert r.status_code == 201, r.text
    d = r.json()["transferDirectives"]
    assert d["transferMethod"] == "streamer" and d["coordinates"] and not d["downloadUrl"]
    job_id = r.json()["transferJob"]["jobId"]
    assert alice.delete(f"/compute/{{system}}/jobs/{job_id}").status_code == 204  # nobody will connect


def test_wormhole_is_a_clear_400(alice, remote_dir):
    for op, body in (
        ("upload", {"path": str(remote_dir / "x"), "transferDirectives": {"transferMethod": "wormhole", "fileSize": 3}}),
        ("download", {"path": str(remote_dir), "transferDirectives": {"transferMethod": "wormhole"}}),
    ):
        err = assert_firecrest_error(alice.post(f"/filesystem/{{system}}/transfer/{op}", json=body), 400)
        assert "wormhole" in err["message"] and "relay" in err["message"] and "streamer" in err["message"]
