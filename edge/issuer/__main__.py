"""``python -m edge.issuer --config PATH``: run the development OIDC issuer."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from edge.issuer.config import ConfigError, load_config
from edge.issuer.server import endpoints, make_server

logger = logging.getLogger("edge.issuer")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.issuer", description="Development OIDC issuer")
    parser.add_argument("--config", required=True, type=Path, help="path to the issuer JSON config")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)

    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_config(args.config)
        server = make_server(config)
    except (ConfigError, ValueError) as exc:
        logger.error("%s", exc)
        return 2
    except OSError as exc:
        logger.error("cannot start issuer: %s", exc)
        return 1

    def _stop(signum: int, _frame: FrameType | None) -> None:
        logger.info("received %s, shutting down", signal.Signals(signum).name)
        # shutdown() blocks until serve_forever() returns, so it cannot run on this (main) thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    host, port = server.server_address[:2]
    logger.info("issuer %s listening on http://%s:%s (discovery: %s)", config.issuer, host, port,
                endpoints(config.issuer)["discovery"])
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
    logger.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
