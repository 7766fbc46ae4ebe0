"""`eh`: the command line of Event Handler.

Every command talks to the services over HTTP through `eh_client`; URLs and token come from
options or from `EH_URL` (the SSE edge), `EH_COLLECTOR_URL`, `EH_EVALUATOR_URL` and `EH_TOKEN`.
"""

import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

from eh_cli.posting import events_from_flags, read_events
from eh_cli.render import control_json, control_line, event_json, event_line
from eh_cli.token import token
from eh_client import Control, EventClient, EventHandlerError
from eh_client.client import DEFAULT_COLLECTOR_URL, DEFAULT_EDGE_URL, DEFAULT_EVALUATOR_URL
from eh_contracts.event_types import EventType

P = ParamSpec("P")
R = TypeVar("R")

TYPES = click.Choice([t.value for t in EventType])


def run_async(command: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, R | None]:
    """Run an async command; a client error becomes a one-line message and exit status 1."""

    @wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | None:
        try:
            return asyncio.run(command(*args, **kwargs))
        except EventHandlerError as error:
            raise click.ClickException(str(error)) from None
        except KeyboardInterrupt:
            return None  # Ctrl-C: the command said where it stopped, no traceback

    return wrapper


def client_of(ctx: click.Context) -> EventClient:
    options: dict[str, Any] = ctx.obj
    return EventClient(
        options["url"],
        collector_url=options["collector_url"],
        evaluator_url=options["evaluator_url"],
        token=options["token"],
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--url", envvar="EH_URL", default=DEFAULT_EDGE_URL, show_default=True, help="The SSE edge.")
@click.option("--collector-url", envvar="EH_COLLECTOR_URL", default=DEFAULT_COLLECTOR_URL, show_default=True)
@click.option("--evaluator-url", envvar="EH_EVALUATOR_URL", default=DEFAULT_EVALUATOR_URL, show_default=True)
@click.option("--token", envvar="EH_TOKEN", default=None, help="Bearer token (JWT) when auth is on.")
@click.pass_context
def cli(ctx: click.Context, url: str, collector_url: str, evaluator_url: str, token: str | None) -> None:
    """Tail, query and post build-farm events; see the farm's state and alerts; check alert rules."""
    ctx.obj = {"url": url, "collector_url": collector_url, "evaluator_url": evaluator_url, "token": token}


def filter_options(command: Callable[P, R]) -> Callable[P, R]:
    command = click.option(
        "--resource", "-r", "resources", multiple=True, help="Resource id (repeat, or comma-separated)."
    )(command)
    command = click.option(
        "--type", "-t", "types", multiple=True, help="Event type (repeat, or comma-separated)."
    )(command)
    return command


@cli.command()
@filter_options
@click.option("--since", help="Replay from this long ago first (30s, 10m, 2h) or from an RFC 3339 time.")
@click.option(
    "--limit", "-n", type=click.IntRange(1, 10_000), help="Replay the last N matching events first."
)
@click.option("--snapshot", is_flag=True, help="First the latest event of every matching type and resource.")
@click.option("--last-event-id", type=int, help="Resume strictly after this event id (stream sequence).")
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON object per line (controls as {'control': …})."
)
@click.option("--quiet", "-q", is_flag=True, help="Only events, no control lines.")
@click.option("--count", type=int, help="Stop after this many events.")
@click.pass_context
@run_async
async def tail(
    ctx: click.Context,
    types: tuple[str, ...],
    resources: tuple[str, ...],
    since: str | None,
    limit: int | None,
    snapshot: bool,
    last_event_id: int | None,
    as_json: bool,
    quiet: bool,
    count: int | None,
) -> None:
    """Follow events live, after an optional replay; resumes by itself after any drop.

    Ctrl-C stops cleanly and prints the id to resume from (--last-event-id).
    """
    async with client_of(ctx) as client:
        stream = client.events(
            types=types,
            resources=resources,
            since=since,
            limit=limit,
            snapshot=snapshot,
            last_event_id=last_event_id,
        )
        seen = 0
        try:
            async for item in stream:
                if isinstance(item, Control):
                    if not quiet:
                        line = control_json(item) if as_json else control_line(item)
                        click.echo(line, err=not as_json)
                    continue
                click.echo(event_json(item) if as_json else event_line(item))
                seen += 1
                if count is not None and seen >= count:
                    return
        except asyncio.CancelledError:
            pass
        finally:
            if stream.last_event_id is not None and (count is None or seen < count):
                click.echo(f"stopped; resume with --last-event-id {stream.last_event_id}", err=True)


