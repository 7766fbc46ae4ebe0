"""Provisioning as the NATS admin: the EVENTS stream and every service's buckets, before services start.

The services' own NATS identities may use their stream and buckets but not create, change or delete
them, so `make run` and the tests create them here first, with the admin's credentials. Each
service keeps the configuration of what it owns; this module only calls it.
"""

import nats

from eh_runtime.kv import ensure_key_value
from eh_runtime.settings import StreamSettings
from eh_runtime.stream import ensure_events_stream


async def provision_all(admin_url: str, settings: StreamSettings) -> int:
    """Create or update EVENTS and create the buckets; returns the events EVENTS holds."""
    # The services are this workspace's members; imported here, not at module level, so that
    # `eh_devtools` does not need them to be importable for anything else.
    from alert_evaluator.state_store import provision_state_bucket
    from collector.heartbeats import heartbeat_bucket_config
    from collector.resource_states import state_bucket_config

    client = await nats.connect(admin_url)
    try:
        js = client.jetstream()
        info = await ensure_events_stream(js, settings)
        await ensure_key_value(js, state_bucket_config(settings.replicas))
        await ensure_key_value(js, heartbeat_bucket_config(settings.replicas))
        await provision_state_bucket(js, settings.replicas)
        return int(info.state.messages)
    finally:
        await client.close()
