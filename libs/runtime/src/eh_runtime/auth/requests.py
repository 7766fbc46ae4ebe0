"""Who sent an HTTP request: the token found in it, verified, as a `Principal` on `request.state`.

The token comes from `Authorization: Bearer …`, else the cookie `AUTH_COOKIE`, else the query
parameter `access_token` (a browser's EventSource can set neither headers nor, cross-site, always
cookies). The query parameter is redacted from every log line (`eh_runtime.logs`); metrics are
labelled by route template, never by URL.

Routes declare what they need with the aliases below (`SubscriberDep`, `ProducerDep`,
`OperatorDep`); code outside FastAPI's dependency injection calls `authenticate` directly.
"""

from typing import Annotated, Final

from fastapi import Depends, HTTPException
from starlette.requests import HTTPConnection

from eh_runtime.auth.claims import DEVELOPMENT_PRINCIPAL, Principal
from eh_runtime.auth.settings import AuthSettings
from eh_runtime.auth.tokens import InvalidToken, TokenVerifier

QUERY_PARAMETER: Final = "access_token"


class Authenticator:
    """One per app (`app.state.authenticator`): verifies tokens the way AUTH_* says."""

    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self.enabled = settings.mode == "jwt"
        self._verifier = TokenVerifier(settings) if self.enabled else None

    async def principal(self, connection: HTTPConnection) -> Principal:
        """Raises: HTTPException 401 without a token or with a bad or expired one."""
        if self._verifier is None:
            return DEVELOPMENT_PRINCIPAL
        token = self.token_of(connection)
        if token is None:
            raise _unauthorized(
                "a token is required: Authorization: Bearer <token>, "
                f"the {self.settings.cookie} cookie, or ?{QUERY_PARAMETER}=",
                error=None,
            )
        try:
            return await self._verifier.verify(token)
        except InvalidToken as error:
            raise _unauthorized(str(error), error="invalid_token") from None

    def token_of(self, connection: HTTPConnection) -> str | None:
        scheme, _, credentials = connection.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
        return connection.cookies.get(self.settings.cookie) or connection.query_params.get(QUERY_PARAMETER)


async def authenticate(connection: HTTPConnection) -> Principal:
    """The request's principal, verified once per request and kept on `request.state.principal`.

    Raises:
        HTTPException: 401 without a valid token.
    """
    known: Principal | None = getattr(connection.state, "principal", None)
    if known is not None:
        return known
    authenticator: Authenticator = connection.app.state.authenticator
    principal = await authenticator.principal(connection)
    connection.state.principal = principal
    return principal


async def require_subscriber(connection: HTTPConnection) -> Principal:
    principal = await authenticate(connection)
    if principal.subscribe is None:
        raise HTTPException(403, "your token does not allow reading events (no eh.subscribe claim)")
    return principal


async def require_producer(connection: HTTPConnection) -> Principal:
    principal = await authenticate(connection)
    if principal.publish is None:
        raise HTTPException(403, "your token does not allow publishing events (no eh.publish claim)")
    return principal


async def require_operator(connection: HTTPConnection) -> Principal:
    principal = await authenticate(connection)
    if not principal.admin:
        raise HTTPException(403, "this view is for operators (eh.admin: true)")
    return principal


PrincipalDep = Annotated[Principal, Depends(authenticate)]
SubscriberDep = Annotated[Principal, Depends(require_subscriber)]
ProducerDep = Annotated[Principal, Depends(require_producer)]
OperatorDep = Annotated[Principal, Depends(require_operator)]


def _unauthorized(message: str, *, error: str | None) -> HTTPException:
    challenge = "Bearer" if error is None else f'Bearer error="{error}"'
    return HTTPException(401, message, headers={"WWW-Authenticate": challenge})
