"""`python -m collector`: serve the collector on COLLECTOR_HOST:COLLECTOR_PORT (default 0.0.0.0:8001)."""

from collector.app import create_app
from collector.settings import CollectorSettings
from eh_runtime.serve import run
from eh_runtime.settings import load_settings


def main() -> None:
    run(create_app(load_settings(CollectorSettings)))


if __name__ == "__main__":
    main()
