"""CLI: ``python -m venuesim --state DIR [--port 0] [--port-file F] ...``.

Invariants: the port file is written atomically (tmp + rename) only once the socket listens;
the process always ends by itself: on SIGTERM/SIGINT, after ``--max-lifetime`` seconds, or
(``--exit-with-parent``) soon after its parent process dies.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import Any

from venuesim.venue import VenueSim

_PARENT_POLL_S = 0.5


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m venuesim", description=__doc__)
    ap.add_argument("--state", required=True, type=Path, help="state directory (venue.sqlite)")
    ap.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 = any free)")
    ap.add_argument("--port-file", type=Path, help="write the bound port here once listening")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--ticks-per-second", type=float, default=20.0)
    ap.add_argument("--max-lifetime", type=float, default=3600.0, help="seconds before self-stop")
    ap.add_argument("--exit-with-parent", action="store_true", help="stop when the parent dies")
    ap.add_argument("--api-key", default="sim-key")
    ap.add_argument("--api-secret", default="sim-secret")
    ap.add_argument("--net-latency-ms", type=float, default=0.0)
    ap.add_argument("--net-jitter-ms", type=float, default=0.0)
    ap.add_argument("--net-drop-rate", type=float, default=0.0)
    ap.add_argument("--net-disconnect-interval-s", type=float, default=0.0)
    ap.add_argument("--net-reorder-rate", type=float, default=0.0)
    ap.add_argument("--net-seed", type=int, default=0)
    return ap.parse_args(argv)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


async def _run(args: argparse.Namespace) -> None:
    venue = VenueSim(
        args.state,
        seed=args.seed,
        ticks_per_second=args.ticks_per_second,
        api_key=args.api_key,
        api_secret=args.api_secret,
        max_lifetime_s=args.max_lifetime,
    )
    venue.net.configure(
        {
            "latency_ms": args.net_latency_ms,
            "jitter_ms": args.net_jitter_ms,
            "drop_rate": args.net_drop_rate,
            "disconnect_interval_s": args.net_disconnect_interval_s,
            "reorder_rate": args.net_reorder_rate,
            "seed": args.net_seed,
        }
    )
    port = await venue.start(args.port)
    if args.port_file:
        _write_atomic(args.port_file, f"{port}\n")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    parent = os.getppid()

    async def watch_parent() -> None:
        while os.getppid() == parent:  # noqa: ASYNC110 - polls a child process / file, no event to wait on
            await asyncio.sleep(_PARENT_POLL_S)
        logging.getLogger(__name__).warning("parent %d died, stopping", parent)
        stop.set()

    waiters: list[asyncio.Task[Any]] = [
        asyncio.create_task(stop.wait()),
        asyncio.create_task(venue.closed.wait()),
    ]
    if args.exit_with_parent:
        waiters.append(asyncio.create_task(watch_parent()))
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for w in waiters:
        w.cancel()
    await venue.stop()


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(_run(_parse(argv)))


if __name__ == "__main__":
    main()
