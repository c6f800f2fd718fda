"""The client examples in four languages, built from `buf generate` stubs and run against the stack.

Each example (clients/<lang>/example) gets a token with client credentials from the issuer, lists
the systems, submits a job, follows its task with TasksService.WatchTask and prints the job's
output through StorageService.View, all over native gRPC through Envoy. The test checks what the
example printed against what the gateway and the file system say independently: the task over
REST, the output file on disk.

Builds go to build/clients/<digest>/ (the digest covers the protos, buf.gen.yaml, the plugin and
the example sources), laid out as a GOPATH (src/firecrest-gateway/clients/...): a rerun with
nothing changed builds nothing; the C++ stubs take a minute or two on 2 cores the first time, and
ccache (build/clients/ccache) keeps their objects across digests, so then only the link remains.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clients.generate import digest, generate
from tests.conftest import REPO, Api
from tests.integration.test_compute import make_workdir

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the tests create directories in the users' homes")

CACHE = REPO / "build" / "clients"
# handwritten sources of each client (everything else under clients/<lang> is generated or built)
SOURCES = {
    "python": ("clients/python/pyproject.toml", "clients/python/example"),
    "typescript": ("clients/typescript/package.json", "clients/typescript/package-lock.json",
                   "clients/typescript/tsconfig.json", "clients/typescript/src/example.ts"),
    "go": ("clients/go/example",),
    "cpp": ("clients/cpp/Makefile", "clients/cpp/example"),
}
LANGS = list(SOURCES)


def _run(cmd: list[str], cwd: Path, log: Path, **env: str) -> None:
    """Run a build step; on failure the test fails with its output."""
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        r = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env},
                           check=False, timeout=1200)
    if r.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed (rc {r.returncode}):\n{log.read_text()[-6000:]}")


class Builds:
    """One generated tree per digest, each language built at most once into it."""

    def __init__(self) -> None:
        key = digest(tuple(p for paths in SOURCES.values() for p in paths))[:16]
        self.base = CACHE / key
        self.tree = self.base / "src" / "firecrest-gateway"  # a GOPATH: src/<import path>

    def _generated(self) -> None:
        if (self.base / ".generated").exists():
            return
        shutil.rmtree(self.base, ignore_errors=True)
        self.tree.mkdir(parents=True)
        try:
            generate(self.tree)
        except (RuntimeError, subprocess.CalledProcessError) as e:
            pytest.fail(f"generating the stubs failed: {e}")
        for paths in SOURCES.values():
            for rel in paths:
                src, dst = REPO / rel, self.tree / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                if src.is_dir():
                    shutil.copytree(src, dst, dirs_exist_ok=True)
                else:
                    shutil.copy2(src, dst)
        (self.base / ".generated").touch()
        for old in CACHE.iterdir():  # earlier digests: the protos or the examples changed since
            if old.is_dir() and old.name not in (self.base.name, "go-cache", "ccache"):
                shutil.rmtree(old, ignore_errors=True)

    def _build(self, lang: str, log: Path) -> None:
        d = self.tree / "clients" / lang
        if lang == "python":
            # an installable package: pip builds and installs it (its dependencies are the venv's)
            shutil.rmtree(self.base / "python-site", ignore_errors=True)
            _run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
                  "--target", str(self.base / "python-site"), str(d)], d, log)
        elif lang == "typescript":
            if not (d / "node_modules").is_symlink():
                (d / "node_modules").symlink_to(REPO / "clients" / "typescript" / "node_modules")
            _run(["node_modules/.bin/tsc", "-p", "."], d, log)
        elif lang == "go":
            # GOPATH mode against Debian's golang-google-grpc-dev & co. in /usr/share/gocode
            _run(["go", "build", "-o", str(self.base / "bin" / "go-example"), "./example"], d, log,
                 GO111MODULE="off", GOPATH=f"{self.base}:/usr/share/gocode", GOFLAGS="",
                 GOCACHE=str(CACHE / "go-cache"))
        elif lang == "cpp":
            # ccache (when installed) keeps the objects of generated files that did not change
            # across digests: a change to one proto or to the example recompiles only that
            cxx = "ccache g++" if shutil.which("ccache") else "g++"
            jobs = str(min(2, os.cpu_count() or 1))
            _run(["make", "-j", jobs, "GEN=gen", f"BUILD={self.base / 'cpp-build'}", "OPT=-O0", f"CXX={cxx}"],
                 d, log, CCACHE_DIR=str(CACHE / "ccache"), CCACHE_BASEDIR=str(CACHE))

    def command(self, lang: str) -> list[str]:
        """Generate and build (once per digest, under a lock) and answer the example's command."""
        CACHE.mkdir(parents=True, exist_ok=True)
        with (CACHE / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._generated()
            done = self.base / f".built-{lang}"
            if not done.exists():
                self._build(lang, self.base / f"build-{lang}.log")
                done.touch()
        d = self.tree / "clients" / lang
        return {
            "python": [sys.executable, str(d / "example" / "example.py")],
            "typescript": ["node", str(d / "dist" / "example.js")],
            "go": [str(self.base / "bin" / "go-example")],
            "cpp": [str(self.base / "cpp-build" / "example")],
        }[lang]


@pytest.fixture(scope="module")
def builds() -> Builds:
    return Builds()


@pytest.fixture
def workdir() -> Iterator[Path]:
    d = make_workdir("alice", "f7t-clients")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("lang", LANGS)
def test_example_runs_a_job_through_envoy(
    lang: str, builds: Builds, stack: dict[str, str], workdir: Path, api: Callable[[str | None], Api]
) -> None:
    cmd = builds.command(lang)
    env = {
        **os.environ,
        "PYTHONPATH": str(builds.base / "python-site"),
        "F7T_TOKEN_URL": stack["F7T_TOKEN_URL"],
        "F7T_GRPC_TARGET": stack["F7T_GRPC_TARGET"],
        "F7T_SYSTEM": stack["F7T_SYSTEM"],
        "F7T_CLIENT_ID": stack["F7T_ALICE_CLIENT_ID"],
        "F7T_CLIENT_SECRET": stack["F7T_ALICE_CLIENT_SECRET"],
    }
    r = subprocess.run([*cmd, str(workdir)], env=env, capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, f"{lang} example failed:\n{r.stdout}\n{r.stderr}"
    lines = r.stdout.splitlines()

    (systems,) = [line.split()[1:] for line in lines if line.startswith("systems:")]
    assert stack["F7T_SYSTEM"] in systems
    (job_id,) = [line.split()[1] for line in lines if line.startswith("job:")]
    watched = [line.split()[1:] for line in lines if line.startswith("task:")]
    assert watched, r.stdout
    task_id = watched[0][0]
    assert all(t == task_id for t, _ in watched)
    states = [s for _, s in watched]
    assert states[-1] == "TASK_STATE_SUCCEEDED", r.stdout
    assert "TASK_STATE_SUCCEEDED" not in states[:-1]

    name = "c++" if lang == "cpp" else lang
    expected = f"hello from the {name} example, job {job_id}"
    assert f"output: {expected}" in lines, r.stdout

    # what the gateway and the file system say, independently of the example
    task = api("alice").get(f"/tasks/{task_id}")
    assert task.status_code == 200, task.text
    assert task.json()["task"]["state"] == "TASK_STATE_SUCCEEDED"
    assert task.json()["task"]["metadata"]["jobId"] == job_id
    assert api("bob").get(f"/tasks/{task_id}").status_code == 404
    out = workdir / f"{lang}-example-{job_id}.out"
    assert out.read_text() == expected + "\n"
    assert out.stat().st_uid == workdir.stat().st_uid  # written by alice's job, not by the gateway


def test_generated_python_stubs_live_under_their_own_package(builds: Builds) -> None:
    """pyfirecrest owns the top-level name `firecrest`: the client package must not shadow it."""
    builds.command("python")
    site = builds.base / "python-site"
    assert sorted(p.name for p in site.iterdir() if not p.name.endswith(".dist-info")) == [
        "firecrest_gateway_client"
    ]
    code = ("import firecrest, firecrest.v2; "
            "from firecrest_gateway_client.firecrest.tasks.v1 import tasks_pb2_grpc; "
            "print(tasks_pb2_grpc.TasksServiceStub.__name__)")
    r = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(site)},
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0 and r.stdout.strip() == "TasksServiceStub", r.stderr
    assert re.search(r"^from firecrest\.", (site / "firecrest_gateway_client/firecrest/tasks/v1/tasks_pb2.py")
                     .read_text(), re.M) is None
