"""`python -m sse_edge`: serve the SSE edge on SSE_EDGE_HOST:SSE_EDGE_PORT (default 0.0.0.0:8000)."""

from eh_runtime.serve import run
from eh_runtime.settings import load_settings
from sse_edge.app import create_app
from sse_edge.settings import EdgeSettings


def main() -> None:
    run(create_app(load_settings(EdgeSettings)))


if __name__ == "__main__":
    main()
