"""A service's parts as FastAPI dependencies: what `create_app` put on the app's state.

Routes reach the service, its settings and its parts only through these, so that a test or a
later feature can override one (`app.dependency_overrides`) and every route gets it the same way.
Each service names its own (`Annotated[Part, Depends(app_state("part"))]`, one alias per part).

The dependencies are async functions, though they do not await: FastAPI runs a plain function
dependency in a worker thread, a hop per dependency per request.
"""

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request

from eh_runtime.service import Service
from eh_runtime.settings import ServiceSettings

AppStateDependency = Callable[[Request], Coroutine[Any, Any, Any]]


def app_state(attribute: str) -> AppStateDependency:
    """The dependency that answers `request.app.state.<attribute>`."""

    async def dependency(request: Request) -> Any:
        return getattr(request.app.state, attribute)

    dependency.__name__ = dependency.__qualname__ = f"app_state_{attribute}"
    return dependency


service_of = app_state("service")


async def settings_of(request: Request) -> ServiceSettings:
    """The service's settings; a service's alias names its own settings class."""
    settings: ServiceSettings = request.app.state.service.settings
    return settings


ServiceDep = Annotated[Service, Depends(service_of)]
