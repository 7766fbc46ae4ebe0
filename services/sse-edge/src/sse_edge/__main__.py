"""`python -m sse_edge`: serve the SSE edge on SSE_EDGE_HOST:SSE_EDGE_PORT (default 0.0.0.0:8000)."""

from typing import Final

from eh_runtime.command_line import command_line
from eh_runtime.settings import load_settings
from sse_edge.settings import EdgeSettings

# The live feed and the writers allocate a few short-lived objects per event and write; a young
# collection every 50,000 keeps full collections (tens of ms with thousands of clients, the tail of
# the delivery latency) rare.
GC_YOUNG_THRESHOLD: Final = 50_000


def main() -> None:
    command_line(
        "sse-edge",
        "Serve the build farm's events to browsers and services as Server-Sent Events: live, filtered and\n"
        "replayable, from the EVENTS stream. Configured by environment variables only.",
        EdgeSettings,
        "sse-edge",
    ).parse_args()
    # Imported once the command line is answered: `--help` need not load the whole service.
    from eh_runtime.gc_tuning import tune_gc
    from eh_runtime.serve import run
    from sse_edge.app import create_app

    app = create_app(load_settings(EdgeSettings))
    tune_gc(GC_YOUNG_THRESHOLD)
    run(app)


if __name__ == "__main__":
    main()
