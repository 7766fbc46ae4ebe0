"""`python -m alert_evaluator`: serve on ALERT_EVALUATOR_HOST:ALERT_EVALUATOR_PORT (default 0.0.0.0:8002)."""

import sys

from alert_evaluator.settings import EvaluatorSettings
from eh_runtime.command_line import command_line
from eh_runtime.settings import load_settings


def main() -> None:
    if sys.argv[1:] == ["provision"]:
        _provision()
        return
    command_line(
        "alert-evaluator",
        "Evaluate alert rules against the EVENTS stream and publish system_alert events (one active\n"
        "replica, others on standby). Configured by environment variables only.",
        EvaluatorSettings,
        "alert-evaluator",
    ).parse_args()
    # Imported once the command line is answered: `--help` need not load the whole service.
    from alert_evaluator.app import create_app
    from alert_evaluator.rules_file import RulesFileError
    from eh_runtime.serve import run

    settings = load_settings(EvaluatorSettings)
    try:
        app = create_app(settings)
    except RulesFileError as error:
        # One line per problem, no traceback: the evaluator does not start half-configured.
        raise SystemExit(str(error)) from None
    run(app)


def _provision() -> None:
    """`python -m alert_evaluator provision`: the evaluator's bucket, created as the NATS admin."""
    import asyncio

    from alert_evaluator.state_store import provision_state_bucket
    from eh_runtime.connection import NatsConnection

    settings = load_settings(EvaluatorSettings)

    async def provision() -> None:
        connection = NatsConnection(settings.nats, "provision")
        connection.start()
        try:
            await connection.wait_ready(settings.nats.connect_timeout.total_seconds() * 10)
            await provision_state_bucket(connection.jetstream(), settings.stream.replicas)
        finally:
            await connection.close()

    asyncio.run(provision())


if __name__ == "__main__":
    main()
