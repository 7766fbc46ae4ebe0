"""The edge's parts as FastAPI dependencies, one named alias each: how routes reach them."""

from typing import Annotated

from fastapi import Depends

from eh_runtime.dependencies import ServiceDep, app_state, settings_of
from sse_edge.history.jetstream_history import JetStreamHistory
from sse_edge.http.connection_limits import ConnectionLimits
from sse_edge.live.fanout import FanoutIndex
from sse_edge.live.recent_events import RecentEvents
from sse_edge.settings import EdgeSettings

fanout_of = app_state("fanout")
history_of = app_state("history")
connection_limits_of = app_state("connection_limits")
recent_events_of = app_state("recent_events")

SettingsDep = Annotated[EdgeSettings, Depends(settings_of)]
FanoutDep = Annotated[FanoutIndex, Depends(fanout_of)]
HistoryDep = Annotated[JetStreamHistory, Depends(history_of)]
ConnectionLimitsDep = Annotated[ConnectionLimits, Depends(connection_limits_of)]
RecentEventsDep = Annotated[RecentEvents, Depends(recent_events_of)]

__all__ = ["ConnectionLimitsDep", "FanoutDep", "HistoryDep", "RecentEventsDep", "ServiceDep", "SettingsDep"]
