"""Who may do what on NATS: one identity per service, subject permissions, an admin for provisioning.

The table below is the permission model; `authorization_block` renders it as nats-server
configuration, with the passwords given (`make run`, tests) or as `$VARIABLE` references that the
server resolves from its environment (Kubernetes and Compose take them from Secrets).

- collector: publishes `events.>` (it validates and stores), answers `ingest.>` requests
  (`allow_responses`), reads and writes its buckets `resource_states` and `node_heartbeats`.
- sse-edge: reads EVENTS through consumers of its own (create/info/delete, direct gets); it can
  publish no event and subscribe to no event subject.
- alert-evaluator: publishes only `events.system_alert.>` and `events.system_log.>`, uses its
  durable consumer `alert-evaluator` (acks through `allow_responses`) and its bucket.
- reader: for services and scripts that read events over NATS (live `events.>` subscriptions and
  consumers of their own on EVENTS, acks through `allow_responses`); it cannot write anything.
- producer: may only request `ingest.<type>.<resource>` for its types (all types for the generic
  identity of `make run`); it can neither answer requests nor read anyone's replies.
- admin: everything; the only identity that creates, changes or deletes streams and buckets.

Replies are private to a connection: each identity may subscribe only below `_INBOX.<identity>`
(never `_INBOX.>`), and each connection of it takes a prefix of its own below that,
`_INBOX.<identity>.<128 random bits>` (eh_runtime.connection), that no other connection knows.
Nobody may publish on `_INBOX.>`: replies come from JetStream, or from a responder answering a
request it received (`allow_responses`: one reply to that request's own reply subject).
"""

import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from eh_devtools.secret_files import write_secret_file

EVENTS: Final = "EVENTS"
COLLECTOR_BUCKETS: Final = ("resource_states", "node_heartbeats")
EVALUATOR_BUCKET: Final = "ALERT_EVALUATOR"
EVALUATOR_CONSUMER: Final = "alert-evaluator"
_NAME_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _stream_reads(stream: str) -> list[str]:
    """What reading a stream through one's own consumers takes (no create/update/delete of it)."""
    return [
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.STREAM.MSG.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}.>",
        f"$JS.API.CONSUMER.CREATE.{stream}",
        f"$JS.API.CONSUMER.CREATE.{stream}.>",
        f"$JS.API.CONSUMER.INFO.{stream}.>",
        f"$JS.API.CONSUMER.DELETE.{stream}.>",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.>",
    ]


# Consumers of EVENTS are the edge's and the collector's to create and delete, except the
# evaluator's durable one: its position is the evaluator's state.
_EVALUATOR_CONSUMER_API: Final = [
    f"$JS.API.CONSUMER.CREATE.{EVENTS}.{EVALUATOR_CONSUMER}",
    f"$JS.API.CONSUMER.CREATE.{EVENTS}.{EVALUATOR_CONSUMER}.>",
    f"$JS.API.CONSUMER.DURABLE.CREATE.{EVENTS}.{EVALUATOR_CONSUMER}",
    f"$JS.API.CONSUMER.DELETE.{EVENTS}.{EVALUATOR_CONSUMER}",
    f"$JS.API.CONSUMER.MSG.NEXT.{EVENTS}.{EVALUATOR_CONSUMER}",
]


def _bucket_use(bucket: str) -> list[str]:
    return [f"$KV.{bucket}.>", *_stream_reads(f"KV_{bucket}")]


@dataclass(frozen=True)
class Identity:
    name: str
    publish: Sequence[str]
    subscribe: Sequence[str] = ()
    allow_responses: bool = False
    deny_publish: Sequence[str] = ()

    def __post_init__(self) -> None:
        # The name is one subject token of the identity's inbox (`_INBOX.<name>.>`).
        if not _NAME_RE.fullmatch(self.name):
            raise ValueError(f"NATS identity {self.name!r}: letters, digits, '_' and '-' only")

    @property
    def inbox(self) -> str:
        """The reply subjects this identity may receive; each connection uses a prefix below it."""
        return f"_INBOX.{self.name}.>"


def producer(name: str, types: Sequence[str] = ()) -> Identity:
    """A producer that may request ingestion of `types` only (none given: every type)."""
    subjects = [f"ingest.{t}.*" for t in types] or ["ingest.>"]
    return Identity(name, publish=subjects)


