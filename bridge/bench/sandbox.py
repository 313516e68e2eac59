"""The sandbox in a process of its own, for the bench: ``python -m bridge.bench.sandbox``.

A separate process keeps the sandbox's work (JSON, HTTP parsing) off the measured
process's GIL and out of its RSS. Prints one JSON line (``url``, ``bearer``, ``token``,
``seed_seconds``) once the socket is bound, then serves until SIGTERM or SIGINT.
``--institutions 11,12`` serves several institutions (the scale bench), each with
``--reports`` reports and the bearer ``<bearer>-<id>``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge.bench.sandbox")
    parser.add_argument("--reports", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--faults", default=None, help="fault switches as JSON")
    parser.add_argument("--institutions", default=None, help="ids, comma-separated")
    args = parser.parse_args(argv)
    faults = json.loads(args.faults) if args.faults else None

    # Lazy: each bench phase runs in its own process and loads only what it measures.
    started = time.perf_counter()
    server: Any
    if args.institutions:
        from bridge.lapor.sandbox.multi import MultiSandboxServer

        ids = [int(part) for part in args.institutions.split(",")]
        server = MultiSandboxServer(ids, seed=args.seed, reports=args.reports, faults=faults)
        info = {"url": server.url, "admin_url": f"{server.url}/_sandbox",
                "bearer": server.world.bearer_prefix, "token": server.token}
    else:
        from bridge.lapor.sandbox import SandboxServer

        server = SandboxServer(args.seed, args.reports, faults=faults)
        info = {"url": server.url, "admin_url": server.admin_url,
                "bearer": server.bearer, "token": server.token}
    info["seed_seconds"] = round(time.perf_counter() - started, 3)
    print(json.dumps(info), flush=True)
    server.serve_forever(out=lambda _line: None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
