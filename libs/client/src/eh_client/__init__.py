"""Python client of Event Handler.

```python
async with EventClient("http://localhost:8000") as client:
    async for item in client.events(types="node_metrics", snapshot=True):
        if isinstance(item, Event):
            print(item.resource_id, item.envelope.data.cpu.usage)
        elif item.name == "stream.gap":
            print("missed", item.data)
```
"""

from eh_client.backoff import Backoff
from eh_client.client import EventClient, HistoryPage
from eh_client.errors import EventHandlerError, EventStreamError, PublishError, RequestError
from eh_client.items import INVALID_EVENT, RECONNECTING, Control, Event, StreamItem
from eh_client.publishing import PublishedEvent, PublishResult
from eh_client.query import EventQuery, parse_duration
from eh_client.stream import EventStream
from eh_client.sync import SyncEventClient

__all__ = [
    "INVALID_EVENT",
    "RECONNECTING",
    "Backoff",
    "Control",
    "Event",
    "EventClient",
    "EventHandlerError",
    "EventQuery",
    "EventStream",
    "EventStreamError",
    "HistoryPage",
    "PublishError",
    "PublishResult",
    "PublishedEvent",
    "RequestError",
    "StreamItem",
    "SyncEventClient",
    "parse_duration",
]