SERVICE_IDENTITIES: Final = (
    Identity(
        "collector",
        publish=[
            "events.>",
            *_stream_reads(EVENTS),
            *(subject for bucket in COLLECTOR_BUCKETS for subject in _bucket_use(bucket)),
        ],
        subscribe=["ingest.>"],
        allow_responses=True,
        deny_publish=_EVALUATOR_CONSUMER_API,
    ),
    Identity(
        "sse-edge", publish=_stream_reads(EVENTS), allow_responses=True, deny_publish=_EVALUATOR_CONSUMER_API
    ),
    Identity(
        "alert-evaluator",
        publish=[
            "events.system_alert.>",
            "events.system_log.>",
            f"$JS.API.STREAM.INFO.{EVENTS}",
            f"$JS.API.STREAM.MSG.GET.{EVENTS}",
            f"$JS.API.DIRECT.GET.{EVENTS}",
            f"$JS.API.DIRECT.GET.{EVENTS}.>",
            f"$JS.API.CONSUMER.INFO.{EVENTS}.{EVALUATOR_CONSUMER}",
            f"$JS.API.CONSUMER.CREATE.{EVENTS}.{EVALUATOR_CONSUMER}",
            f"$JS.API.CONSUMER.CREATE.{EVENTS}.{EVALUATOR_CONSUMER}.>",
            f"$JS.API.CONSUMER.DURABLE.CREATE.{EVENTS}.{EVALUATOR_CONSUMER}",
            f"$JS.API.CONSUMER.DELETE.{EVENTS}.{EVALUATOR_CONSUMER}",
            f"$JS.API.CONSUMER.MSG.NEXT.{EVENTS}.{EVALUATOR_CONSUMER}",
            *_bucket_use(EVALUATOR_BUCKET),
        ],
        allow_responses=True,
    ),
)
ADMIN: Final = "admin"
PRODUCER: Final = producer("producer")
READER: Final = Identity(
    "reader",
    publish=[*_stream_reads(EVENTS), f"$JS.API.CONSUMER.DURABLE.CREATE.{EVENTS}.>"],
    subscribe=["events.>"],
    allow_responses=True,
    deny_publish=_EVALUATOR_CONSUMER_API,
)


@dataclass
class Credentials:
    """Passwords by identity name, kept in the data directory so restarts keep them."""

    passwords: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load_or_create(cls, path: Path, names: Sequence[str]) -> "Credentials":
        """The passwords stored at `path`, with new random ones for names it lacks (file mode 0600)."""
        stored: dict[str, str] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        missing = [name for name in names if name not in stored]
        for name in missing:
            stored[name] = secrets.token_urlsafe(24)
        if missing or not path.exists():
            write_secret_file(path, json.dumps(stored, indent=2))
        return cls(stored)

    def url(self, server_url: str, name: str) -> str:
        """`server_url` with `name`'s user and password embedded."""
        scheme, _, rest = server_url.partition("://")
        return f"{scheme}://{name}:{self.passwords[name]}@{rest}"


def all_identities(producers: Sequence[Identity] = (PRODUCER,)) -> list[Identity]:
    return [*SERVICE_IDENTITIES, READER, *producers]


def authorization_block(
    passwords: Mapping[str, str] | None = None, producers: Sequence[Identity] = (PRODUCER,)
) -> str:
    """The server's `authorization { users = [...] }` block.

    `passwords` None: each password is `$EH_NATS_<NAME>_PASSWORD`, resolved by the server from
    its environment (Secrets); otherwise the literal passwords.
    """
    lines = ["authorization {", "  users = ["]
    lines.append(f"    {{user: {ADMIN}, password: {_password(ADMIN, passwords)}}}")
    for identity in all_identities(producers):
        lines += [
            f"    {{user: {json.dumps(identity.name)}, password: {_password(identity.name, passwords)},",
            "      permissions: {",
            f"      publish: {{allow: {_list(identity.publish)}"
            + (f", deny: {_list(identity.deny_publish)}" if identity.deny_publish else "")
            + "}",
            f"      subscribe: {{allow: {_list([*identity.subscribe, identity.inbox])}}}",
        ]
        if identity.allow_responses:
            lines.append("      allow_responses: true")
        lines.append("    }}")
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def password_variable(name: str) -> str:
    return f"EH_NATS_{name.upper().replace('-', '_')}_PASSWORD"


def _password(name: str, passwords: Mapping[str, str] | None) -> str:
    return f"${password_variable(name)}" if passwords is None else json.dumps(passwords[name])


def _list(subjects: Sequence[str]) -> str:
    return "[" + ", ".join(json.dumps(s) for s in subjects) + "]"
