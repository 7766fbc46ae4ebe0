"""A bare SSE reader in its own process: how late events reach a client that does nothing else.

The baseline beside the page's figures in the dashboard load test: the same stream, the same
events, read from a socket and timed against each event's own timestamp. Prints the lags in
milliseconds as one JSON list when it gets SIGTERM.

    python sse_lag_probe.py <port> <path>
"""

import json
import signal
import socket
import sys
import time
from datetime import datetime

_KEY = b'"timestamp":"'


def main() -> None:
    port, path = int(sys.argv[1]), sys.argv[2]
    lags: list[float] = []

    def stop(*_: object) -> None:
        print(json.dumps(lags), flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: probe\r\n\r\n".encode())
    tail = b""
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            stop()
        now = time.time()
        data = tail + chunk
        start = 0
        while (found := data.find(_KEY, start)) >= 0:
            end = data.find(b'"', found + len(_KEY))
            if end < 0:
                break
            stamp = data[found + len(_KEY) : end].decode()
            lags.append(1000 * (now - datetime.fromisoformat(stamp).timestamp()))
            start = end
        tail = data[start:]


if __name__ == "__main__":
    main()