@cli.command()
@filter_options
@click.option("--since", help="From this long ago (30s, 10m, 2h) or an RFC 3339 time.")
@click.option("--start", "start_time", help="RFC 3339 start of the range (event time).")
@click.option("--end", "end_time", help="RFC 3339 end of the range, or a duration ago.")
@click.option("--order", type=click.Choice(["asc", "desc"]), default="asc", show_default=True)
@click.option("--max", "max_events", type=int, default=1000, show_default=True, help="Stop after this many.")
@click.option("--snapshot", is_flag=True, help="The latest event of every matching type and resource.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
@run_async
async def history(
    ctx: click.Context,
    types: tuple[str, ...],
    resources: tuple[str, ...],
    since: str | None,
    start_time: str | None,
    end_time: str | None,
    order: str,
    max_events: int,
    snapshot: bool,
    as_json: bool,
) -> None:
    """Stored events as pages (no stream), oldest first unless --order desc."""
    async with client_of(ctx) as client:
        async for event in client.history(
            types=types,
            resources=resources,
            since=since,
            start_time=start_time,
            end_time=end_time,
            order="desc" if order == "desc" else "asc",
            snapshot=snapshot,
            max_events=max_events,
        ):
            click.echo(event_json(event) if as_json else event_line(event))


@cli.command()
@click.argument("source", required=False, type=click.Path(allow_dash=True, dir_okay=False))
@click.option(
    "--type", "-t", "event_type", type=TYPES, help="With --resource: post one event built from flags."
)
@click.option("--resource", "-r", "resource_id", help="Resource id of the event built from flags.")
@click.option("--data", "data_json", help="The event's data as JSON.")
@click.option("--set", "assignments", multiple=True, help="A data field: --set cpu.usage=45.5 (repeatable).")
@click.option("--id", "event_id", help="Idempotency key (default: a new one; a retry reuses it).")
@click.option("--json", "as_json", is_flag=True, help="Print the collector's per-event results as JSON.")
@click.pass_context
def post(
    ctx: click.Context,
    source: str | None,
    event_type: str | None,
    resource_id: str | None,
    data_json: str | None,
    assignments: tuple[str, ...],
    event_id: str | None,
    as_json: bool,
) -> None:
    """Post events: SOURCE is a JSON or NDJSON file, or - for NDJSON on stdin; or build one with flags.

    \b
      eh post events.ndjson
      cat events.ndjson | eh post -
      eh post -t node_metrics -r node-001 --set cpu.usage=45.5 --set memory.used=2048
    """
    if source is not None and event_type is not None:
        raise click.UsageError("give SOURCE or --type/--resource, not both")
    if source is not None:
        events = read_events(sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes())
    elif event_type is not None and resource_id is not None:
        events = [events_from_flags(event_type, resource_id, data_json, assignments, event_id)]
    else:
        raise click.UsageError("give SOURCE (a file, or - for stdin), or --type and --resource")
    if not run_async(_publish)(ctx, events, as_json):
        raise click.exceptions.Exit(1)


async def _publish(ctx: click.Context, events: list[dict[str, Any]], as_json: bool) -> bool:
    """Post and print each event's result; True when every event was accepted."""
    async with client_of(ctx) as client:
        result = await client.publish(events)
    for event in result.events:
        if as_json:
            click.echo(
                json.dumps(
                    {k: getattr(event, k) for k in ("index", "id", "status", "seq", "error")}
                    | {"errors": list(event.errors)}
                )
            )
            continue
        where = f" seq {event.seq}" if event.seq is not None else ""
        line = f"#{event.index} {event.status}{where} id={event.id}"
        for error in event.errors:
            line += f"\n    {error.get('field')}: {error.get('msg')}"
        if event.error:
            line += f"\n    {event.error}"
        click.echo(click.style(line, fg="green" if event.accepted else "red"))
    return result.ok


@cli.command()
@click.argument("kind", type=click.Choice(["node", "pipeline", "container"]))
@click.argument("resource_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="The collector's answer as JSON.")
@click.pass_context
@run_async
async def state(ctx: click.Context, kind: str, resource_id: str | None, as_json: bool) -> None:
    """Current state of every node, pipeline or container (or of one)."""
    async with client_of(ctx) as client:
        answer = await client.state(kind, resource_id)  # type: ignore[arg-type]
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    rows = [answer] if resource_id else answer.get("resources", [])
    for row in rows:
        event = row.get("event") or {}
        since = event.get("timestamp", "?")
        click.echo(f"{row['id']:<24} {row.get('state') or '?':<12} since {since}  seq {row.get('seq')}")
    click.echo(
        click.style(f"({len(rows)} {kind}s, stream at {answer.get('stream_seq')})", dim=True), err=True
    )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="The evaluator's answer as JSON.")
@click.pass_context
@run_async
async def alerts(ctx: click.Context, as_json: bool) -> None:
    """Alerts pending and firing now, from the alert evaluator's active replica."""
    async with client_of(ctx) as client:
        current = await client.alerts()
    if as_json:
        click.echo(json.dumps(current, indent=2))
        return
    if not current:
        click.echo("no alert pending or firing")
    for alert in current:
        phase = str(alert.get("phase", "?"))
        click.echo(
            click.style(f"{phase:<8}", fg="red" if phase == "firing" else "yellow")
            + f" {alert.get('alert_id', '')}  since {alert.get('started_at') or alert.get('since')}"
            f"  value {alert.get('value')}"
        )


@cli.group()
def rules() -> None:
    """Alert rules files."""


@rules.command("check")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def rules_check(path: Path) -> None:
    """Validate a rules file exactly as the alert evaluator loads it; exit 1 naming every problem."""
    from alert_evaluator.rules_file import RulesFileError, load_rules_file

    try:
        ruleset = load_rules_file(path)
    except RulesFileError as error:
        for problem in error.problems:
            click.echo(click.style(f"{path}: {problem}", fg="red"), err=True)
        raise click.exceptions.Exit(1) from None
    click.echo(f"{path}: {len(ruleset.rules)} rule(s) OK (checksum {ruleset.checksum[:12]})")


cli.add_command(token)
