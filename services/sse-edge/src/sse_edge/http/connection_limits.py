"""How many event streams one edge process holds, in all and per client address.

A stream is cheap but not free (a socket, a task, up to a buffer of memory), and one misbehaving
script that opens streams in a loop must not starve every dashboard. Over the global limit the edge
answers 503 with `Retry-After`, so a load balancer or the browser tries another replica or later;
over the per-address or the per-principal limit (one token holder, from any number of addresses),
429. The unauthenticated principal of AUTH_MODE=none has no key and only the address limit.
"""

from fastapi import HTTPException

from sse_edge.metrics import CONNECTIONS_REJECTED


class ConnectionLimits:
    def __init__(
        self, max_total: int, max_per_address: int, retry_after_seconds: int, max_per_principal: int = 0
    ) -> None:
        self.max_total = max_total
        self.max_per_address = max_per_address
        self.max_per_principal = max_per_principal or max_total
        self.retry_after = str(max(1, retry_after_seconds))
        self.total = 0
        self._by_address: dict[str, int] = {}
        self._by_principal: dict[str, int] = {}

    def admit(self, address: str, principal: str | None = None) -> None:
        """Count a new stream from `address`, held by `principal` (a token's issuer and subject).

        Raises:
            HTTPException: 503 when the edge is full, 429 when this address or this principal has
                too many streams.
        """
        if self.total >= self.max_total:
            CONNECTIONS_REJECTED.labels("edge_full").inc()
            raise HTTPException(
                503,
                f"this edge holds its maximum of {self.max_total} event streams; retry later",
                headers={"Retry-After": self.retry_after},
            )
        held = self._by_address.get(address, 0)
        if held >= self.max_per_address:
            CONNECTIONS_REJECTED.labels("address_full").inc()
            raise HTTPException(
                429,
                f"{address} already holds {held} event streams, the most one address may open",
                headers={"Retry-After": self.retry_after},
            )
        if principal is not None:
            owned = self._by_principal.get(principal, 0)
            if owned >= self.max_per_principal:
                CONNECTIONS_REJECTED.labels("principal_full").inc()
                raise HTTPException(
                    429,
                    f"your token's holder already holds {owned} event streams, the most one may open",
                    headers={"Retry-After": self.retry_after},
                )
            self._by_principal[principal] = owned + 1
        self.total += 1
        self._by_address[address] = held + 1

    @property
    def held(self) -> tuple[int, dict[str, int], dict[str, int]]:
        """Streams held now: in all, by address, by principal (copies)."""
        return self.total, dict(self._by_address), dict(self._by_principal)

    def release(self, address: str, principal: str | None = None) -> None:
        self.total -= 1
        _decrement(self._by_address, address)
        if principal is not None:
            _decrement(self._by_principal, principal)


def _decrement(counts: dict[str, int], key: str) -> None:
    held = counts.get(key, 0) - 1
    if held > 0:
        counts[key] = held
    else:
        counts.pop(key, None)
