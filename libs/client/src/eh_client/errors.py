"""Errors the client raises: what went wrong, with the server's own words."""


class EventHandlerError(Exception):
    """Base of this client's errors; `status` is the HTTP status when a server answered."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class EventStreamError(EventHandlerError):
    """The stream cannot go on: a refused query (4xx), or a drop with reconnection turned off."""


class PublishError(EventHandlerError):
    """The events could not be handed to the collector (malformed body, too large, retries spent)."""


class RequestError(EventHandlerError):
    """A query to the history, state or alert API was refused."""
