"""The edge's parts as FastAPI dependencies, one named alias each: how routes reach them.

The event stream route takes them all as one (`EdgeDep`): FastAPI solves each dependency of a
request on its own (a recursive call that looks at its parameters, its cache key and its kind),
~15 µs apiece, and a reconnection storm is thousands of stream requests a second.
"""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from eh_runtime.dependencies import ServiceDep, app_state, settings_of
from eh_runtime.service import Service
from sse_edge.history.jetstream_history import JetStreamHistory
from sse_edge.http.connection_limits import ConnectionLimits
from sse_edge.live.fanout import FanoutIndex
from sse_edge.live.recent_events import RecentEvents
from sse_edge.settings import EdgeSettings


@dataclass(frozen=True, slots=True)
class EdgeParts:
    """Everything an event stream uses of the edge (`app.state.edge`)."""

    service: Service
    settings: EdgeSettings
    fanout: FanoutIndex
    history: JetStreamHistory
    connection_limits: ConnectionLimits
    recent_events: RecentEvents


fanout_of = app_state("fanout")
history_of = app_state("history")
edge_of = app_state("edge")

SettingsDep = Annotated[EdgeSettings, Depends(settings_of)]
FanoutDep = Annotated[FanoutIndex, Depends(fanout_of)]
HistoryDep = Annotated[JetStreamHistory, Depends(history_of)]
EdgeDep = Annotated[EdgeParts, Depends(edge_of)]

__all__ = [
    "EdgeDep",
    "EdgeParts",
    "FanoutDep",
    "HistoryDep",
    "ServiceDep",
    "SettingsDep",
]
