"""Run the edge (`sse_edge.__main__.main`) with tracemalloc, for `bench_fanout.py --memory`.

On SIGUSR1 the process writes a tracemalloc snapshot to `$EDGE_TRACEMALLOC_DIR/<n>.snapshot`
(n = 0, 1, ...); the benchmark takes one before and one after opening the idle connections and
prints what grew, by line of code. tracemalloc itself costs memory and time, so the RSS figures
of the idle scenario always come from a run without it.
"""

import os
import signal
import tracemalloc
from pathlib import Path
from types import FrameType

from sse_edge.__main__ import main

FRAMES = 8


def dump(_signum: int, _frame: FrameType | None) -> None:
    folder = Path(os.environ["EDGE_TRACEMALLOC_DIR"])
    number = len(list(folder.glob("*.snapshot")))
    partial = folder / f"{number}.snapshot.part"
    tracemalloc.take_snapshot().dump(str(partial))
    partial.rename(folder / f"{number}.snapshot")


if __name__ == "__main__":
    tracemalloc.start(FRAMES)
    signal.signal(signal.SIGUSR1, dump)
    main()
