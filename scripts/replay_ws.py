"""Play recorded market data as a Coinbase Advanced Trade WebSocket endpoint, offline.

    python scripts/replay_ws.py --raw 'data/sample/btcusd-2026-04-05-frames/*.ndjson.gz' --speed 1
    python scripts/ws_ingest.py --ws-url ws://127.0.0.1:8765 --pair BTC-USD --minutes 5 --save-disk

Speaks the protocol ws_ingest.py speaks to Coinbase: one subscribe message per channel
(ticker, heartbeats) within 5 s, a subscriptions confirmation, ticker frames numbered with
sequence_num, a heartbeat every second. Plays Advanced Trade frames as recorded and turns flat
ticker records and Coinbase Exchange ticker messages into ticker frames, paced by their recorded
times (--speed 1 real time, 20 twenty times faster, 0 as fast as possible). Each connection
continues where the previous one stopped; --loop starts over at the end. Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from common.logs import setup_logging
from features.replay import InputFileError, expand_inputs
from streaming.market import MarketServer, frame_products, recorded_frames

log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw", nargs="+", required=True, metavar="FILES",
                        help="recorded files (plain or .gz NDJSON; quoted globs expand sorted)")
    parser.add_argument("--speed", type=float, default=1.0, help="1 = real time, 0 = as fast as possible (default 1)")
    parser.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765; 0 picks a free one)")
    parser.add_argument("--loop", action="store_true", help="start over at the end of the recording")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    if not args.speed >= 0:
        print("replay_ws: --speed must be 0 (as fast as possible) or positive", file=sys.stderr)
        return 2
    try:
        paths = expand_inputs(args.raw)
        frames = recorded_frames(paths)
    except InputFileError as exc:
        print(f"replay_ws: {exc}", file=sys.stderr)
        return 2
    if not frames:
        print("replay_ws: no ticker in those files: give recorded frames, flat ticker records or "
              "Exchange ticker messages", file=sys.stderr)
        return 2
    products = sorted({p for f in frames for p in frame_products(f)})
    server = MarketServer(frames, speed=args.speed, port=args.port, loop_forever=args.loop)
    try:
        url = server.start()
    except (OSError, RuntimeError) as exc:
        print(f"replay_ws: cannot listen on 127.0.0.1:{args.port} ({exc}): pick another --port", file=sys.stderr)
        return 1
    print(f"serving {len(frames)} ticker frames of {', '.join(products)} from {len(paths)} files on {url} "
          f"(speed {args.speed:g}{', looping' if args.loop else ''})", flush=True)
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    while not done.wait(1.0):
        if server.all_sent.is_set() and not args.loop:
            log.info("every frame sent; still serving heartbeats (Ctrl-C stops)")
            server.all_sent.clear()
    server.stop()
    print(f"sent {len(server.sent_tickers)} ticker frames on {len(server.connections)} connections", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
