"""JetStream key-value buckets, created on first use and never recreated.

Services keep small shared state here (current resource states, alert state, leases). Creating a
bucket is idempotent; a bucket that exists with another configuration is used as it is, with a
warning, because recreating it would lose its state.
"""

import structlog
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import BadRequestError
from nats.js.kv import KeyValue

log = structlog.get_logger(__name__)


async def ensure_key_value(js: JetStreamContext, config: KeyValueConfig) -> KeyValue:
    """The bucket `config.bucket`, created with `config` if it does not exist yet."""
    try:
        return await js.create_key_value(config)
    except BadRequestError as error:
        # "stream name already in use with a different configuration"
        log.warning(
            "key-value bucket exists with another configuration; using it as it is",
            bucket=config.bucket,
            error=str(error),
        )
        return await js.key_value(config.bucket)
