"""Stream compression (issue 15): zstd, br and gzip as the edge sets them up, on event frames.

For each encoding (sse_edge.http.stream_encoding, the edge's own encoders) and each write size
(1 event per write: a quiet stream; 10 and 100: a busy one), one compressor flushed after every
write as the edge does: bytes on the wire against the plain frames, CPU microseconds per event;
then the memory one compressed stream holds (RSS growth over 1,000 compressors that each wrote one
frame, measured in a fresh process per encoding). The events are the seed design's eight types
with varied values (numbers, ids, states), not one repeated payload.

    flock /tmp/bench.lock .venv/bin/python bench/bench_compression.py
"""

import json
import random
import subprocess
import sys
import time
from typing import Any

from eh_contracts.examples import SEED_EXAMPLES
from sse_edge.http.sse_frames import event_frame
from sse_edge.http.stream_encoding import ENCODINGS, new_encoder

EVENTS = 20_000


def varied(value: Any, rng: random.Random) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return rng.randrange(0, max(2, value * 2))
    if isinstance(value, float):
        return round(rng.uniform(0, max(1.0, value * 2)), 1)
    if isinstance(value, dict):
        return {k: varied(v, rng) for k, v in value.items()}
    return value


def frames(count: int) -> list[bytes]:
    rng = random.Random(15)
    types = sorted(SEED_EXAMPLES)
    out = []
    for seq in range(1, count + 1):
        event_type = rng.choice(types)
        event = dict(SEED_EXAMPLES[event_type])
        event["id"] = f"{event_type}-{rng.getrandbits(64):016x}"
        event["resource_id"] = f"{event['resource_id'].rsplit('-', 1)[0]}-{rng.randrange(200):03d}"
        event["timestamp"] = f"2026-11-30T08:{seq // 600 % 60:02d}:{seq // 10 % 60:02d}.{seq % 10}00Z"
        event["data"] = varied(event["data"], rng)
        payload = json.dumps(event, separators=(",", ":")).encode()
        out.append(event_frame(seq, event_type, payload))
    return out


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def memory(name: str) -> None:
    """In a fresh process: KiB of RSS per compressed stream."""
    sample = frames(1000)
    before = rss_kib()
    kept = []
    for frame in sample:
        encoder = new_encoder(name)
        encoder.encode(frame)
        kept.append(encoder)
    print(json.dumps({"kib_per_stream": (rss_kib() - before) / len(kept)}))


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--memory":
        memory(sys.argv[2])
        return
    print(f"{EVENTS:,} frames of the eight event types, varied values", flush=True)
    sample = frames(EVENTS)
    plain = sum(len(frame) for frame in sample)
    print(f"plain: {plain / EVENTS:.0f} bytes per event")
    for name in ENCODINGS:
        row: dict[str, Any] = {"encoding": name}
        for per_write in (1, 10, 100):
            encoder = new_encoder(name)
            started = time.process_time()
            wire = 0
            for start in range(0, EVENTS, per_write):
                wire += len(encoder.encode(b"".join(sample[start : start + per_write])))
            cpu = time.process_time() - started
            row[f"wire_ratio_{per_write}_per_write"] = round(wire / plain, 3)
            row[f"cpu_us_per_event_{per_write}_per_write"] = round(cpu / EVENTS * 1e6, 2)
        measured = subprocess.run(
            [sys.executable, __file__, "--memory", name], capture_output=True, text=True, check=True
        )
        row["kib_per_stream"] = round(json.loads(measured.stdout)["kib_per_stream"], 1)
        print("  " + json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
