"""The collector's parts as FastAPI dependencies, one named alias each."""

from typing import Annotated

from fastapi import Depends

from collector.heartbeats import Heartbeats
from collector.ingest import Ingestor
from collector.resource_states import ResourceStates
from collector.settings import CollectorSettings
from eh_runtime.dependencies import ServiceDep, app_state, settings_of

SettingsDep = Annotated[CollectorSettings, Depends(settings_of)]
IngestorDep = Annotated[Ingestor, Depends(app_state("ingestor"))]
StatesDep = Annotated[ResourceStates, Depends(app_state("states"))]
HeartbeatsDep = Annotated[Heartbeats, Depends(app_state("heartbeats"))]

__all__ = ["HeartbeatsDep", "IngestorDep", "ServiceDep", "SettingsDep", "StatesDep"]
