"""The edge's parts as FastAPI dependencies, one named alias each: how routes reach them.

Async functions, though they do not await: FastAPI runs a plain function dependency in a worker
thread, a hop per dependency per request.
"""

from typing import Annotated

from fastapi import Depends, Request

from eh_runtime.service import Service
from sse_edge.history.jetstream_history import JetStreamHistory
from sse_edge.http.connection_limits import ConnectionLimits
from sse_edge.live.fanout import FanoutIndex
from sse_edge.settings import EdgeSettings


async def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


async def settings_of(request: Request) -> EdgeSettings:
    settings: EdgeSettings = request.app.state.service.settings
    return settings


async def fanout_of(request: Request) -> FanoutIndex:
    index: FanoutIndex = request.app.state.fanout
    return index


async def history_of(request: Request) -> JetStreamHistory:
    history: JetStreamHistory = request.app.state.history
    return history


async def connection_limits_of(request: Request) -> ConnectionLimits:
    limits: ConnectionLimits = request.app.state.connection_limits
    return limits


ServiceDep = Annotated[Service, Depends(service_of)]
SettingsDep = Annotated[EdgeSettings, Depends(settings_of)]
FanoutDep = Annotated[FanoutIndex, Depends(fanout_of)]
HistoryDep = Annotated[JetStreamHistory, Depends(history_of)]
ConnectionLimitsDep = Annotated[ConnectionLimits, Depends(connection_limits_of)]
