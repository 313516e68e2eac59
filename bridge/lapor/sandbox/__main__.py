"""``python -m bridge.lapor.sandbox [serve|bench] ...``: the sandbox without the main CLI."""

from __future__ import annotations

import argparse
import json

from bridge.lapor.sandbox import bench
from bridge.lapor.sandbox.server import serve_forever


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge.lapor.sandbox",
                                     description="The built-in LAPOR! sandbox.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve in the foreground until Ctrl-C")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    serve.add_argument("--seed", type=int, default=0)
    serve.add_argument("--reports", type=int, default=50)
    serve.add_argument("--institution-id", type=int, default=1)
    serve.add_argument("--bearer-header", choices=["auth", "Authorization"], default=None,
                       help="accept only this header name (default: either)")
    serve.add_argument("--faults", default=None,
                       help='fault switches as JSON, e.g. \'{"error_rate": 0.1}\'')
    serve.add_argument("--latency-ms", type=float, default=None,
                       help="delay every LAPOR! request by this many milliseconds")
    run = sub.add_parser("bench", help="seed, page the inbox, print the speed")
    run.add_argument("--reports", type=int, default=100_000)
    run.add_argument("--page-size", type=int, default=1000)
    run.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "bench":
        bench.run(args.reports, args.page_size, args.seed)
        return 0
    faults = json.loads(args.faults) if args.faults else None
    if args.latency_ms is not None:
        faults = {**(faults or {}), "latency_ms": args.latency_ms}
    serve_forever(args.port, args.seed, args.reports, host=args.host, faults=faults,
                  institution_id=args.institution_id, bearer_header=args.bearer_header)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
