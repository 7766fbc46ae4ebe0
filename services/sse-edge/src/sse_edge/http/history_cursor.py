"""The opaque `cursor` of the history endpoint: where the next page starts, for which query.

Positions are stream sequences, so pages stay stable while events keep arriving: a new event gets
a higher sequence and never shifts what a cursor points at. The cursor carries a fingerprint of
the query it was made for; using it with other filters is an error, not a silent wrong page.
"""

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Literal

from fastapi import HTTPException

Order = Literal["asc", "desc"]


@dataclass(frozen=True, slots=True)
class HistoryCursor:
    order: Order
    seq: int
    """asc: the next page starts at this sequence; desc: it ends at this sequence."""
    query: str
    """Fingerprint of the filters and time range the cursor belongs to."""
    snapshot_at: int = 0
    """A snapshot's pages: the stream sequence the snapshot is taken at (its first page's end)."""

    def encode(self) -> str:
        fields: dict[str, object] = {"o": self.order, "s": self.seq, "q": self.query}
        if self.snapshot_at:
            fields["u"] = self.snapshot_at
        raw = json.dumps(fields, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, *, order: Order, query: str) -> "HistoryCursor":
        """Raises HTTPException 400 when the cursor is malformed or belongs to another query."""
        try:
            raw = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            cursor = cls(
                order=raw["o"], seq=int(raw["s"]), query=str(raw["q"]), snapshot_at=int(raw.get("u", 0))
            )
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise HTTPException(400, "cursor is not one this endpoint issued") from None
        if cursor.order != order or cursor.query != query:
            raise HTTPException(400, "cursor belongs to another query: send the same filters and order")
        return cursor


def query_fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()[:16]
