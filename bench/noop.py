"""The no-op chain's back end: a grpc.aio server that answers each configured method with constant
bytes (a response recorded from the real core, so Envoy transcodes the same JSON), behind the same
mTLS as the core. It does nothing else: no interceptor, no parsing, no I/O. Started by
bench.scenarios as its own process, so it has a core's share of the CPU and GIL to itself.

    python -m bench.noop --listen 127.0.0.1:PORT --tls CERT KEY CLIENT_CA --answer /pkg.Svc/Method=FILE ...
"""

from __future__ import annotations

import argparse
import asyncio
import gc
from pathlib import Path
from typing import Any

import grpc


class _Constant(grpc.GenericRpcHandler):
    def __init__(self, answers: dict[str, bytes]):
        self._handlers = {
            method: grpc.unary_unary_rpc_method_handler(self._answer(body)) for method, body in answers.items()
        }

    @staticmethod
    def _answer(body: bytes) -> Any:
        async def answer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            return body

        return answer

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return self._handlers.get(handler_call_details.method)


async def serve(listen: str, tls: list[str], answers: dict[str, bytes]) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((_Constant(answers),))
    cert, key, client_ca = (Path(p).read_bytes() for p in tls)
    creds = grpc.ssl_server_credentials([(key, cert)], root_certificates=client_ca, require_client_auth=True)
    server.add_secure_port(listen, creds)
    await server.start()
    gc.freeze()  # the same tuning as the core (core.server._tune_gc)
    await server.wait_for_termination()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.noop")
    p.add_argument("--listen", required=True)
    p.add_argument("--tls", nargs=3, required=True, metavar=("CERT", "KEY", "CLIENT_CA"))
    p.add_argument("--answer", action="append", default=[], help="/pkg.Service/Method=file with the response")
    p.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                   help="the event loop (asyncio: a stock grpc.aio server, the issue's no-op)")
    args = p.parse_args()
    answers = {}
    for a in args.answer:
        method, _, path = a.partition("=")
        answers[method] = Path(path).read_bytes()
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(serve(args.listen, args.tls, answers))
    else:
        asyncio.run(serve(args.listen, args.tls, answers))


if __name__ == "__main__":
    main()
