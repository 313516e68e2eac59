"""The sandbox in a process of its own, for the bench: ``python -m bridge.bench.sandbox``.

A separate process keeps the sandbox's work (JSON, HTTP parsing) off the measured
process's GIL and out of its RSS. Prints one JSON line (``url``, ``bearer``, ``token``,
``seed_seconds``) once the socket is bound, then serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge.bench.sandbox")
    parser.add_argument("--reports", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--faults", default=None, help="fault switches as JSON")
    args = parser.parse_args(argv)

    # Lazy: each bench phase runs in its own process and loads only what it measures.
    from bridge.lapor.sandbox import SandboxServer

    started = time.perf_counter()
    server = SandboxServer(args.seed, args.reports,
                           faults=json.loads(args.faults) if args.faults else None)
    seeded = time.perf_counter() - started
    print(json.dumps({"url": server.url, "admin_url": server.admin_url,
                      "bearer": server.bearer, "token": server.token,
                      "seed_seconds": round(seeded, 3)}), flush=True)
    server.serve_forever(out=lambda _line: None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
