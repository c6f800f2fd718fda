"""``firecrest-stack``: bring the local FirecREST stack up/down, show status, print its environment."""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import sys
import time

from devstack import gateway, infra, lockdown
from devstack.layout import Layout, load_layout
from devstack.services import Service, ServiceError, is_healthy, pid_of, start, stop, wait_ready

_T0 = time.monotonic()


def _log(msg: str) -> None:
    print(f"[{time.monotonic() - _T0:6.1f}s] {msg}", flush=True)


def _port_of(layout: Layout, svc: Service) -> int | None:
    field = infra.INFRA_PORTS.get(svc.name, svc.name)
    port = getattr(layout.ports, field, None)
    return port if isinstance(port, int) else None


def _port_busy(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _gateway_services(layout: Layout, prof: gateway.Profile | None = None, every: bool = False) -> list[Service]:
    svcs = list(gateway.all_services(layout) if every else gateway.services(layout, prof))
    for s in svcs:  # the tool tracks every service by pidfile and logs to the stack's log dir
        if s.pidfile is None:
            s.pidfile = layout.pidfile(s.name)
        if s.log is None and not s.daemonizes:
            s.log = layout.log(s.name)
    return svcs


def _start(layout: Layout, svc: Service, restart: bool = False) -> None:
    pid = pid_of(svc)
    if pid is not None and not restart and svc.user and not lockdown.runs_as(pid, svc.user):
        _log(f"{svc.name}: runs as another user than {svc.user or 'root'}, restarting (pid {pid})")
        restart = True
    if pid is not None and restart:
        _log(f"{svc.name}: config changed, restarting (pid {pid})")
        stop(svc, timeout=30)
        pid = None
    if pid is not None:
        _log(f"{svc.name}: already running (pid {pid})")
        return
    port = _port_of(layout, svc)
    if port is not None and _port_busy(port):
        raise ServiceError(
            f"service {svc.name}: port {port} is already in use by a process this tool did not start "
            f"(pidfile {svc.pidfile}); stop it or choose other ports with F7T_PORT_BASE"
        )
    pid = start(svc)
    _log(f"{svc.name}: started (pid {pid}), log {svc.log}")


def _ready(svc: Service) -> None:
    t = time.monotonic()
    wait_ready(svc)
    _log(f"{svc.name}: healthy ({time.monotonic() - t:.1f}s)")


def cmd_up(args: argparse.Namespace) -> int:
    layout = load_layout()
    if os.geteuid() != 0:
        print("firecrest-stack up must run as root", file=sys.stderr)
        return 2
    _log(f"state dir {layout.state_dir}")
    infra.ensure_packages(_log)
    infra.make_dirs(layout)
    infra.ensure_s3rver(layout, _log)
    infra.ensure_docs_renderer(layout, _log)
    infra.ensure_users(layout, _log)
    lockdown.ensure_gateway_user(layout, _log)
    infra.ensure_keys(layout, _log)
    changed = infra.write_configs(layout)
    lockdown.secure_gateway_files(layout)
    infra.init_mariadb(layout, _log)
    by_name = {s.name: s for s in infra.infra_services(layout)}

    try:
        # phase 1: independent services, started together
        first = ["sshd", "munged", "mariadb", "s3rver"]
        for name in first:
            _start(layout, by_name[name], restart=name in changed)
        for name in first:
            _ready(by_name[name])
        infra.bootstrap_db(layout)
        # phase 2: accounting, then the scheduler
        _start(layout, by_name["slurmdbd"], restart="slurmdbd" in changed)
        _ready(by_name["slurmdbd"])
        infra.setup_accounting(layout, _log)
        for name in ("slurmctld", "slurmd"):
            _start(layout, by_name[name], restart=name in changed)
            try:
                _ready(by_name[name])
            except ServiceError:
                if name != "slurmd" or not infra.cgroup_mode(layout) or "F7T_SLURM_CGROUP" in os.environ:
                    raise
                _log("slurmd failed with proctrack/cgroup; falling back to proctrack/linuxproc + task/none")
                (layout.slurm_dir / "no-cgroup").touch()
                infra.write_configs(layout)
                for n in ("slurmd", "slurmctld"):
                    stop(by_name[n])
                for n in ("slurmctld", "slurmd"):
                    _start(layout, by_name[n])
                    _ready(by_name[n])
        # gateway
        gw: list[Service] = []
        if args.infra_only:
            _log("gateway: skipped (--infra-only)")
        else:
            _log("gateway: prepare")
            prof = gateway.profile(args.profile)
            gw_changed = gateway.prepare(layout, prof, _log) or set()
            gw = _gateway_services(layout, prof)
            lockdown.secure_gateway_files(
                layout,
                extra_dirs=[prof.dir(layout)],
                extra_logs=[s.name for s in gw if s.user == layout.gateway_user] + [f"{prof.prefix}envoy-access"],
            )
            lockdown.check_readable([s.argv[0] for s in gw] + [gateway.REPO / "edge" / "descriptor.pb"], layout.gateway_user)
        for svc in gw:
            _start(layout, svc, restart=svc.name in gw_changed)
            _ready(svc)
            gateway.started(layout, svc, prof)
        if gw:
            for extra in gateway.surplus(layout, prof):
                pid = pid_of(extra)
                if stop(extra, timeout=30):
                    _log(f"{extra.name}: stopped (pid {pid}): beyond F7T_CORE_REPLICAS")
    except ServiceError as exc:
        print(f"\nfirecrest-stack up FAILED: {exc}", file=sys.stderr)
        return 1

    _log("stack is up")
    _print_summary(layout, args.profile)
    return 0


def _print_summary(layout: Layout, profile: str | None = None) -> None:
    p = layout.ports
    env = _env(layout, profile)
    lines = [
        f"  state dir   {layout.state_dir}",
        f"  logs        {layout.log_dir}",
        f"  sshd        127.0.0.1:{p.sshd}  (user CA {layout.ca_key}.pub)",
        f"  slurm       SLURM_CONF={layout.slurm_conf}  (slurmctld :{p.slurmctld}, slurmd :{p.slurmd}, "
        f"slurmdbd :{p.slurmdbd}, mariadb :{p.mariadb})",
        f"  s3          {layout.s3_url}  (keys: firecrest-stack env)",
    ]
    for key in ("F7T_URL", "F7T_GRPC_TARGET", "F7T_ISSUER"):
        if key in env:
            lines.append(f"  {key:11} {env[key]}")
    lines.append('  environment: eval "$(firecrest-stack env)"')
    print("\n".join(lines), flush=True)


def cmd_down(args: argparse.Namespace) -> int:
    layout = load_layout()
    if args.profile:  # only that profile's own services (the issuer and PostgreSQL stay)
        prof = gateway.profile(args.profile)
        for svc in reversed(_gateway_services(layout, prof)):
            if svc.name in ("issuer", "postgres"):
                continue
            pid = pid_of(svc)
            _log(f"{svc.name}: stopped (pid {pid})" if stop(svc, timeout=30) else f"{svc.name}: not running")
        return 0
    try:
        gw = _gateway_services(layout, every=True)
    except Exception as exc:  # a broken gateway module must not prevent stopping the infrastructure
        print(f"warning: gateway.services() failed: {exc}", file=sys.stderr)
        gw = []
    # FirecREST v2 beside the stack (started by the conformance tests or `python -m devstack.oracle up`)
    from devstack import oracle

    for svc in [oracle.service(layout), *reversed(gw), *reversed(infra.infra_services(layout))]:
        pid = pid_of(svc)
        if stop(svc, timeout=30):
            _log(f"{svc.name}: stopped (pid {pid})")
        else:
            _log(f"{svc.name}: not running")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    layout = load_layout()
    all_ok = True
    gw = [] if args.infra_only else _gateway_services(layout, gateway.profile(args.profile))
    for svc in [*infra.infra_services(layout), *gw]:
        pid = pid_of(svc)
        healthy = pid is not None and is_healthy(svc)
        all_ok &= healthy
        state = "healthy" if healthy else ("running, NOT healthy" if pid else "stopped")
        port = _port_of(layout, svc)
        print(f"{svc.name:12} {state:22} pid {pid or '-':<8} port {port or '-'}")
    return 0 if all_ok else 1


def _env(layout: Layout, profile: str | None = None) -> dict[str, str]:
    env = infra.infra_env(layout)
    env.update(gateway.env(layout, gateway.profile(profile)))
    return env


def cmd_env(args: argparse.Namespace) -> int:
    layout = load_layout()
    for key, value in _env(layout, args.profile).items():
        print(f"export {key}={shlex.quote(str(value))}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="firecrest-stack",
        description="Local FirecREST stack: sshd with a user CA, Slurm with accounting, S3, and the gateway. "
        "State: $F7T_STACK_DIR (default /var/lib/firecrest-stack); ports: $F7T_PORT_BASE (default 28400).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="install, configure and start everything (idempotent)")
    up.add_argument("--infra-only", action="store_true", help="skip the gateway (issuer, core, envoy)")
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="stop everything up started (state stays on disk)")
    down.set_defaults(func=cmd_down)
    st = sub.add_parser("status", help="one line per service; exit 0 only if all are healthy")
    st.add_argument("--infra-only", action="store_true", help="ignore the gateway services")
    st.set_defaults(func=cmd_status)
    env = sub.add_parser("env", help="print `export K=V` lines for clients and tests")
    env.set_defaults(func=cmd_env)
    for p in (up, down, st, env):
        p.add_argument(
            "--profile",
            default=os.environ.get("F7T_GATEWAY_PROFILE") or None,
            help="gateway profile: default (F7T_CORE_REPLICAS, F7T_TASK_STORE), ha (2 cores on PostgreSQL), "
            "solo (1 core of its own); `down --profile P` stops only P's cores and Envoy",
        )
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
