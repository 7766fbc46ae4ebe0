"""The collector's parts as FastAPI dependencies, one named alias each.

Async functions, though they do not await: FastAPI runs a plain function dependency in a worker
thread, a hop per dependency per request.
"""

from typing import Annotated

from fastapi import Depends, Request

from collector.heartbeats import Heartbeats
from collector.ingest import Ingestor
from collector.resource_states import ResourceStates
from collector.settings import CollectorSettings
from eh_runtime.service import Service


async def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


async def _settings(request: Request) -> CollectorSettings:
    settings: CollectorSettings = request.app.state.service.settings
    return settings


async def _ingestor(request: Request) -> Ingestor:
    ingestor: Ingestor = request.app.state.ingestor
    return ingestor


async def _states(request: Request) -> ResourceStates:
    states: ResourceStates = request.app.state.states
    return states


async def _heartbeats(request: Request) -> Heartbeats:
    heartbeats: Heartbeats = request.app.state.heartbeats
    return heartbeats


ServiceDep = Annotated[Service, Depends(_service)]
SettingsDep = Annotated[CollectorSettings, Depends(_settings)]
IngestorDep = Annotated[Ingestor, Depends(_ingestor)]
StatesDep = Annotated[ResourceStates, Depends(_states)]
HeartbeatsDep = Annotated[Heartbeats, Depends(_heartbeats)]
