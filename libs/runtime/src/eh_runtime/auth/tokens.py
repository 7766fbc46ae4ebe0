"""Verifying a JWT with PyJWT: signature, issuer, audience, expiry (with leeway), and the `eh` claim."""

from dataclasses import replace
from typing import Final

import jwt

from eh_runtime.auth.claims import InvalidClaim, Principal
from eh_runtime.auth.keys import JwksKeys, KeyNotFound
from eh_runtime.auth.settings import AuthSettings

ASYMMETRIC_ALGORITHMS: Final = ("RS256", "ES256", "EdDSA")


class InvalidToken(Exception):
    """The token is missing, malformed, badly signed, expired, or for someone else: a 401."""


class TokenVerifier:
    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self._secret = settings.secret.get_secret_value() if settings.secret else None
        self._jwks = JwksKeys(settings.jwks, settings.jwks_refresh.total_seconds()) if settings.jwks else None

    async def verify(self, token: str) -> Principal:
        """Raises: InvalidToken with a reason a client may read (never the token itself)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise InvalidToken("the token is not a JWT") from None
        algorithm = header.get("alg")
        key: object
        if algorithm == "HS256" and self._secret is not None:
            key = self._secret
        elif algorithm in ASYMMETRIC_ALGORITHMS and self._jwks is not None:
            try:
                key = await self._jwks.key_for(header.get("kid"))
            except KeyNotFound as error:
                raise InvalidToken(str(error)) from None
        else:
            # Only what is configured: never "none", never HS256 with a public key as the secret.
            raise InvalidToken(f"tokens signed with {algorithm!r} are not accepted here")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                leeway=self.settings.leeway.total_seconds(),
                options={"require": ["exp", "sub", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.InvalidTokenError as error:
            raise InvalidToken(f"invalid token: {error}") from None
        try:
            principal = Principal.from_claims(claims)
        except InvalidClaim as error:
            raise InvalidToken(f"invalid token: {error}") from None
        if principal.expires_at is None:
            return principal
        # Accepted up to the leeway after `exp`, so it lapses then too (a stream ends at that moment).
        return replace(principal, expires_at=principal.expires_at + self.settings.leeway.total_seconds())
