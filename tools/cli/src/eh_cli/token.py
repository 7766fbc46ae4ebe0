"""`eh token`: sign a token (HS256) with the services' shared secret, for development and tests.

The claim is the `eh` claim the services check (docs/reference/access-control.md); signing goes
through `eh_runtime.auth.token.sign_token`, which refuses a claim the services would refuse. The
secret is read from a file or from AUTH_SECRET, never from the command line (shell history, `ps`).
"""

import os
from pathlib import Path

import click
from pydantic import TypeAdapter, ValidationError

from eh_runtime.auth.claims import InvalidClaim
from eh_runtime.auth.token import scope_of, sign_token
from eh_runtime.durations import Duration

MIN_SECRET_BYTES = 32  # as the services require of AUTH_SECRET


@click.command()
@click.option("--sub", "subject", required=True, help="Who the token is for (the `sub` claim).")
@click.option(
    "--subscribe",
    metavar="TYPES",
    multiple=True,
    help="Event types it may read (repeat, or comma-separated; '*': all).",
)
@click.option(
    "--resources",
    metavar="PATTERNS",
    multiple=True,
    help="Resource ids it may read, '*' standing for any run of characters ('node-*'). Default: all.",
)
@click.option(
    "--publish",
    metavar="TYPES",
    multiple=True,
    help="Event types it may send (repeat, or comma-separated; '*': all).",
)
@click.option(
    "--publish-resources",
    metavar="PATTERNS",
    multiple=True,
    help="Resource ids it may send events about. Default: all.",
)
@click.option("--admin", is_flag=True, help="Operator: /metrics, the evaluator's status, alerts and rules.")
@click.option("--ttl", default="1h", show_default=True, help="Lifetime: 90s, 15m, 8h, 30d.")
@click.option(
    "--issuer",
    envvar="AUTH_ISSUER",
    help="The `iss` claim; the services check it when AUTH_ISSUER is set. [env: AUTH_ISSUER]",
)
@click.option(
    "--audience",
    envvar="AUTH_AUDIENCE",
    default="event-handler",
    show_default=True,
    help="The `aud` claim, the services' AUTH_AUDIENCE. [env: AUTH_AUDIENCE]",
)
@click.option(
    "--secret-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="AUTH_SECRET_FILE",
    help="File holding the HS256 secret; without it, AUTH_SECRET. [env: AUTH_SECRET_FILE]",
)
def token(
    subject: str,
    subscribe: tuple[str, ...],
    resources: tuple[str, ...],
    publish: tuple[str, ...],
    publish_resources: tuple[str, ...],
    admin: bool,
    ttl: str,
    issuer: str | None,
    audience: str,
    secret_file: Path | None,
) -> None:
    """Print a token signed with the services' secret (AUTH_MODE=jwt, AUTH_SECRET).

    \b
      AUTH_SECRET=... eh token --sub dashboard-ops --subscribe node_status,node_metrics \\
          --resources 'node-*' --ttl 8h
      eh token --sub ci --publish pipeline_status --publish-resources 'ci-*' --secret-file secret.txt
      eh token --sub prometheus --admin --ttl 30d

    A token is a password: anyone holding it has its rights until it expires. In production your
    identity provider signs tokens with the same claim (AUTH_JWKS).
    """
    secret = _secret(secret_file)
    try:
        lifetime = TypeAdapter(Duration).validate_python(ttl)
    except ValidationError:
        message = f"{ttl!r} is not a duration (90s, 15m, 8h, 30d)"
        raise click.BadParameter(message, param_hint="--ttl") from None
    if lifetime.total_seconds() <= 0:
        raise click.BadParameter("must be longer than zero", param_hint="--ttl")
    try:
        scope = scope_of(
            subscribe=subscribe or None,
            resources=resources or ("*",),
            publish=publish or None,
            publish_resources=publish_resources or ("*",),
            admin=admin,
        )
        signed = sign_token(
            secret, subject, scope, ttl_seconds=lifetime.total_seconds(), audience=audience, issuer=issuer
        )
    except InvalidClaim as error:
        raise click.UsageError(f"the services would refuse this token: {error}") from None
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    click.echo(signed)


def _secret(secret_file: Path | None) -> str:
    if secret_file is not None:
        secret, source = secret_file.read_text(encoding="utf-8").strip(), str(secret_file)
    else:
        secret, source = os.environ.get("AUTH_SECRET", "").strip(), "AUTH_SECRET"
    if not secret:
        raise click.UsageError(
            "no secret: set AUTH_SECRET or give --secret-file (the services' HS256 secret signs the token)"
        )
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise click.UsageError(f"the secret in {source} is shorter than {MIN_SECRET_BYTES} bytes")
    return secret
