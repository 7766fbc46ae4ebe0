"""`python -m collector`: serve the collector on COLLECTOR_HOST:COLLECTOR_PORT (default 0.0.0.0:8001),
in COLLECTOR_WORKERS processes (default 1).

`python -m collector agent`: run the host agent (AGENT_* variables) against a collector.
"""

import asyncio
import sys

from eh_runtime.logs import configure_logging
from eh_runtime.settings import load_settings


def main() -> None:
    if sys.argv[1:2] == ["agent"]:
        from collector.agent.runner import run_agent
        from collector.agent.settings import AgentSettings

        settings = load_settings(AgentSettings)
        configure_logging("collector-agent", settings.logging)
        asyncio.run(run_agent(settings))
        return
    if sys.argv[1:]:
        raise SystemExit(f"usage: python -m collector [agent]; unknown arguments: {' '.join(sys.argv[1:])}")
    from collector.processes import serve
    from collector.settings import CollectorSettings

    serve(load_settings(CollectorSettings))


if __name__ == "__main__":
    main()
