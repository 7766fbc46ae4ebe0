"""The one NATS connection of a service process.

The connection is made in the background: a service starts, answers `/healthz`, and reports not
ready until NATS is reachable, instead of crash-looping while NATS starts next to it. After every
(re)connection the service's `on_connect` hooks run (provision the stream, start the live feed),
retried with backoff until they succeed, because a restarted server may have lost state.
"""

import asyncio
import contextlib
import re
import secrets
import ssl
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import nats
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from prometheus_client import Counter, Gauge

from eh_runtime.settings import NatsSettings, split_credentials

log = structlog.get_logger(__name__)

ConnectHook = Callable[["NatsConnection"], Awaitable[None]]

NATS_CONNECTED = Gauge("eventhandler_nats_connected", "1 while the process is connected to NATS, else 0.")
NATS_DISCONNECTS = Counter("eventhandler_nats_disconnects", "Times the connection to NATS was lost.")
NATS_RECONNECTS = Counter("eventhandler_nats_reconnects", "Times the connection to NATS was re-established.")

_HOOK_RETRY_MAX_SECONDS = 30.0
_INBOX_TOKEN_BYTES = 16
_CREDENTIALS = re.compile(r"://[^@/,]*@")


class NatsConnection:
    """A NATS client that connects, reconnects forever, and drains on close."""

    def __init__(self, settings: NatsSettings, name: str, on_connect: Sequence[ConnectHook] = ()) -> None:
        self.settings = settings
        self.name = name
        self.client: Client = Client()
        self._on_connect = list(on_connect)
        self._connect_task: asyncio.Task[None] | None = None
        self._hooks_task: asyncio.Task[None] | None = None
        self._hooks_done = asyncio.Event()
        self.last_error: str | None = None

    @property
    def is_connected(self) -> bool:
        return self.client.is_connected

    @property
    def hooks_done(self) -> bool:
        """True once the on-connect hooks succeeded for the current connection."""
        return self._hooks_done.is_set()

    def jetstream(self) -> JetStreamContext:
        return self.client.jetstream(timeout=self.settings.request_timeout.total_seconds())

    def add_hook(self, hook: ConnectHook) -> None:
        """Run `hook` after every (re)connection; call before `start`."""
        self._on_connect.append(hook)

    def start(self) -> None:
        """Begin connecting in the background; returns at once."""
        self._connect_task = asyncio.create_task(self._connect(), name=f"{self.name}-nats-connect")

    async def wait_ready(self, timeout: float) -> None:
        """Wait until connected and the hooks ran; raises TimeoutError after `timeout` seconds."""
        await asyncio.wait_for(self._hooks_done.wait(), timeout)

    async def _connect(self) -> None:
        servers, url_user, url_password = split_credentials(self.settings.servers)
        options: dict[str, Any] = {
            "servers": servers,
            "name": self.name,
            "connect_timeout": self.settings.connect_timeout.total_seconds(),
            "reconnect_time_wait": self.settings.reconnect_wait.total_seconds(),
            # -1: keep trying forever, including the first connection.
            "max_reconnect_attempts": -1,
            "disconnected_cb": self._on_disconnected,
            "reconnected_cb": self._on_reconnected,
            "error_cb": self._on_error,
        }
        if self.settings.creds:
            options["user_credentials"] = self.settings.creds
        if self.settings.user:
            options["user"] = self.settings.user
            options["password"] = self.settings.password.get_secret_value() if self.settings.password else ""
        elif url_user is not None:
            options["user"] = url_user
            options["password"] = url_password or ""
        # Replies come back under a prefix of this connection's own, inside the only inbox subjects
        # its identity may subscribe to (NATS permissions): no other identity can read them, and no
        # other connection of the same identity can guess them.
        options["inbox_prefix"] = private_inbox_prefix(
            self.settings.inbox_prefix or inbox_scope(self.settings.user or url_user or self.name)
        )
        if self.settings.tls_ca or self.settings.tls_cert:
            options["tls"] = client_tls_context(self.settings)
        await self.client.connect(**options)
        NATS_CONNECTED.set(1)
        log.info(
            "nats connected",
            url=_safe_url(self.client),
            server_version=str(self.client.connected_server_version),
        )
        self._schedule_hooks()

    def _schedule_hooks(self) -> None:
        self._hooks_done.clear()
        if self._hooks_task is not None:
            self._hooks_task.cancel()
        self._hooks_task = asyncio.create_task(self._run_hooks(), name=f"{self.name}-on-connect")

    async def _run_hooks(self) -> None:
        delay = 0.25
        while True:
            try:
                for hook in self._on_connect:
                    await hook(self)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a hook failing must not kill the service; it is retried
                self.last_error = f"{type(error).__name__}: {error}"
                log.error("on-connect step failed, retrying", error=self.last_error, retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _HOOK_RETRY_MAX_SECONDS)
                continue
            self.last_error = None
            self._hooks_done.set()
            return

    async def _on_disconnected(self) -> None:
        NATS_CONNECTED.set(0)
        NATS_DISCONNECTS.inc()
        if not self.client.is_closed:
            log.warning("nats disconnected, reconnecting", url=without_credentials(self.settings.url))

    async def _on_reconnected(self) -> None:
        NATS_CONNECTED.set(1)
        NATS_RECONNECTS.inc()
        log.info("nats reconnected", url=_safe_url(self.client))
        # Not awaited here: the client calls this from its reconnect loop.
        self._schedule_hooks()

    async def _on_error(self, error: Exception) -> None:
        self.last_error = f"{type(error).__name__}: {error}"
        log.warning("nats error", error=self.last_error, url=without_credentials(self.settings.url))

    async def close(self, timeout: float = 10.0) -> None:
        """Drain subscriptions and pending publishes, then close; give up after `timeout` seconds."""
        for task in (self._hooks_task, self._connect_task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.client.is_closed:
            return
        try:
            if self.client.is_connected:
                await asyncio.wait_for(self.client.drain(), timeout)
        except (TimeoutError, nats.errors.Error) as error:
            log.warning("nats drain incomplete", error=f"{type(error).__name__}: {error}")
        finally:
            if not self.client.is_closed:
                await self.client.close()
            NATS_CONNECTED.set(0)


def inbox_scope(identity: str) -> str:
    """`_INBOX.<identity>`: the NATS permissions let `identity` subscribe only below it."""
    return f"_INBOX.{identity}"


def private_inbox_prefix(scope: str) -> str:
    """`<scope>.<128 random bits>`: the reply prefix of one connection.

    Other identities are kept out of `scope` by the server; other connections of the same identity
    (replicas of one service) by not knowing the random token, which never leaves this process.
    """
    return f"{scope}.{secrets.token_hex(_INBOX_TOKEN_BYTES)}"


def without_credentials(urls: str) -> str:
    """NATS URL(s) for a log line: `user:password@` removed."""
    return _CREDENTIALS.sub("://", urls)


def client_tls_context(settings: NatsSettings) -> ssl.SSLContext:
    """TLS to NATS: the server verified against NATS_TLS_CA, and our certificate if one is given."""
    context = ssl.create_default_context(cafile=settings.tls_ca)
    if settings.tls_cert:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    return context


def _safe_url(client: Client) -> str | None:
    """The connected server without credentials, for logs."""
    url = client.connected_url
    if url is None:
        return None
    return f"{url.scheme}://{url.hostname}:{url.port}"
