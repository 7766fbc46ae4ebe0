"""One active replica at a time: a lease key with a per-message TTL in the state bucket.

The holder renews the key every third of the TTL, each write expecting the revision it wrote
last; if it dies, the server deletes the key when the TTL runs out and a standby's create
succeeds (a graceful stop deletes it at once). The server's clock decides expiry, so replicas'
clocks need not agree. The holder also stops trusting its lease on its own once a TTL has passed
since its last successful renewal (a long pause, a lost connection): it never acts on a lease
that others may already consider expired.
"""

import asyncio
import contextlib
import json
import time

import structlog
from nats.js import JetStreamContext
from nats.js.api import Header
from nats.js.errors import APIError, KeyWrongLastSequenceError

from alert_evaluator.state_store import BUCKET, LEASE_KEY
from eh_contracts.times import utc_now_rfc3339
from eh_runtime.connection import NatsConnection
from eh_runtime.jetstream import ERR_WRONG_LAST_SEQUENCE

log = structlog.get_logger(__name__)


class LeaseLost(Exception):
    """This replica no longer holds the lease."""


class Lease:
    def __init__(self, connection: NatsConnection, replica_id: str, ttl: float) -> None:
        self._connection = connection
        self.replica_id = replica_id
        self.ttl = ttl
        self._revision = 0
        self._valid_until = 0.0  # monotonic
        self._keeper: asyncio.Task[None] | None = None
        self.lost = asyncio.Event()

    @property
    def held(self) -> bool:
        """Held and safe to act on: renewed less than a TTL ago, and not known to be lost."""
        return self._revision > 0 and not self.lost.is_set() and time.monotonic() < self._valid_until

    def _js(self) -> JetStreamContext:
        return self._connection.jetstream()

    def _value(self) -> bytes:
        return json.dumps({"replica": self.replica_id, "renewed_at": utc_now_rfc3339()}).encode()

    async def try_acquire(self) -> bool:
        """Take the lease if nobody holds it; True when this replica now holds it."""
        if self.held:
            return True
        started = time.monotonic()
        kv = await self._js().key_value(BUCKET)
        try:
            self._revision = await kv.create(LEASE_KEY, self._value(), msg_ttl=self.ttl)
        except KeyWrongLastSequenceError:
            return False
        self._valid_until = started + self.ttl
        self.lost.clear()
        self._keeper = asyncio.create_task(self._keep(), name="alert-evaluator-lease")
        log.info("lease acquired: this replica is active", replica=self.replica_id, ttl_s=self.ttl)
        return True

    async def _keep(self) -> None:
        while not self.lost.is_set():
            await asyncio.sleep(self.ttl / 3)
            started = time.monotonic()
            try:
                ack = await self._js().publish(
                    f"$KV.{BUCKET}.{LEASE_KEY}",
                    self._value(),
                    headers={Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value: str(self._revision)},
                    msg_ttl=self.ttl,
                )
            except APIError as error:
                if error.err_code in ERR_WRONG_LAST_SEQUENCE:
                    self._lose("another replica holds the lease")
                    return
                self._check_expiry(error)
                continue
            except Exception as error:  # disconnected, timeout: retry until the lease runs out
                self._check_expiry(error)
                continue
            self._revision = ack.seq
            self._valid_until = started + self.ttl

    def _check_expiry(self, error: Exception) -> None:
        if time.monotonic() >= self._valid_until:
            self._lose(f"not renewed within the TTL: {type(error).__name__}: {error}")
        else:
            log.warning("lease renewal failed, retrying", error=f"{type(error).__name__}: {error}")

    def _lose(self, reason: str) -> None:
        log.warning("lease lost: this replica stops evaluating", replica=self.replica_id, reason=reason)
        self.lost.set()

    def check(self) -> None:
        """Raise LeaseLost unless the lease is held and fresh."""
        if not self.held:
            raise LeaseLost("lease lost or expired")

    async def release(self) -> None:
        """Give the lease up (a standby takes over at its next attempt)."""
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        if self._revision and self.held and self._connection.is_connected:
            try:
                kv = await self._js().key_value(BUCKET)
                await kv.delete(LEASE_KEY, last=self._revision)
                log.info("lease released", replica=self.replica_id)
            except Exception as error:  # it expires on its own anyway
                log.warning("lease not released; it expires by itself", error=str(error))
        self._revision = 0
        self.lost.set()
