"""The SSH pool against the stack's real sshd: connections are reused, bounded, replaced after a
failure and renewed before their certificate expires; a slow command times out with a clear error;
a host key that does not match is refused."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from core.adapters.certs import CertificateAuthority
from core.adapters.ssh import SSHPool
from core.config import SSHConfig
from core.domain.errors import BackendUnavailable, PayloadTooLarge, PermissionDenied, Timeout
from core.wiring import UserKeys


@pytest.fixture
def make_pool(stack):
    core = yaml.safe_load((Path(stack["F7T_STACK_DIR"]) / "gateway/core.yaml").read_text())
    ssh = core["systems"][0]["ssh"]
    ca_key = Path(core["certificate"]["ca_key"])
    pools: list[SSHPool] = []
    executor = ThreadPoolExecutor(16)

    def make(lifetime: int = 600, known_hosts: str | None = None, **over: object) -> tuple[SSHPool, UserKeys]:
        cfg = SSHConfig(host=ssh["host"], port=ssh["port"], known_hosts=Path(known_hosts or ssh["known_hosts"]),
                        **over)  # type: ignore[arg-type]
        keys = UserKeys(CertificateAuthority(ca_key, lifetime))
        pool = SSHPool(cfg, keys, executor)
        pools.append(pool)
        return pool, keys

    yield make
    for p in pools:
        p.close()
    executor.shutdown(wait=False)


def test_commands_run_as_the_user_on_one_reused_connection(make_pool):
    pool, _ = make_pool()
    for _ in range(5):
        assert pool.run_blocking("alice", "id -un").out.strip() == "alice"
    assert pool.stats() == {"alice": 1}
    assert pool.run_blocking("bob", "id -un").out.strip() == "bob"
    assert pool.stats() == {"alice": 1, "bob": 1}


def test_stdin_and_exit_status_and_stderr(make_pool):
    pool, _ = make_pool()
    r = pool.run_blocking("alice", "cat; echo oops >&2; exit 7", stdin=b"payload\x00\xff")
    assert (r.exit_status, r.stdout, r.err) == (7, b"payload\x00\xff", "oops")


def test_concurrent_calls_stay_within_the_pool_bound(make_pool):
    pool, _ = make_pool(pool_size=2, channels_per_connection=2)

    async def many() -> list[str]:
        return [r.out.strip() for r in await asyncio.gather(*(pool.run("alice", "sleep 0.3; id -un") for _ in range(8)))]

    assert asyncio.run(many()) == ["alice"] * 8
    assert pool.stats()["alice"] <= 2


def test_a_broken_connection_is_replaced(make_pool):
    pool, _ = make_pool()
    pool.run_blocking("alice", "true")
    conn = pool._pools["alice"].conns[0]
    conn.client.get_transport().sock.close()  # the network drops it under our feet
    assert pool.run_blocking("alice", "id -un").out.strip() == "alice"
    assert pool._pools["alice"].conns[0] is not conn


def test_a_connection_lost_after_the_command_was_sent_is_an_error_not_a_second_run(make_pool):
    pool, _ = make_pool()
    pool.run_blocking("alice", "true")
    conn = pool._pools["alice"].conns[0]
    marker = f"/tmp/f7t-ssh-once-{uuid.uuid4().hex}"
    cut = threading.Timer(1.5, lambda: conn.client.get_transport().sock.close())
    cut.start()
    try:
        with pytest.raises(BackendUnavailable) as e:
            pool.run_blocking("alice", f"echo ran >> {marker}; sleep 5")
        assert "may or may not have taken effect" in e.value.message
        time.sleep(1)
        # the command ran once: it was not sent again on a new connection
        assert Path(marker).read_text().splitlines() == ["ran"]
        assert pool.run_blocking("alice", "id -un").out.strip() == "alice"  # the pool recovers
    finally:
        cut.cancel()
        Path(marker).unlink(missing_ok=True)


def test_connections_are_renewed_before_the_certificate_expires(make_pool):
    pool, keys = make_pool(lifetime=6)  # renewal margin: a fifth of the lifetime
    pool.run_blocking("alice", "true")
    first_conn = pool._pools["alice"].conns[0]
    first_serial = keys("alice").cert.serial
    time.sleep(6)
    assert pool.run_blocking("alice", "id -un").out.strip() == "alice"
    assert pool._pools["alice"].conns[0] is not first_conn
    assert keys("alice").cert.serial != first_serial


def test_a_slow_command_times_out_with_a_clear_error(make_pool):
    pool, _ = make_pool()
    t0 = time.monotonic()
    with pytest.raises(Timeout) as e:
        pool.run_blocking("alice", "sleep 30", timeout=1)
    assert time.monotonic() - t0 < 15
    assert "did not finish" in e.value.message
    assert pool.run_blocking("alice", "id -un").out.strip() == "alice"  # the pool is still usable


@pytest.mark.parametrize("shells", [60, 0], ids=["command shell", "exec channel"])
def test_a_command_that_writes_to_stderr_then_hangs_still_times_out(make_pool, shells):
    pool, _ = make_pool(shell_idle_timeout=shells)
    t0 = time.monotonic()
    with pytest.raises(Timeout) as e:
        pool.run_blocking("alice", "echo started >&2; sleep 30", timeout=1)
    assert time.monotonic() - t0 < 15
    assert "did not finish" in e.value.message
    assert pool.run_blocking("alice", "id -un").out.strip() == "alice"


def test_a_user_who_cannot_log_in_is_refused(make_pool):
    pool, _ = make_pool()
    with pytest.raises(PermissionDenied):
        pool.run_blocking("nobody-here", "true")


def test_an_unknown_host_key_is_refused(make_pool, tmp_path):
    other = tmp_path / "known_hosts"
    other.write_text("[127.0.0.1]:1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n")
    pool, _ = make_pool(known_hosts=str(other))
    with pytest.raises(BackendUnavailable) as e:
        pool.run_blocking("alice", "true")
    assert "host key" in e.value.message


# ---- command shells: commands without input run in a long-lived /bin/sh per channel ----------


def test_commands_share_a_shell_but_nothing_they_change(make_pool):
    pool, _ = make_pool()
    first = pool.run_blocking("alice", "cd /tmp && export F7T_X=1 && echo $$").out.strip()
    # $$ is the shell's pid in its subshells too: the same shell ran the next command
    r = pool.run_blocking("alice", 'echo $$ "$(pwd)" "${F7T_X-unset}"')
    assert r.out.split() == [first, "/home/alice", "unset"]
    assert pool.idle_shells() == 1


def test_a_shell_frames_output_exactly(make_pool):
    pool, _ = make_pool()
    pool.run_blocking("alice", "true")
    fake = "0123456789abcdef0123456789abcdef 0"  # looks like a frame's end: it is only output
    r = pool.run_blocking("alice", f"printf 'a\\000b\\377'; echo '{fake}'; printf 'no newline'; printf 'warn' >&2; exit 3")
    assert (r.exit_status, r.stdout, r.stderr) == (3, b"a\x00b\xff" + fake.encode() + b"\nno newline", b"warn")
    big = pool.run_blocking("alice", "head -c 3000000 /dev/urandom | od -An -v | head -c 2500000")
    assert len(big.stdout) == 2500000 and big.exit_status == 0
    with pytest.raises(PayloadTooLarge):
        pool.run_blocking("alice", "head -c 100000 /dev/zero", max_output=1000)
    assert pool.run_blocking("alice", "echo ok").out == "ok\n"  # a fresh shell after the refused one


def test_a_shell_that_dies_mid_command_is_an_error_then_replaced(make_pool):
    pool, _ = make_pool()
    before = pool.run_blocking("alice", "echo $$").out.strip()
    with pytest.raises(BackendUnavailable) as e:
        pool.run_blocking("alice", "kill -9 $$; sleep 5")
    assert "may or may not have taken effect" in e.value.message
    after = pool.run_blocking("alice", "echo $$").out.strip()
    assert after and after != before
    assert pool.stats() == {"alice": 1}  # the connection itself was fine and is kept


def test_idle_shells_are_closed_after_their_timeout(make_pool):
    pool, _ = make_pool(shell_idle_timeout=1)
    pid = pool.run_blocking("alice", "echo $$").out.strip()
    assert pool.idle_shells() == 1
    time.sleep(1.5)
    pool.sweep()
    assert pool.idle_shells() == 0
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists()  # the login node's shell process is gone
    assert pool.run_blocking("alice", "id -un").out.strip() == "alice"


def test_without_shells_every_command_gets_its_own_session(make_pool):
    pool, _ = make_pool(shell_idle_timeout=0)
    pids = {pool.run_blocking("alice", "echo $$").out.strip() for _ in range(3)}
    assert len(pids) == 3 and pool.idle_shells() == 0


def test_text_input_goes_through_the_shell_exactly(make_pool):
    pool, _ = make_pool()
    pid = pool.run_blocking("alice", "echo $$").out.strip()
    data = b"#!/bin/bash\necho 'it''s' \"$HOME\" `id` \\\n\xff\xfe no final newline"
    r = pool.run_blocking("alice", "cat; echo $$ >&2", stdin=data)
    assert (r.exit_status, r.stdout, r.err) == (0, data, pid)  # the same shell ran it
    # a NUL byte cannot be a shell word: that input gets an exec channel of its own
    r = pool.run_blocking("alice", "cat; echo $$ >&2", stdin=b"a\x00b")
    assert r.stdout == b"a\x00b" and r.err != pid


@pytest.fixture
def talkative_user() -> Iterator[str]:
    """A user of its own (made for this test, removed after) whose login shell prints on stdout and
    stderr when it starts, as many a ~/.bashrc on a cluster does."""
    name = f"f7tt{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--create-home", "--user-group", "--shell", "/bin/bash", "--password", "*",
                    "--comment", "firecrest-gateway test user", name], check=True, capture_output=True)
    try:
        Path(f"/home/{name}/.bashrc").write_text(
            'echo "Welcome to the cluster"\necho "module: gcc loaded" >&2\nprintf "no newline"\n'
        )
        yield name
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], check=False, capture_output=True)
        subprocess.run(["userdel", "-r", name], check=False, capture_output=True)


def test_what_the_login_shell_prints_on_start_is_not_taken_for_output(make_pool, talkative_user):
    # the user's start files do run for SSH commands (bash reads ~/.bashrc under sshd): an exec
    # channel's output has their words in it
    execs, _ = make_pool(shell_idle_timeout=0)
    assert "Welcome to the cluster" in execs.run_blocking(talkative_user, "true").out
    pool, _ = make_pool()
    for _ in range(2):  # the shell's first command (after the start files ran) and a later one
        r = pool.run_blocking(talkative_user, "id -un; echo err >&2")
        assert (r.exit_status, r.out, r.err) == (0, f"{talkative_user}\n", "err")
    assert pool.idle_shells() == 1


def test_a_script_runs_inline_in_a_shell_as_it_does_with_sh_c(make_pool):
    """commands.shell_line: a command shell runs a script's text itself instead of `sh -c` of it;
    arguments, environment, input, exit status and output are those of the `sh -c` form."""
    from core.adapters.commands import command_line, shell_line

    script = (
        'printf "%s|" "$#" "$@" "$F7T_A" "$F7T_B"; read -r line; printf "%s\\n" "$line"; '
        "echo err >&2; [ $# -gt 2 ] && exit 4; exec sh -c 'exit 5'\n"
    )
    env = {"F7T_A": "a b", "F7T_B": "it's $HOME"}
    shell_pool, _ = make_pool()
    exec_pool, _ = make_pool(shell_idle_timeout=0)
    for args in (["-n", "two words", "*", "'q'\"", "x;y", ""], ["one"]):
        argv = ["sh", "-c", script, "sh", *args]
        inline = shell_line(argv, env)
        assert inline is not None and "sh -c" not in inline.split("\n", 1)[0]
        inside = shell_pool.run_blocking("alice", command_line(argv, env), stdin=b"in put\n", shell_command=inline)
        alone = exec_pool.run_blocking("alice", command_line(argv, env), stdin=b"in put\n", shell_command=inline)
        want = "|".join([str(len(args)), *args, "a b", "it's $HOME", "in put\n"])
        assert (inside.exit_status, inside.out, inside.err) == (4 if len(args) > 2 else 5, want, "err")
        assert (alone.exit_status, alone.out, alone.err) == (inside.exit_status, inside.out, inside.err)
    assert shell_pool.idle_shells() == 1
    assert shell_line(["env", "A=1", "sh", "-c", script, "sh"]) is None  # only a script's own argv


def test_a_script_can_take_its_input_as_a_shell_variable(make_pool):
    """shell_input_var: in a command shell the input is the script's (unexported) variable and its
    stdin is empty; over an exec channel it is stdin, as before. Any text but NUL, exactly."""
    from core.adapters.commands import command_line, shell_line

    script = (
        'if [ -n "${F7T_INPUT+set}" ]; then printf "var:%s" "$F7T_INPUT"; else printf "stdin:%s" "$(cat; echo .)"; fi; '
        'env | grep -c "^F7T_INPUT=" >&2; cat\n'
    )
    argv = ["sh", "-c", script, "sh"]
    shell_pool, _ = make_pool()
    exec_pool, _ = make_pool(shell_idle_timeout=0)
    for text in (b"#!/bin/bash\necho 'it''s' \"$HOME\" $(date) `id`\n", b"no newline at the end", "caf\u00e9\n".encode()):
        inside = shell_pool.run_blocking(
            "alice", command_line(argv), stdin=text, shell_command=shell_line(argv), shell_input_var="F7T_INPUT"
        )
        assert (inside.exit_status, inside.out, inside.err) == (0, "var:" + text.decode(), "0"), inside
        alone = exec_pool.run_blocking(
            "alice", command_line(argv), stdin=text, shell_command=shell_line(argv), shell_input_var="F7T_INPUT"
        )
        assert (alone.exit_status, alone.out, alone.err) == (0, "stdin:" + text.decode() + ".", "0"), alone
