import pytest
from nats.js.api import KeyValueConfig
from nats.js.errors import KeyNotFoundError

from eh_runtime.atomic_batch import BatchRejected
from eh_runtime.kv import ensure_key_value
from eh_runtime.kv_batch import KeyWrite, enable_atomic_batches, write_atomically

pytestmark = pytest.mark.nats


@pytest.fixture
async def bucket(js):
    kv = await ensure_key_value(js, KeyValueConfig(bucket="state", history=1))
    await enable_atomic_batches(js, "state")
    await enable_atomic_batches(js, "state")  # idempotent
    return kv


async def test_all_writes_are_stored_and_the_last_revision_returned(nc, bucket):
    revision = await write_atomically(
        nc, "state", [KeyWrite("a", b"1"), KeyWrite("b", b"2"), KeyWrite("position", b"7")], timeout=2
    )
    assert (await bucket.get("a")).value == b"1"
    assert (await bucket.get("b")).value == b"2"
    assert (await bucket.get("position")).revision == revision


async def test_a_failed_expectation_stores_nothing(nc, bucket):
    first = await write_atomically(nc, "state", [KeyWrite("position", b"1", expected_revision=0)], timeout=2)
    stale = KeyWrite("position", b"2", expected_revision=first + 5)
    with pytest.raises(BatchRejected) as rejected:
        await write_atomically(nc, "state", [KeyWrite("a", b"x"), stale], timeout=2)
    assert rejected.value.wrong_revision
    with pytest.raises(KeyNotFoundError):
        await bucket.get("a")
    second = await write_atomically(
        nc, "state", [KeyWrite("a", b"x"), KeyWrite("position", b"2", expected_revision=first)], timeout=2
    )
    assert (await bucket.get("a")).value == b"x"
    assert (await bucket.get("position")).revision == second


async def test_a_removed_key_is_gone_and_can_be_written_again(nc, bucket):
    await write_atomically(nc, "state", [KeyWrite("a", b"1")], timeout=2)
    await write_atomically(nc, "state", [KeyWrite("a", None), KeyWrite("b", b"2")], timeout=2)
    with pytest.raises(KeyNotFoundError):
        await bucket.get("a")
    assert sorted(await bucket.keys()) == ["b"]
    await write_atomically(nc, "state", [KeyWrite("a", b"again")], timeout=2)
    assert (await bucket.get("a")).value == b"again"


async def test_batch_size_is_checked_before_sending(nc, bucket):
    with pytest.raises(ValueError, match="1 to 1000"):
        await write_atomically(nc, "state", [], timeout=2)
    with pytest.raises(ValueError, match="1 to 1000"):
        await write_atomically(nc, "state", [KeyWrite(f"k{i}", b"v") for i in range(1001)], timeout=2)
