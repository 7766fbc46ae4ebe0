"""How collector processes run: a garbage collector tuned for batches (`eh_runtime.gc_tuning`),
and optionally several worker processes sharing one listening socket (`COLLECTOR_WORKERS`).

Validating a batch of 1,000 events allocates some 20,000 dicts and lists, all alive until the
answer is sent. With CPython's default threshold (700 allocations) that is ~30 young collections
per request, and the full collections they lead to walk the whole heap (modules, schemas, clients):
about a third of the collector's CPU time.

Workers: each is a whole collector (its own NATS connection, state buckets, heartbeat sweeps), as
replicas are; the parent only binds the socket, forks, forwards SIGTERM/SIGINT and waits. The
kernel spreads connections over the workers. Each worker answers `/metrics` for itself.
"""

import os
import signal
import socket
import sys
import traceback
from types import FrameType
from typing import Final

import uvicorn

from collector.app import create_app
from collector.settings import CollectorSettings
from eh_runtime.gc_tuning import tune_gc
from eh_runtime.logs import configure_logging
from eh_runtime.serve import raise_descriptor_limit, run, server_for
from eh_runtime.service import Service

# Above the containers of several 1,000-event requests in flight (~20,000 each), so that most of
# them are freed by reference counting before a collection has to walk them; cyclic garbage,
# which only the collector frees, is rare on this path.
GC_YOUNG_THRESHOLD: Final = 200_000


def serve(settings: CollectorSettings) -> None:
    """Serve the collector until SIGTERM or SIGINT, in `settings.workers` processes."""
    if settings.workers == 1:
        app = create_app(settings)
        tune_gc(GC_YOUNG_THRESHOLD)
        run(app)
        return
    raise_descriptor_limit()  # before the fork: every worker inherits it
    # uvicorn's own binding (IPv4 or IPv6 from the host); the app named here is never loaded.
    listener = uvicorn.Config(
        "collector.app:create_app", host=settings.host, port=settings.port
    ).bind_socket()
    workers = set()
    for _ in range(settings.workers):
        pid = os.fork()
        if pid == 0:  # the child: a worker, which never returns from here
            code = 1
            try:
                _serve_worker(settings, listener)
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        workers.add(pid)
    listener.close()
    sys.exit(_supervise(workers))


def _serve_worker(settings: CollectorSettings, listener: socket.socket) -> None:
    app = create_app(settings)
    service: Service = app.state.service
    configure_logging(service.name, service.settings.logging)
    tune_gc(GC_YOUNG_THRESHOLD)
    server_for(app, service).run(sockets=[listener])


def _supervise(workers: set[int]) -> int:
    """Wait for every worker; when one fails or a stop signal comes, stop all. The exit status."""
    stopping = False

    def stop_all(_signal: int = signal.SIGTERM, _frame: FrameType | None = None) -> None:
        nonlocal stopping
        stopping = True
        for pid in workers:
            os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)
    status = 0
    while workers:
        pid, wait_status = os.wait()
        workers.discard(pid)
        if os.waitstatus_to_exitcode(wait_status) != 0 and not stopping:
            status = 1
            stop_all()
    return status
