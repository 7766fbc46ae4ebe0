"""The public keys of an issuer, from a JWKS file or URL, cached and refreshed.

Keys rotate: a token signed with a key id not yet seen triggers one early refresh (at most every
`_MIN_REFETCH_SECONDS`, so a stream of forged key ids cannot make us hammer the issuer).
A fetch runs in a thread: PyJWT's key set parsing is ours to call, the HTTP client is the stdlib's.
"""

import asyncio
import json
import time
import urllib.request
from pathlib import Path
from typing import Any, Final

import structlog
from jwt import PyJWK, PyJWKSet
from jwt.exceptions import PyJWKSetError

log = structlog.get_logger(__name__)

_MIN_REFETCH_SECONDS: Final = 30.0
_FETCH_TIMEOUT_SECONDS: Final = 5.0


class KeyNotFound(Exception):
    """No key of the key set verifies this token (unknown `kid`, or the set is unreachable)."""


class JwksKeys:
    def __init__(self, source: str, refresh_seconds: float) -> None:
        self.source = source
        self.refresh_seconds = refresh_seconds
        self._keys: dict[str | None, PyJWK] = {}
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    async def key_for(self, kid: str | None) -> PyJWK:
        """The key named `kid` (or the only key, when the token names none).

        Raises:
            KeyNotFound: when no such key is known even after a refresh.
        """
        now = time.monotonic()
        stale = now - self._loaded_at > self.refresh_seconds
        missing = self._lookup(kid) is None and now - self._loaded_at > _MIN_REFETCH_SECONDS
        if stale or missing:
            async with self._lock:
                if time.monotonic() - self._loaded_at > min(self.refresh_seconds, _MIN_REFETCH_SECONDS):
                    await self._reload()
        key = self._lookup(kid)
        if key is None:
            raise KeyNotFound(f"no key with kid {kid!r} in {self.source}")
        return key

    def _lookup(self, kid: str | None) -> PyJWK | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    async def _reload(self) -> None:
        try:
            document = await asyncio.to_thread(self._read)
            keys = PyJWKSet.from_dict(document).keys
        except (OSError, ValueError, PyJWKSetError) as error:
            # The previous keys stay in use: an issuer's hiccup must not log everyone out.
            log.warning("JWKS not refreshed; keeping the previous keys", source=self.source, error=str(error))
            self._loaded_at = time.monotonic()
            return
        self._keys = {key.key_id: key for key in keys}
        self._loaded_at = time.monotonic()
        log.info("JWKS loaded", source=self.source, keys=len(self._keys))

    def _read(self) -> dict[str, Any]:
        if self.source.startswith(("https://", "http://")):
            with urllib.request.urlopen(self.source, timeout=_FETCH_TIMEOUT_SECONDS) as response:  # noqa: S310
                document: dict[str, Any] = json.loads(response.read())
                return document
        loaded: dict[str, Any] = json.loads(Path(self.source).read_text(encoding="utf-8"))
        return loaded
