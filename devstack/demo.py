"""A real demo through the running local stack, as a portal would do it: plain HTTP to Envoy.

token (client credentials at the OIDC issuer) -> systems, userinfo -> a batch job as alice, until
its exact final state -> files (mkdir, upload, ls, checksum, download) -> a staged transfer through
S3 (presigned URLs). Exits non-zero when a step fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from typing import Any

import requests


def _env() -> dict[str, str]:
    out = subprocess.run([sys.executable, "-m", "devstack", "env"], check=True, capture_output=True, text=True).stdout
    env = {}
    for line in out.splitlines():
        if line.startswith("export "):
            k, _, v = line[7:].partition("=")
            env[k] = v.strip("'")
    return env


class Demo:
    def __init__(self, env: dict[str, str], user: str = "alice"):
        self.env = env
        self.user = user
        self.url = env["F7T_URL"]
        self.system = env["F7T_SYSTEM"]
        self.s = requests.Session()

    def step(self, title: str) -> None:
        print(f"\n== {title}")

    def show(self, label: str, value: Any) -> None:
        text = value if isinstance(value, str) else json.dumps(value, indent=None)
        print(f"   {label}: {text[:400]}")

    def call(self, method: str, path: str, expect: int, **kw: Any) -> requests.Response:
        r = self.s.request(method, self.url + path.replace("{system}", self.system), timeout=120, **kw)
        if r.status_code != expect:
            raise SystemExit(f"{method} {path} -> {r.status_code} (expected {expect}): {r.text[:500]}")
        return r

    def token(self) -> None:
        self.step(f"token for {self.user} (client credentials at {self.env['F7T_TOKEN_URL']})")
        u = self.user.upper()
        r = requests.post(
            self.env["F7T_TOKEN_URL"],
            data={
                "grant_type": "client_credentials",
                "client_id": self.env[f"F7T_{u}_CLIENT_ID"],
                "client_secret": self.env[f"F7T_{u}_CLIENT_SECRET"],
            },
            timeout=10,
        )
        r.raise_for_status()
        tok = r.json()["access_token"]
        self.s.headers["Authorization"] = f"Bearer {tok}"
        self.show("access token", tok[:40] + "...")

    def status(self) -> None:
        self.step("status: systems and who am I")
        systems = self.call("GET", "/status/systems", 200).json()["systems"]
        for s in systems:
            self.show(s["name"], {h["serviceType"]: h["healthy"] for h in s["servicesHealth"]})
        info = self.call("GET", "/status/{system}/userinfo", 200).json()
        self.show("userinfo", info)
        parts = self.call("GET", "/status/{system}/partitions", 200).json()["partitions"]
        self.show("partitions", [p["name"] for p in parts])

    def job(self) -> None:
        self.step("compute: a batch job as the caller, followed to its exact end state")
        home = f"/home/{self.user}"
        job = {
            "job": {
                "name": "demo",
                "workingDirectory": home,
                "script": "#!/bin/bash\necho \"hello from $(id -un) on $(hostname)\"\nsleep 2\nexit 3\n",
                "standardOutput": f"{home}/demo-job.out",
            }
        }
        r = self.call("POST", "/compute/{system}/jobs", 201, json=job)
        job_id = r.json()["jobId"]
        self.show("submitted", job_id)
        deadline = time.time() + 300
        while True:
            j = self.call("GET", f"/compute/{{system}}/jobs/{job_id}", 200).json()["jobs"][0]
            state = j["status"]["state"]
            if state not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "") and j["time"].get("end"):
                break
            if time.time() > deadline:
                raise SystemExit(f"job {job_id} still {state} after 300 s")
            time.sleep(1)
        self.show("final state", {"state": state, "exitCode": j["status"].get("exitCode")})
        out = self.call("GET", "/filesystem/{system}/ops/view", 200, params={"path": f"{home}/demo-job.out"})
        self.show("its output", out.json()["output"].strip())

    def files(self) -> None:
        self.step("storage: mkdir, upload, ls, checksum, download")
        d = f"/home/{self.user}/demo-{int(time.time())}"
        self.call("POST", "/filesystem/{system}/ops/mkdir", 201, json={"path": d, "parent": True})
        data = os.urandom(4096)
        self.call("POST", "/filesystem/{system}/ops/upload", 204, params={"path": d},
                  files={"file": ("data.bin", data)})
        ls = self.call("GET", "/filesystem/{system}/ops/ls", 200, params={"path": d}).json()["output"]
        self.show("ls", [(f["name"], f["size"]) for f in ls])
        ck = self.call("GET", "/filesystem/{system}/ops/checksum", 200, params={"path": f"{d}/data.bin"}).json()
        self.show("checksum", ck["output"])
        got = self.call("GET", "/filesystem/{system}/ops/download", 200, params={"path": f"{d}/data.bin"}).content
        ok = hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest() == ck["output"]["checksum"]
        self.show("download matches upload", ok)
        if not ok:
            raise SystemExit("downloaded bytes differ")
        self.dir = d

    def transfer(self) -> None:
        self.step("transfer: a staged upload through S3 (presigned URLs), moved into place by a Slurm job")
        size = 3 * 1024 * 1024 + 17
        data = os.urandom(size)
        target = f"{self.dir}/staged.bin"
        r = self.call("POST", "/filesystem/{system}/transfer/upload", 201, json={
            "path": target, "transferDirectives": {"transfer_method": "s3", "fileSize": size}})
        body = r.json()
        td = body["transferDirectives"]
        self.show("transfer job", body["transferJob"].get("jobId"))
        part = int(td["maxPartSize"])
        etags = []
        for i, url in enumerate(td["partsUploadUrls"]):
            chunk = data[i * part:(i + 1) * part]
            pr = requests.put(url, data=chunk, timeout=120)
            pr.raise_for_status()
            etags.append((i + 1, pr.headers["ETag"]))
        xml = "<CompleteMultipartUpload>" + "".join(
            f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>" for n, e in etags
        ) + "</CompleteMultipartUpload>"
        requests.post(td["completeUploadUrl"], data=xml, timeout=120).raise_for_status()
        self.show("uploaded parts", len(etags))
        deadline = time.time() + 300
        while time.time() < deadline:
            r = self.s.get(self.url + f"/filesystem/{self.system}/ops/checksum", params={"path": target}, timeout=60)
            if r.status_code == 200:
                ok = r.json()["output"]["checksum"] == hashlib.sha256(data).hexdigest()
                self.show("staged file in place, SHA-256 matches", ok)
                if not ok:
                    raise SystemExit("staged upload arrived corrupted")
                return
            time.sleep(2)
        raise SystemExit("staged upload did not arrive within 300 s")


def main() -> None:
    demo = Demo(_env())
    demo.token()
    demo.status()
    demo.job()
    demo.files()
    demo.transfer()
    print("\ndemo finished: every step went through Envoy, the gRPC core, SSH as the user, Slurm and S3")
    env = demo.env
    if env.get("F7T_PORTAL_URL"):
        print(f"\nThe web portal: {env['F7T_PORTAL_URL']}  (sign in at the issuer's form)")
        for user in ("alice", "bob"):
            if env.get(f"F7T_{user.upper()}_PASSWORD"):
                print(f"   {user:6} password {env[f'F7T_{user.upper()}_PASSWORD']}")


if __name__ == "__main__":
    main()
