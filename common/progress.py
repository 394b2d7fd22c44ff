"""Feedback on long work, so a user never stares at a silent terminal.

* ``steps(items, desc)``: a progress bar over work of known length (models fitted, runs logged).
* ``working(desc)``: for one long call that reports nothing itself (Evidently, MLflow logging,
  a PDF): the elapsed seconds while it runs, and how long it took.

Both write to stderr, so stdout stays for results. On a terminal they redraw one line. In a log
or a pipe, ``steps`` writes a line per item, and ``working`` stays quiet for work shorter than
``every_s`` seconds (so a command that fails at once still says so in one line), then writes a
line every ``every_s`` seconds and one when the work ends. ``VOLSPIKE_PROGRESS=0`` turns them off.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterable, Iterator, TextIO, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def enabled() -> bool:
    return os.environ.get("VOLSPIKE_PROGRESS", "1") != "0"


def _interactive(stream: TextIO) -> bool:
    return hasattr(stream, "isatty") and stream.isatty()


def steps(items: Iterable[T], desc: str, total: int | None = None, unit: str = "step",
          stream: TextIO | None = None) -> Iterator[T]:
    """Yield ``items`` while showing how many are done (a bar on a terminal, a line per item elsewhere)."""
    stream = stream or sys.stderr
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if not enabled():
        yield from items
        return
    if _interactive(stream):
        yield from tqdm(items, desc=desc, total=total, unit=unit, file=stream, leave=True)
        return
    started = time.monotonic()
    count = 0
    for item in items:
        yield item
        count += 1
        of = f"/{total}" if total is not None else ""
        stream.write(f"{desc}: {count}{of} {unit}s done ({time.monotonic() - started:.1f} s)\n")
        stream.flush()


@contextmanager
def working(desc: str, every_s: float = 5.0, stream: TextIO | None = None) -> Iterator[None]:
    """Show that ``desc`` is running and for how long; say how long it took when it ends."""
    stream = stream or sys.stderr
    if not enabled():
        yield
        return
    interactive = _interactive(stream)
    started = time.monotonic()
    done = threading.Event()
    spoke = threading.Event()  # set once anything was written

    def elapsed() -> float:
        return time.monotonic() - started

    def write(text: str) -> None:
        stream.write(text)
        stream.flush()
        spoke.set()

    def show() -> None:
        while not done.wait(1.0 if interactive else every_s):
            write(f"\r{desc} ... {elapsed():.0f} s" if interactive else f"{desc}: still working, {elapsed():.0f} s\n")

    if interactive:
        write(f"{desc} ...")
    ticker = threading.Thread(target=show, name=f"progress: {desc}", daemon=True)
    ticker.start()
    outcome = "failed after"
    try:
        yield
        outcome = "done in"
    finally:
        done.set()
        ticker.join()
        if spoke.is_set():
            write(f"{chr(13) if interactive else ''}{desc}: {outcome} {elapsed():.1f} s\n")
