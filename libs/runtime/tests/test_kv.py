import pytest
from nats.js.api import KeyValueConfig

from eh_runtime.kv import ensure_key_value

pytestmark = pytest.mark.nats


async def test_creates_a_bucket_once_and_keeps_its_data(js):
    kv = await ensure_key_value(js, KeyValueConfig(bucket="states", history=1))
    await kv.put("node-1", b"online")
    again = await ensure_key_value(js, KeyValueConfig(bucket="states", history=1))
    assert (await again.get("node-1")).value == b"online"


async def test_an_existing_bucket_with_another_configuration_is_used_not_recreated(js):
    kv = await ensure_key_value(js, KeyValueConfig(bucket="states", history=1))
    await kv.put("node-1", b"online")
    other = await ensure_key_value(js, KeyValueConfig(bucket="states", history=5))
    assert (await other.get("node-1")).value == b"online"
    assert (await other.status()).history == 1
