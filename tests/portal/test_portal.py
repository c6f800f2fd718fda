"""The web portal in a real browser: Debian's headless Chromium driven by playwright-core, through
the real issuer's login form, Envoy, the core, Slurm and the S3 staging store.

Each test runs one scenario of browser.mjs and checks what it found. Screenshots of every screen
go to $F7T_TEST_ARTEFACTS/portal (default build/test-artefacts/portal).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("browser.mjs")
CHROMIUM = os.environ.get("F7T_CHROMIUM", "/usr/bin/chromium")
ARTEFACTS = Path(os.environ.get("F7T_TEST_ARTEFACTS", REPO / "build" / "test-artefacts")) / "portal"


@pytest.fixture(scope="module")
def browser(stack: dict[str, str]):
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: ./run test installs Debian's chromium"
    assert (REPO / "portal" / "node_modules" / "playwright-core").is_dir(), "the stack's up installs the portal's npm packages"
    logins = {u: stack[f"F7T_{u.upper()}_PASSWORD"] for u in ("alice", "bob")}
    ARTEFACTS.mkdir(parents=True, exist_ok=True)

    def run(scenario: str, timeout: float = 900) -> dict:
        for old in ARTEFACTS.glob(f"{scenario}-*.png"):
            old.unlink()
        env = dict(os.environ, F7T_PORTAL_URL=stack["F7T_PORTAL_URL"], F7T_PORTAL_LOGINS=json.dumps(logins),
                   F7T_ARTEFACTS=str(ARTEFACTS), F7T_CHROMIUM=CHROMIUM)
        r = subprocess.run(["node", str(SCRIPT), scenario], capture_output=True, text=True, env=env,
                           timeout=timeout, cwd=REPO)
        lines = [line for line in r.stdout.splitlines() if line.startswith("{")]
        assert lines, f"no findings from {scenario}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        found = json.loads(lines[-1])
        assert r.returncode == 0 and "error" not in found, (
            f"{scenario} failed (screenshots in {ARTEFACTS}): {found.get('error')}\n{r.stderr[-2000:]}")
        shots = sorted(p.name for p in ARTEFACTS.glob(f"{scenario}-*.png"))
        assert shots, f"{scenario} saved no screenshots"
        found["screenshots"] = shots
        return found

    return run


def test_login_submit_follow_live_output_cancel_lists_logout(browser) -> None:
    f = browser("job")
    # systems: health, partitions and the user's accounts
    assert "HEALTHY" in f["systemsText"] and "Partitions on" in f["systemsText"]
    assert "f7t (default)" in f["systemsText"]
    # the job's state changed on the page without a reload, pushed over gRPC-Web, up to COMPLETED
    assert f["notReloaded"] and f["seen"][-1] == "COMPLETED", f["seen"]
    assert {"PENDING", "RUNNING"} & set(f["seen"][:-1]), f["seen"]  # seen before it finished
    assert f["liveNote"] == "The job has finished."
    assert f["output"].strip() == f"{f['marker']} says hello"
    # a long job cancelled from the page
    assert f["cancelledSeen"][-1] == "CANCELLED" and len(f["cancelledSeen"]) >= 2
    assert f["jobId"] in f["jobList"] and f["longId"] in f["jobList"]
    assert f"job {f['jobId']}" in f["taskList"] and "SUCCEEDED" in f["taskList"]
    # keyboard only, and a phone's width without sideways scrolling
    assert f["keyboardReachedJobs"]
    assert f["phoneOverflow"] <= 0
    # signing out leaves no token behind and comes back to the portal
    assert f["tokensAfterLogout"] is None
    assert f["afterLogoutUrl"].startswith(os.environ.get("F7T_PORTAL_URL", "http"))


def test_file_browser_and_staged_transfer_of_20_mib(browser) -> None:
    f = browser("files")
    assert f["smallView"] == f["smallDownload"] and f["smallView"].startswith("hello from the portal")
    # the progress bar told the user what happened: the bytes to the staging area, then the move
    assert any("to the staging area: 20 MiB of 20 MiB" in p for p in f["uploadProgress"]), f["uploadProgress"]
    assert any("into place" in p for p in f["uploadProgress"]), f["uploadProgress"]
    assert "big.bin" in f["listing"] and "20 MiB" in f["listing"]
    assert f["bigDownloadSha"] == f["bigSha"]
    assert f["folderGone"]
    assert f["missingFolderError"].startswith("The folder /home/alice/portal-") and "does not exist" in f["missingFolderError"]


def test_session_outlives_the_access_token(browser) -> None:
    f = browser("expiry")
    assert f["firstTokenRefused"]  # the gateway refuses the first access token by now
    assert f["newTokenDiffers"] and f["refreshRotated"] and f["stillSignedIn"]
    assert f["errorsShown"] == 0
    assert f["refreshAfterLogout"] == 400  # logout ended the session at the issuer too


def test_second_user_cannot_see_the_first_users_jobs(browser) -> None:
    f = browser("isolation")
    assert f["bobUser"] == "Bob (bob)"
    # the table's first column, whole: a job id can be part of another row's text (a job name)
    bob_ids = {line.split("\t", 1)[0].strip() for line in f["bobJobsText"].splitlines()}
    assert f["aliceJob"] not in bob_ids, f["bobJobsText"]
    assert f["bobDirectError"] == (f"Job {f['aliceJob']} was not found on cluster: "
                                   "it does not exist or belongs to someone else.")
