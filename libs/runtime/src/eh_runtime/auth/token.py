"""Sign a token for development and tests (HS256, AUTH_SECRET): `eh token` in the CLI, or
without it `python -m eh_runtime.auth.token`, which takes the same options:

    AUTH_SECRET=... python -m eh_runtime.auth.token --sub dashboard \\
        --subscribe 'node_status,node_metrics' --resources 'node-*' --ttl 8h

prints the token. `--publish TYPES` (with `--publish-resources`) makes a producer's token,
`--admin` an operator's; `--subscribe '*'` reads everything. Issuer and audience are AUTH_ISSUER
and AUTH_AUDIENCE, as the services check them. Production tokens come from your identity provider
(JWKS), with the same `eh` claim.
"""

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import jwt

from eh_runtime.auth.claims import CLAIM, Principal
from eh_runtime.settings import parse_duration


def sign_token(
    secret: str,
    subject: str,
    scope: dict[str, Any],
    *,
    ttl_seconds: float = 3600,
    audience: str = "event-handler",
    issuer: str | None = None,
) -> str:
    """An HS256 token for `subject` with the `eh` claim `scope`, valid for `ttl_seconds`."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": subject, "aud": audience, "iat": now, "exp": now + int(ttl_seconds)}
    if issuer:
        claims["iss"] = issuer
    claims[CLAIM] = scope
    Principal.from_claims(claims)  # refuse to sign a claim the services would refuse
    return jwt.encode(claims, secret, algorithm="HS256")


def scope_of(
    *,
    subscribe: Sequence[str] | None = None,
    resources: Sequence[str] = ("*",),
    publish: Sequence[str] | None = None,
    publish_resources: Sequence[str] = ("*",),
    admin: bool = False,
) -> dict[str, Any]:
    """The `eh` claim granting what the options of a token command say.

    `subscribe` / `publish`: event types (`*`: all), None: that section is not granted; each item
    may itself be comma-separated, as typed on a command line.

    Raises:
        ValueError: nothing is granted.
    """
    scope: dict[str, Any] = {}
    for section, types, patterns in (
        ("subscribe", subscribe, resources),
        ("publish", publish, publish_resources),
    ):
        if types is not None:
            scope[section] = {"types": split_list(types), "resources": split_list(patterns)}
    if admin:
        scope["admin"] = True
    if not scope:
        raise ValueError("nothing granted: give --subscribe, --publish and/or --admin")
    return scope


def split_list(values: Sequence[str] | str) -> list[str]:
    """`["a,b", "c"]` (or `"a,b"`) → `["a", "b", "c"]`: repeated and comma-separated both work."""
    items = [values] if isinstance(values, str) else values
    return [part.strip() for item in items for part in item.split(",") if part.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m eh_runtime.auth.token", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--sub", required=True, help="who the token is for (the `sub` claim)")
    parser.add_argument("--subscribe", metavar="TYPES", help="event types to read, comma-separated, or '*'")
    parser.add_argument("--resources", default="*", help="resource-id patterns to read (default '*')")
    parser.add_argument("--publish", metavar="TYPES", help="event types to publish, comma-separated, or '*'")
    parser.add_argument("--publish-resources", default="*", help="resource-id patterns to publish")
    parser.add_argument("--admin", action="store_true", help="operator: /metrics and the admin views")
    parser.add_argument("--ttl", default="1h", help="lifetime: 90s, 15m, 8h, 30d (default 1h)")
    args = parser.parse_args(argv)
    secret = os.environ.get("AUTH_SECRET")
    if not secret:
        print("AUTH_SECRET is not set: the services' HS256 secret signs the token", file=sys.stderr)
        return 2
    try:
        scope = scope_of(
            subscribe=args.subscribe,
            resources=args.resources,
            publish=args.publish,
            publish_resources=args.publish_resources,
            admin=args.admin,
        )
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    ttl = parse_duration(args.ttl)
    token = sign_token(
        secret,
        args.sub,
        scope,
        ttl_seconds=ttl.total_seconds() if hasattr(ttl, "total_seconds") else float(ttl),
        audience=os.environ.get("AUTH_AUDIENCE", "event-handler"),
        issuer=os.environ.get("AUTH_ISSUER") or None,
    )
    print(token)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
