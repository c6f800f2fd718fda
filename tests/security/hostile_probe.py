#!/usr/bin/python3
"""Run by a batch job of alice's (the hostile cluster user the tests play): try everything around
the API that could let her act for the gateway or for another user, and print what happened as
JSON. Standard library only (it runs with the system's python3, as alice, on the compute node).

argv: state_dir envoy_admin_port s3_port bucket victim_key needle_file (holds a piece of bob's
token; a file, so that it is in no process's command line) envoy_stats_port
"""

import json
import os
import socket
import sys
import urllib.error
import urllib.request

state, admin_port, s3_port, bucket, victim, needle_file, stats_port = sys.argv[1:8]
report = {"uid": os.getuid()}


def tcp(port, request):
    try:
        with socket.create_connection(("127.0.0.1", int(port)), timeout=5) as s:
            s.sendall(request)
            return "answered: " + s.recv(200).decode("latin-1").split("\r\n")[0]
    except OSError as e:
        return f"refused: {e.__class__.__name__}"


# Envoy's admin interface: the old loopback port, and the Unix socket
report["admin_tcp"] = tcp(admin_port, b"GET /server_info HTTP/1.0\r\n\r\n")
# the stats listener (for Prometheus) serves GET /stats/prometheus and nothing else of the admin
report["stats_admin"] = {
    path: tcp(stats_port, f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
    for method, path in (("POST", "/quitquitquit"), ("POST", "/logging?level=debug"), ("GET", "/server_info"),
                         ("GET", "/config_dump"), ("POST", "/stats/prometheus"))
}
try:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(os.path.join(state, "gateway", "envoy-admin.sock"))
    s.sendall(b"POST /logging?level=debug HTTP/1.0\r\n\r\n")
    report["admin_socket"] = "answered: " + s.recv(200).decode("latin-1").split("\r\n")[0]
except OSError as e:
    report["admin_socket"] = f"refused: {e.__class__.__name__}"


# the staging store, without any signature
def s3(method, path, data=None):
    req = urllib.request.Request(f"http://127.0.0.1:{s3_port}{path}", data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError as e:
        return f"error: {e}"


report["s3"] = {
    "list_buckets": s3("GET", "/"),
    "list_objects": s3("GET", f"/{bucket}?list-type=2"),
    "get_victim": s3("GET", f"/{bucket}/{victim}"),
    "put_victim": s3("PUT", f"/{bucket}/{victim}", b"bob's bytes"),
    "put_new": s3("PUT", f"/{bucket}/alice-was-here", b"x"),
    "delete_victim": s3("DELETE", f"/{bucket}/{victim}"),
}

# (built here, so that this script's own copy in slurmd's spool does not match)
with open(needle_file, "rb") as fh:
    needle = fh.read().strip()
bearer = b"Bearer " + b"eyJ"
mine = {str(os.getpid()), str(os.getppid())}

# every file under the stack's state directory: which can alice read, and does any hold a token?
readable, tokens = [], []
for root, _dirs, files in os.walk(state, onerror=lambda e: None):
    for name in files:
        path = os.path.join(root, name)
        try:
            with open(path, "rb") as fh:
                data = fh.read(8 * 1024 * 1024)
        except OSError:
            continue
        readable.append(path)
        if needle in data or bearer in data:
            tokens.append(path)
# and every process she can look into
for pid in os.listdir("/proc"):
    if not pid.isdigit() or pid in mine:
        continue
    for what in ("cmdline", "environ"):
        try:
            with open(f"/proc/{pid}/{what}", "rb") as fh:
                data = fh.read()
        except OSError:
            continue
        if needle in data:
            tokens.append(f"/proc/{pid}/{what}")
report["readable"] = readable
report["tokens"] = tokens
print(json.dumps(report))
