"""`python -m collector`: serve the collector on COLLECTOR_HOST:COLLECTOR_PORT (default 0.0.0.0:8001),
in COLLECTOR_WORKERS processes (default 1).

`python -m collector agent`: run the host agent (AGENT_* variables) against a collector.

`python -m collector provision`: create or update the EVENTS stream and the collector's buckets,
as the NATS admin identity (NATS_USER/NATS_PASSWORD of the admin), then exit; the collector's own
identity may use them but not create them.
"""

import argparse
import asyncio

from collector.agent.settings import AgentSettings
from collector.settings import CollectorSettings
from eh_runtime.command_line import command_line, environment_help
from eh_runtime.logs import configure_logging
from eh_runtime.settings import load_settings


def parser() -> argparse.ArgumentParser:
    collector = command_line(
        "collector",
        "Take events from producers over HTTP (and NATS), validate them and store them in the EVENTS\n"
        "stream; keep the current state of every resource. Configured by environment variables only.",
        CollectorSettings,
        "collector",
    )
    commands = collector.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "agent",
        help="run the host agent: sample this host and its containers, send them to a collector",
        description="Sample this host (and its Docker containers) every AGENT_INTERVAL and send node and\n"
        "container events to the collector at AGENT_COLLECTOR_URL.",
        epilog=environment_help(AgentSettings),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands.add_parser(
        "provision",
        help="as the NATS admin: create or update the EVENTS stream and the collector's buckets, then exit",
        epilog=environment_help(CollectorSettings),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return collector


def main() -> None:
    arguments = parser().parse_args()
    if arguments.command == "provision":
        from collector.provisioning import provision_as_admin

        collector_settings = load_settings(CollectorSettings)
        configure_logging("collector-provision", collector_settings.logging)
        asyncio.run(provision_as_admin(collector_settings))
        return
    if arguments.command == "agent":
        from collector.agent.runner import run_agent

        settings = load_settings(AgentSettings)
        configure_logging("collector-agent", settings.logging)
        asyncio.run(run_agent(settings))
        return
    from collector.processes import serve

    serve(load_settings(CollectorSettings))


if __name__ == "__main__":
    main()
