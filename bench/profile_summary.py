"""Summarize a py-spy raw (collapsed stacks) profile, as `bench_fanout.py --profile DIR` writes them.

    .venv/bin/python bench/profile_summary.py DIR/fanout-all-1000-1000.txt [--top 25]

Prints the functions with the most samples on top of the stack (self) and anywhere in the stack
(inclusive, each function counted once per sample), as shares of all samples. Idle samples
(the event loop waiting in epoll) are included in the total and named, so the shares say how
busy the process was.
"""

import argparse
import re
from collections import Counter
from pathlib import Path

LINE_NO = re.compile(r":\d+\)$")


def frame_name(frame: str) -> str:
    """`func (path/to/module.py:123)` -> `func (module.py)`: lines apart, one function is one entry."""
    frame = LINE_NO.sub(")", frame.strip())
    name, _, where = frame.partition(" (")
    return f"{name} ({Path(where.rstrip(')')).name})" if where else name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in args.profile.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [frame_name(f) for f in stack.split(";") if f]
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    print(f"{args.profile.name}: {total} samples")
    for title, counter in (("self", own), ("inclusive", inclusive)):
        print(f"-- {title}")
        for name, count in counter.most_common(args.top):
            print(f"{100 * count / total:6.1f} %  {name}")


if __name__ == "__main__":
    main()
