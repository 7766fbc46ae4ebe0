"""A stream lives no longer than the token it was opened with.

At the token's expiry (its `exp` plus the leeway) the stream ends with `stream.token_expired`, after
the history already queued, so the client knows to refresh its token and resume from its
Last-Event-ID instead of retrying with the same token. One timer per stream, cancelled on close.
"""

import asyncio
import time

from eh_contracts.times import rfc3339_from_epoch
from eh_runtime.auth.claims import Principal
from sse_edge.http.sse_frames import control_frame
from sse_edge.live.subscriber import Subscriber

TOKEN_EXPIRED = "token_expired"  # noqa: S105 - a close reason, not a credential


def token_expiry(client: Subscriber, principal: Principal) -> asyncio.TimerHandle | None:
    """Schedule `client`'s end at `principal`'s expiry; None when the principal does not expire."""
    if principal.expires_at is None:
        return None
    delay = max(0.0, principal.expires_at - time.time())
    return asyncio.get_running_loop().call_later(delay, _expire, client, principal.expires_at)


def _expire(client: Subscriber, expired_at: float) -> None:
    farewell = control_frame(
        "stream.token_expired",
        {
            "reason": "the token has expired; refresh it and reconnect with Last-Event-ID",
            "expired_at": rfc3339_from_epoch(expired_at),
        },
    )
    client.close(TOKEN_EXPIRED, farewell)
