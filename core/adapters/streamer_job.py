"""The server side of transfer method "streamer", run by a transfer job on the compute node as the
user (standard library + `websockets`, nothing from the gateway). It speaks firecrest-streamer's
protocol, so pyfirecrest's unmodified client (`transfer_method="streamer"`) is its peer:

- the client connects to one of the ports of the range with `Authorization: Bearer <secret>`
  (the secret comes from $F7T_STREAMER_SECRET: on the command line any user of the node would see it);
- the sender sends {"type": "init", "num_chunks", "file_size"}, the file in binary chunks (at most
  5 MiB each), then {"type": "eof", "sha256_hash"}.

Unlike firecrest-streamer 0.0.21's server, it tells the end of the data by the announced chunk count
(that client sends "eof" as a binary frame, which the package's own receiver writes into the file),
checks the size and the SHA-256 before the file appears under its name, never overwrites an existing
file, and sends its own "eof" as a text frame, the form the client's receiver checks.

    python streamer_job.py --host H --port-range LO HI --wait-timeout S --inbound-transfer-limit N
                           (receive|send) --path PATH
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import sys

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

CHUNK = 5 * 1024 * 1024
LISTENING = "Server is listening on"  # the gateway answers the client once this is in the log


def say(text: str) -> None:
    print(text, flush=True)


class Transfer:
    def __init__(self, args: argparse.Namespace, secret: str):
        self.args = args
        self.secret = secret
        self.ok: bool | None = None  # None: nobody came
        self.done = asyncio.Event()

    def authorize(self, connection: ServerConnection, request: Request) -> Response | None:
        token = (request.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        if not token:
            return connection.respond(401, "Missing token\n")
        if not secrets.compare_digest(token, self.secret):
            return connection.respond(403, "Invalid secret\n")
        if self.done.is_set() or self.ok is not None:
            return connection.respond(409, "This transfer has already taken place\n")
        return None

    async def handle(self, ws: ServerConnection) -> None:
        if self.ok is not None:
            return
        self.ok = False
        say("Client connected.")
        try:
            self.ok = await (self.receive(ws) if self.args.mode == "receive" else self.send(ws))
        except ConnectionClosed as e:
            say(f"error: the client went away: {e}")
        finally:
            self.done.set()

    async def receive(self, ws: ServerConnection) -> bool:
        target = self.args.path
        tmp = os.path.join(os.path.dirname(target) or ".", f".f7t-stream-{secrets.token_hex(8)}")
        init = json.loads(await ws.recv())
        chunks, size = int(init["num_chunks"]), int(init["file_size"])
        if size > self.args.inbound_transfer_limit:
            await ws.close(1009, f"the file is larger than the {self.args.inbound_transfer_limit} bytes allowed")
            say("error: inbound transfer limit exceeded")
            return False
        digest, got = hashlib.sha256(), 0
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(fd, "wb") as f:
                for _ in range(chunks):
                    data = await ws.recv()
                    if isinstance(data, str):
                        data = data.encode()
                    got += len(data)
                    if got > size:
                        raise ValueError("more data than announced")
                    f.write(data)
                    digest.update(data)
                end = await ws.recv()
                eof = json.loads(end if isinstance(end, str) else end.decode())
            if eof.get("type") != "eof" or got != size or eof.get("sha256_hash") != digest.hexdigest():
                raise ValueError(f"corrupted transfer ({got} of {size} bytes, checksum mismatch or no end)")
            os.link(tmp, target)  # never over an existing file
        except (ValueError, KeyError, OSError) as e:
            say(f"error: {e}")
            await ws.close(1011, json.dumps({"type": "error", "error": type(e).__name__}))
            return False
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        say(f"File {target} received successfully ({size} bytes, sha256 {digest.hexdigest()}).")
        return True

    async def send(self, ws: ServerConnection) -> bool:
        source = self.args.path
        size = os.stat(source).st_size
        chunks = (size + CHUNK - 1) // CHUNK
        await ws.send(json.dumps({"type": "init", "num_chunks": chunks, "file_size": size}).encode())
        digest = hashlib.sha256()
        with open(source, "rb") as f:
            while data := f.read(CHUNK):
                await ws.send(data)
                digest.update(data)
        # a text frame: the client's receiver recognises its end only so
        await ws.send(json.dumps({"type": "eof", "sha256_hash": digest.hexdigest()}))
        say(f"File {source} sent successfully ({size} bytes, sha256 {digest.hexdigest()}).")
        return True


async def main(args: argparse.Namespace) -> int:
    secret = os.environ.pop("F7T_STREAMER_SECRET", "")
    if not secret:
        say("error: no secret in F7T_STREAMER_SECRET")
        return 2
    if args.mode == "receive" and os.path.lexists(args.path):
        say(f"error: '{args.path}' already exists: the streamer does not overwrite a file")
        return 1
    if args.mode == "send" and not os.path.isfile(args.path):
        say(f"error: cannot access '{args.path}': No such file")
        return 1
    transfer = Transfer(args, secret)
    low, high = args.port_range
    for port in range(low, high + 1):
        try:
            server = await serve(
                transfer.handle, args.host, port, max_size=int(CHUNK * 1.25), ping_interval=60, ping_timeout=None,
                process_request=transfer.authorize,
            )
        except OSError:
            continue
        async with server:
            say(f"{LISTENING} ws://{args.host}:{port}")
            try:
                await asyncio.wait_for(transfer.done.wait(), args.wait_timeout)
            except TimeoutError:
                say(f"error: no client came within {args.wait_timeout} s")
        return 0 if transfer.ok else 1
    say(f"error: no free port in {low}-{high}")
    return 1


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="streamer_job")
    p.add_argument("--host", default="localhost")
    p.add_argument("--port-range", nargs=2, type=int, required=True)
    p.add_argument("--wait-timeout", type=float, default=86400)
    p.add_argument("--inbound-transfer-limit", type=int, default=5 * 1024**3)
    p.add_argument("mode", choices=["receive", "send"])
    p.add_argument("--path", required=True)
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse(sys.argv[1:]))))
